""".kitignore matching: the .dockerignore rules as moby/patternmatcher v0.6.0 applies them for kit.

Expectations marked "kit:" were checked against the real patternmatcher (Go) with the same patterns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitbridge.errors import PackError
from kitbridge.layers.ignore import IgnoreMatcher, go_clean, read_patterns


def matcher(*lines: str) -> IgnoreMatcher:
    return IgnoreMatcher.from_lines(list(lines))


def test_kit_default_names_are_ignored_only_at_the_root() -> None:
    m = IgnoreMatcher()
    for name in ("Kitfile", "kitfile", ".kitfile", ".kitignore"):
        assert m.matches(name)
        assert not m.matches(f"sub/{name}")
    assert not m.matches("KITFILE") and not m.matches("model")
    assert not m.has_exclusions


def test_comments_blank_lines_and_padding() -> None:
    text = "# a comment\n\n   \n  padded.txt   \n  # not a comment: a pattern\n"
    assert read_patterns(text) == ["padded.txt", "# not a comment: a pattern"]
    m = IgnoreMatcher.from_lines(text.splitlines())
    assert m.matches("padded.txt")
    assert m.matches("# not a comment: a pattern")
    assert not m.matches("# a comment")


def test_bom_crlf_and_leading_slash_are_normalised() -> None:
    assert read_patterns("\ufeff/secret.txt\r\n!/keep/./x//\r\nlogs/../tmp\r\n") == [
        "secret.txt",
        "!keep/x",
        "tmp",
    ]


def test_star_matches_within_one_directory_and_patterns_are_root_anchored() -> None:
    m = matcher("*.tmp")
    assert m.matches("notes.tmp")
    assert not m.matches("model/notes.tmp")  # no implicit "**/" as in .gitignore


def test_leading_slash_anchors_to_the_root_like_no_slash() -> None:
    m = matcher("/secret.txt")
    assert m.matches("secret.txt")
    assert not m.matches("sub/secret.txt")


def test_double_star_prefix_matches_at_any_depth_including_the_root() -> None:
    m = matcher("**/*.log")
    assert m.matches("app.log") and m.matches("model/train.log") and m.matches("a/b/c/x.log")
    assert not m.matches("model/log.txt")


def test_double_star_suffix_pattern_compares_whole_names() -> None:
    m = matcher("**/build")
    assert m.matches("build") and m.matches("model/build") and m.matches("model/build/out.bin")
    assert not m.matches("model/rebuild")


def test_trailing_double_star_ignores_the_contents_but_not_the_directory() -> None:
    m = matcher("logs/**")
    assert m.matches("logs/a.txt") and m.matches("logs/sub/b.txt")
    assert not m.matches("logs")


def test_double_star_in_the_middle_spans_zero_or_more_directories() -> None:
    m = matcher("data/**/scratch")
    assert m.matches("data/scratch") and m.matches("data/x/scratch") and m.matches("data/x/y/scratch/f")
    assert not m.matches("data/x/scratch2")


def test_a_pattern_matching_a_directory_matches_everything_below_it() -> None:
    m = matcher("cache")
    assert m.matches("cache") and m.matches("cache/a.bin") and m.matches("cache/deep/er/x")
    assert not m.matches("model/cache")  # anchored at the root
    assert not m.matches("cachet")


def test_negation_reincludes_and_the_last_matching_pattern_wins() -> None:
    m = matcher("cache", "!cache/keep.txt")
    assert m.has_exclusions
    assert m.matches("cache") and m.matches("cache/a.bin")
    assert not m.matches("cache/keep.txt")
    m = matcher("cache", "!cache/keep.txt", "cache/keep*")
    assert m.matches("cache/keep.txt")
    m = matcher("!x", "x")  # an exclusion before anything matched changes nothing
    assert m.matches("x")


def test_negated_pattern_also_reincludes_through_a_parent_match() -> None:
    m = matcher("data", "!data/keep")
    assert not m.matches("data/keep/deep/file")  # kit: "data/keep" matches a parent, so it is re-included


def test_negation_cannot_reinclude_kit_default_names() -> None:
    m = matcher("!Kitfile")
    assert m.matches("Kitfile")  # the defaults come after the user's patterns


def test_question_mark_and_character_classes() -> None:
    m = matcher("file?.bin", "[ab]*.txt", "v[0-9].json", "x[^a]")
    assert m.matches("file1.bin") and not m.matches("file12.bin") and not m.matches("file/.bin")
    assert m.matches("a1.txt") and m.matches("b.txt") and not m.matches("c.txt")
    assert m.matches("v7.json") and not m.matches("vx.json")
    assert m.matches("xb") and not m.matches("xa")


def test_escaped_metacharacters_match_literally() -> None:
    m = matcher("\\*.bin", "a\\?")
    assert m.matches("*.bin") and not m.matches("x.bin")
    assert m.matches("a?") and not m.matches("ab")


def test_regexp_specials_are_literal_in_plain_patterns() -> None:
    m = matcher("a.b*", "(x)+$*")
    assert m.matches("a.bc") and not m.matches("axbc")
    assert m.matches("(x)+$y") and not m.matches("xx")


def test_unescaped_pipe_is_regexp_alternation_as_in_kit() -> None:
    # kit: patternmatcher fails to escape '|', so "x*|y" means "^x[^/]*" or "y$" (unanchored)
    m = matcher("x*|y")
    assert m.matches("xa") and m.matches("ay") and m.matches("a/by")
    assert not m.matches("ab")


def test_invalid_patterns_are_pack_errors() -> None:
    for bad in ("[", "a[b", "[]", "x\\", "!", "[z-a]", "ok/[b-]"):
        with pytest.raises(PackError, match="invalid pattern"):
            matcher(bad)


def test_from_context_reads_kitignore(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").write_text("*.tmp\n!keep.tmp\n")
    m = IgnoreMatcher.from_context(tmp_path)
    assert m.matches("a.tmp") and not m.matches("keep.tmp") and m.matches("Kitfile")
    assert m.has_exclusions


def test_from_context_without_kitignore_has_only_the_defaults(tmp_path: Path) -> None:
    m = IgnoreMatcher.from_context(tmp_path)
    assert m.matches(".kitignore") and not m.matches("a.tmp") and not m.has_exclusions


def test_unreadable_kitignore_is_a_pack_error(tmp_path: Path) -> None:
    os.mkdir(tmp_path / ".kitignore")  # a directory cannot be read as a file
    with pytest.raises(PackError, match="cannot read"):
        IgnoreMatcher.from_context(tmp_path)


def test_go_clean() -> None:
    cases = {
        "": ".",
        ".": ".",
        "./model": "model",
        "model/": "model",
        "./model//weights/../": "model",
        "a/../..": "..",
        "/../x": "/x",
        "//a//b/": "/a/b",
        "v1..2/x": "v1..2/x",
    }
    assert {k: go_clean(k) for k in cases} == cases
