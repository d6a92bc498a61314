""".kitignore matching with moby/patternmatcher v0.6.0 ``MatchesOrParentMatches`` semantics.

Kit reads ``.kitignore`` with ``ignorefile.ReadAll`` (the ``.dockerignore`` rules), appends its
always-ignored root names, and asks ``MatchesOrParentMatches`` about every walked path. Both steps
are reproduced here, including their quirks: ``#`` only starts a comment in the first column,
patterns are ``filepath.Clean``-ed twice, ``**/x``-style patterns compare suffixes, and the
regular-expression patterns follow Go's RE2 (``$`` = end of text, ASCII ``\\d``/``\\w``/``\\s``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kitbridge.errors import PackError

IGNORE_FILE = ".kitignore"
ALWAYS_IGNORED = ("Kitfile", "kitfile", ".kitfile", IGNORE_FILE)
"""Root names kit never packs (the default patterns appended after the user's)."""

# Go's unicode.IsSpace (what strings.TrimSpace trims); Python's str.strip also trims \x1c-\x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
_BOM = "\ufeff"
_MAX_LINE = 64 * 1024  # bufio.Scanner's default token limit: ReadAll fails on longer lines


def go_clean(p: str) -> str:
    """Go ``filepath.Clean`` on a slash path: collapse ``//``, drop ``.``, resolve ``..`` lexically."""
    if not p:
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append(part)
            continue
        out.append(part)
    body = "/".join(out)
    if rooted:
        return "/" + body
    return body or "."


def _trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


def read_patterns(text: str) -> list[str]:
    """Go ``ignorefile.ReadAll``: the pattern lines of a ``.dockerignore``-style file."""
    patterns: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith("\r") else raw  # bufio.ScanLines drops one trailing \r
        if lineno == 0 and line.startswith(_BOM):
            line = line[1:]
        if len(line.encode("utf-8", "surrogateescape")) > _MAX_LINE:
            raise PackError(
                f"{IGNORE_FILE}: line {lineno + 1} is longer than 64 KiB",
                "kit cannot read such a line either; shorten the pattern",
            )
        if line.startswith("#"):
            continue
        pattern = _trim_space(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _trim_space(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


# --- one pattern ---------------------------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
# patternmatcher escapes only these: it meant ".+()|{}$" but builds a byte bitmap with 1<<(b/8),
# which overflows to 0 for '{', '|' and '}', so those (and '^') reach the regexp unescaped.
_GO_SHOULD_ESCAPE = frozenset(".+()$")
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# RE2 Perl classes (ASCII-only in Go) and the escapes both RE2 and Python's re understand alike.
_PERL_CLASSES = {
    "d": "0-9",
    "w": "0-9A-Za-z_",
    "s": "\\t\\n\\f\\r ",
}
_RE2_REPEAT = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_SIMPLE_ESCAPES = {"a": "\\a", "f": "\\f", "t": "\\t", "n": "\\n", "r": "\\r", "v": "\\v"}


class _BadPattern(Exception):
    pass


@dataclass
class _Pattern:
    text: str  # cleaned, without the leading "!"
    exclusion: bool
    kind: str
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == _EXACT:
            return path == self.text
        if self.kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            # "**/foo" also matches "foo" at the root
            return suffix[:1] == "/" and path == suffix[1:]
        assert self.regex is not None
        # Go's MatchString searches: an unescaped '|' can leave later alternatives unanchored.
        return self.regex.search(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """patternmatcher ``Pattern.compile``: build Go's regexp string, then translate RE2 to Python."""
    regstr = "^"
    kind = _EXACT
    i = 0
    n = len(text)
    pos = 0
    while pos < n:
        ch = text[pos]
        pos += 1
        if ch == "*":
            if pos < n and text[pos] == "*":
                pos += 1
                if pos < n and text[pos] == "/":
                    pos += 1
                if pos >= n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        regstr += ".*"
                        kind = _REGEXP
                else:
                    regstr += "(.*/)?"
                    kind = _REGEXP
                if i == 0:
                    kind = _SUFFIX
            else:
                regstr += "[^/]*"
                kind = _REGEXP
        elif ch == "?":
            regstr += "[^/]"
            kind = _REGEXP
        elif ch in _GO_SHOULD_ESCAPE:
            regstr += "\\" + ch
        elif ch == "\\":
            if pos < n:
                regstr += "\\" + text[pos]
                pos += 1
                kind = _REGEXP
            else:
                regstr += "\\"
        elif ch in "[]":
            regstr += ch
            kind = _REGEXP
        else:
            regstr += ch
        i += 1
    if kind != _REGEXP:
        return _Pattern(text, exclusion, kind, None)
    regstr += "$"
    return _Pattern(text, exclusion, _REGEXP, re.compile(_re2_to_python(regstr), re.ASCII))


def _re2_to_python(expr: str) -> str:
    """Translate the RE2 subset patternmatcher can generate into an equivalent Python regex."""
    out: list[str] = []
    pos = 0
    n = len(expr)
    while pos < n:
        ch = expr[pos]
        if ch == "\\":
            if pos + 1 >= n:
                raise _BadPattern("trailing backslash")
            out.append(_escape(expr[pos + 1], in_class=False))
            pos += 2
        elif ch == "[":
            cls, pos = _parse_class(expr, pos + 1)
            out.append(cls)
        elif ch == "]":
            out.append("\\]")
            pos += 1
        elif ch == "$" and pos == n - 1:
            out.append("\\Z")  # RE2 (OneLine): end of text only; Python's $ also matches before a final \n
            pos += 1
        elif ch == "{":
            m = _RE2_REPEAT.match(expr, pos)
            if m:  # a valid RE2 repeat: same meaning in Python
                if out and out[-1] == "^":
                    out[-1] = "(?:^)"  # RE2 may repeat an assertion; Python needs it in a group
                out.append(m.group())
                pos = m.end()
            else:  # RE2 reads any other '{' literally (Python would take "{,n}" as a repeat)
                out.append("\\{")
                pos += 1
        elif ch == "}":
            out.append("\\}")
            pos += 1
        else:
            out.append(ch)
            pos += 1
    return "".join(out)


def _escape(ch: str, in_class: bool) -> str:
    """RE2 ``\\ch`` as Python regex syntax (inside or outside a class); unknown escapes are errors."""
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch]
    if ch.isascii() and not ch.isalnum():
        return "\\" + ch
    if not in_class:
        if ch in _PERL_CLASSES:
            return "[" + _PERL_CLASSES[ch] + "]"
        if ch.lower() in _PERL_CLASSES:
            return "[^" + _PERL_CLASSES[ch.lower()] + "]"
        if ch in "bBA":
            return "\\" + ch
        if ch == "z":
            return "\\Z"
    raise _BadPattern(f"escape \\{ch} is not supported")


def _class_char(expr: str, pos: int) -> tuple[str, int]:
    """One class member (a char or an escape) as Python class syntax, and the next position."""
    ch = expr[pos]
    if ch == "\\":
        if pos + 1 >= len(expr):
            raise _BadPattern("trailing backslash")
        nxt = expr[pos + 1]
        if nxt in _PERL_CLASSES or nxt in "DWS":
            raise _BadPattern("class escape used in a range")
        return _escape(nxt, in_class=True), pos + 2
    return ("\\" + ch if ch in "\\]-^[" else ch), pos + 1


def _parse_class(expr: str, pos: int) -> tuple[str, int]:
    """RE2 ``parseClass`` from just after ``[``: returns the Python class and the position after ``]``."""
    n = len(expr)
    negated = pos < n and expr[pos] == "^"
    if negated:
        pos += 1
    parts: list[str] = []
    first = True
    while pos >= n or expr[pos] != "]" or first:
        if pos >= n:
            raise _BadPattern("missing closing ]")
        first = False
        if expr.startswith("[:", pos):
            end = expr.find(":]", pos + 2)
            name = expr[pos + 2 : end] if end >= 0 else ""
            neg = name.startswith("^")
            body = _POSIX_CLASSES.get(name[1:] if neg else name)
            if end >= 0 and body is not None:
                if neg:
                    raise _BadPattern("negated POSIX class")
                parts.append(body)
                pos = end + 2
                continue
        if expr[pos] == "\\" and pos + 1 < n and expr[pos + 1] in "dws":
            parts.append(_PERL_CLASSES[expr[pos + 1]])
            pos += 2
            continue
        lo, pos = _class_char(expr, pos)
        if pos + 1 < n and expr[pos] == "-" and expr[pos + 1] != "]":
            hi, pos = _class_char(expr, pos + 1)
            if _class_ord(hi) < _class_ord(lo):
                raise _BadPattern("invalid character class range")
            parts.append(lo + "-" + hi)
        else:
            parts.append(lo)
    return ("[^" if negated else "[") + "".join(parts) + "]", pos + 1


def _class_ord(member: str) -> int:
    if member.startswith("\\"):
        codes = {"\\a": 7, "\\f": 12, "\\t": 9, "\\n": 10, "\\r": 13, "\\v": 11}
        return codes.get(member, ord(member[-1]))
    return ord(member)


def _check_go_match_syntax(pattern: str) -> None:
    """Raise _BadPattern where Go's ``filepath.Match(pattern, ".")`` reports ErrBadPattern."""
    rest = pattern
    while rest:
        rest = rest.lstrip("*")
        # scanChunk: up to the next '*' outside a [...] range
        inrange = False
        i = 0
        while i < len(rest):
            c = rest[i]
            if c == "\\":
                if i + 1 < len(rest):
                    i += 1
            elif c == "[":
                inrange = True
            elif c == "]":
                inrange = False
            elif c == "*" and not inrange:
                break
            i += 1
        chunk, rest = rest[:i], rest[i:]
        _check_chunk(chunk)


def _check_chunk(chunk: str) -> None:
    """The syntax checks of Go's ``matchChunk`` (they do not depend on the name)."""
    pos = 0
    n = len(chunk)
    while pos < n:
        c = chunk[pos]
        if c == "[":
            pos += 1
            if pos < n and chunk[pos] == "^":
                pos += 1
            nrange = 0
            while True:
                if pos < n and chunk[pos] == "]" and nrange > 0:
                    pos += 1
                    break
                pos = _get_esc(chunk, pos)
                if chunk[pos] == "-":
                    pos = _get_esc(chunk, pos + 1)
                nrange += 1
        elif c == "\\":
            pos += 1
            if pos >= n:
                raise _BadPattern("trailing backslash")
            pos += 1
        else:
            pos += 1


def _get_esc(chunk: str, pos: int) -> int:
    n = len(chunk)
    if pos >= n or chunk[pos] in "-]":
        raise _BadPattern("bad range")
    if chunk[pos] == "\\":
        pos += 1
        if pos >= n:
            raise _BadPattern("trailing backslash")
    if "\udc80" <= chunk[pos] <= "\udcff":  # an invalid UTF-8 byte (surrogateescape)
        raise _BadPattern("invalid UTF-8")
    pos += 1
    if pos >= n:
        raise _BadPattern("unterminated range")
    return pos


def _new_pattern(raw: str) -> _Pattern | None:
    """patternmatcher ``New`` for one pattern line (None for a blank one)."""
    p = _trim_space(raw)
    if not p:
        return None
    p = go_clean(p)
    exclusion = p.startswith("!")
    if exclusion:
        if len(p) == 1:
            raise _BadPattern('illegal exclusion pattern: "!"')
        p = p[1:]
    _check_go_match_syntax(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" is fine: we escape '['
        try:
            return _compile(p, exclusion)
        except re.error as e:
            raise _BadPattern(str(e)) from e


# --- the matcher ---------------------------------------------------------------------------------


class IgnoreMatcher:
    """The user's ``.kitignore`` patterns plus kit's always-ignored root names."""

    def __init__(self, patterns: Iterable[str] = (), source: str = IGNORE_FILE) -> None:
        self._patterns: list[_Pattern] = []
        for raw in [*patterns, *ALWAYS_IGNORED]:
            try:
                pat = _new_pattern(raw)
            except _BadPattern as e:
                raise PackError(
                    f"{source}: invalid pattern {raw.strip()!r}: {e}",
                    "patterns follow .dockerignore syntax (*, ?, [a-z], **, leading ! to re-include)",
                ) from e
            if pat is not None:
                self._patterns.append(pat)
        self.has_exclusions = any(p.exclusion for p in self._patterns)
        """True when a ``!`` pattern exists: ignored directories must then still be walked."""

    @classmethod
    def from_context(cls, context_dir: str | Path) -> IgnoreMatcher:
        """The matcher for a context directory: its ``.kitignore`` if it has one, else the defaults."""
        path = Path(context_dir) / IGNORE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as e:
            raise PackError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from e
        return cls(read_patterns(data.decode("utf-8", "surrogateescape")), source=str(path))

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> IgnoreMatcher:
        """A matcher from ``.kitignore`` file lines (comments and ``/``-anchors handled as kit does)."""
        return cls(read_patterns("\n".join(lines)))

    def matches(self, rel_path: str) -> bool:
        """True when ``rel_path`` (slash-separated, relative to the context) or a parent is ignored."""
        matched = False
        chain: list[str] | None = None  # rel_path and its parent directories, built on first use
        chain_set: frozenset[str] = frozenset()
        for pat in self._patterns:
            # An inclusion cannot change a match, an exclusion cannot change a non-match.
            if pat.exclusion != matched:
                continue
            if chain is None:
                chain = [rel_path]
                i = rel_path.find("/")
                while i >= 0:
                    chain.append(rel_path[:i])
                    i = rel_path.find("/", i + 1)
                chain_set = frozenset(chain)
            if pat.text in chain_set if pat.kind == _EXACT else any(map(pat.match, chain)):
                matched = not pat.exclusion
        return matched
