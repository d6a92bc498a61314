"""Kit's walk for one layer: order, parent directories, exclusions, .kitignore, links, odd files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitbridge.errors import PackError
from kitbridge.layers.ignore import IgnoreMatcher
from kitbridge.layers.walk import WalkEntry, layer_is_single_file, walk_layer


def tree(root: Path, spec: dict[str, str | None], file_mode: int = 0o644, dir_mode: int = 0o755) -> Path:
    """Files (str content) and directories (None), with explicit modes: the umask never decides."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in spec.items():
        p = root / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
            os.chmod(p, file_mode)
    for d in sorted(
        (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)
    ):
        os.chmod(d, dir_mode)
    os.chmod(root, dir_mode)
    return root


def walk(
    ctx: Path, layer: str, others: tuple[str, ...] = (), warnings: list[str] | None = None
) -> list[WalkEntry]:
    sink = warnings if warnings is not None else []
    return list(walk_layer(ctx, layer, list(others), IgnoreMatcher.from_context(ctx), sink.append))


def rels(entries: list[WalkEntry]) -> list[str]:
    return [e.rel for e in entries]


def test_order_is_bytewise_per_directory_depth_first(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx",
        {"model/a/x": "x", "model/a-b.txt": "1", "model/a.b.txt": "2", "model/a.txt": "3", "model/B.txt": "4"}
        | {"model/_u.txt": "5", "model/a/y/z": "6"},
    )
    assert rels(walk(ctx, "model")) == [
        "model",
        "model/B.txt",
        "model/_u.txt",
        "model/a",
        "model/a/x",
        "model/a/y",
        "model/a/y/z",
        "model/a-b.txt",  # sorting whole paths would put this before model/a/x
        "model/a.b.txt",
        "model/a.txt",
    ]


def test_entries_carry_stat_facts_without_trailing_slash(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "12345", "model/empty": None})
    os.chmod(ctx / "model/w.bin", 0o4751)
    os.chmod(ctx / "model/empty", 0o2770)
    entries = {e.rel: e for e in walk(ctx, "./model/")}
    assert entries["model"] == WalkEntry("model", Path(os.path.realpath(ctx)) / "model", True, 0o755, 0)
    assert entries["model/w.bin"].mode == 0o4751 and entries["model/w.bin"].size == 5
    assert not entries["model/w.bin"].is_dir
    assert entries["model/empty"].is_dir and entries["model/empty"].mode == 0o2770


def test_nested_layer_path_brings_its_parent_directories_only(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx",
        {"w/extra/part.bin": "p", "w/extra/other": "o", "w/sibling": "s", "top.txt": "t", "x/y": "y"},
    )
    assert rels(walk(ctx, "w/extra/part.bin")) == ["w", "w/extra", "w/extra/part.bin"]


def test_single_root_file_layer_is_one_entry(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model.gguf": "m", "README.md": "r", "other/x": "x"})
    assert rels(walk(ctx, "model.gguf")) == ["model.gguf"]


def test_paths_inside_more_specific_layers_are_excluded(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx",
        {"main/w.bin": "w", "main/adapter/a.bin": "a", "main/subdir/d.csv": "d", "main/subdir2/e": "e"}
        | {"Kitfile": "k", "src/run.py": "r"},
    )
    layers = ("main", "main/adapter", ".", "main/subdir")

    def others(me: str) -> tuple[str, ...]:
        return tuple(p for p in layers if p != me)

    assert rels(walk(ctx, "main", others("main"))) == ["main", "main/subdir2", "main/subdir2/e", "main/w.bin"]
    assert rels(walk(ctx, "main/adapter", others("main/adapter"))) == [
        "main",
        "main/adapter",
        "main/adapter/a.bin",
    ]
    assert rels(walk(ctx, ".", others("."))) == ["src", "src/run.py"]  # the root Kitfile is never packed
    assert rels(walk(ctx, "main/subdir", others("main/subdir"))) == [
        "main",
        "main/subdir",
        "main/subdir/d.csv",
    ]


def test_prefix_sibling_is_not_within_another_layer(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"data/a": "a", "data2/b": "b"})
    assert rels(walk(ctx, "data2", ("data",))) == ["data2", "data2/b"]  # isWithin, not HasPrefix


def test_kitignore_without_negation_skips_ignored_directories_wholesale(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx", {"m/cache/a": "a", "m/cache/keep": "k", "m/w": "w", ".kitignore": "m/cache\n"}
    )
    assert rels(walk(ctx, "m")) == ["m", "m/w"]


def test_kitignore_negation_packs_files_below_an_ignored_dir_without_its_header(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx",
        {"m/cache/a": "a", "m/cache/keep": "k", "m/w": "w", ".kitignore": "m/cache\n!m/cache/keep\n"},
    )
    assert rels(walk(ctx, "m")) == ["m", "m/cache/keep", "m/w"]


def test_layer_path_ignored_by_kitignore_warns_and_keeps_only_parents(tmp_path: Path) -> None:
    ctx = tree(
        tmp_path / "ctx", {"docs/internal/p.md": "p", "docs/public.md": "q", ".kitignore": "docs/internal\n"}
    )
    warnings: list[str] = []
    assert rels(walk(ctx, "docs/internal", warnings=warnings)) == ["docs"]
    assert warnings == [
        "layer path docs/internal is ignored by .kitignore; only its parent directories are packed"
    ]


def test_names_containing_double_dots_are_packed(tmp_path: Path) -> None:
    # kit drops these (its "is it on the layer path" test looks for the substring ".."); kitbridge packs them
    ctx = tree(tmp_path / "ctx", {"model/v1..2.bin": "v", "model/..hidden": "h", "model/x../y": "y"})
    assert rels(walk(ctx, "model")) == [
        "model",
        "model/..hidden",
        "model/v1..2.bin",
        "model/x..",
        "model/x../y",
    ]
    assert rels(walk(ctx, ".")) == ["model", "model/..hidden", "model/v1..2.bin", "model/x..", "model/x../y"]


def test_fifo_is_skipped_with_a_warning(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/a.bin": "a", "model/z.bin": "z"})
    os.mkfifo(ctx / "model/pipe")
    warnings: list[str] = []
    assert rels(walk(ctx, "model", warnings=warnings)) == ["model", "model/a.bin", "model/z.bin"]
    assert warnings == ["skipping model/pipe: not a regular file or directory (named pipe)"]


def test_fifo_outside_the_layer_is_not_reported(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/a.bin": "a"})
    os.mkfifo(ctx / "pipe")
    warnings: list[str] = []
    walk(ctx, "model", warnings=warnings)
    assert warnings == []


def test_symlink_to_file_inside_context_is_packed_as_the_file(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"blobs/real.bin": "0123456789", "model/w.bin": "w"})
    os.chmod(ctx / "blobs/real.bin", 0o640)
    os.symlink("../blobs/real.bin", ctx / "model/link.bin")
    entries = {e.rel: e for e in walk(ctx, "model")}
    assert list(entries) == ["model", "model/link.bin", "model/w.bin"]
    link = entries["model/link.bin"]
    assert (link.is_dir, link.size, link.mode) == (False, 10, 0o640)
    assert link.abspath == Path(os.path.realpath(ctx / "blobs/real.bin"))


def test_symlink_to_directory_inside_context_is_walked_as_a_directory(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"store/snap/a.bin": "a", "store/snap/sub/b.bin": "b", "model/z": "z"})
    os.chmod(ctx / "store/snap", 0o750)
    os.symlink("../store/snap", ctx / "model/snapshot")
    entries = {e.rel: e for e in walk(ctx, "model")}
    assert list(entries) == [
        "model",
        "model/snapshot",
        "model/snapshot/a.bin",
        "model/snapshot/sub",
        "model/snapshot/sub/b.bin",
        "model/z",
    ]
    assert entries["model/snapshot"].is_dir and entries["model/snapshot"].mode == 0o750


def test_layer_path_that_is_a_symlink_inside_the_context_is_followed(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"real/w.bin": "w"})
    os.symlink("real", ctx / "model")
    assert rels(walk(ctx, "model", ("real",))) == ["model", "model/w.bin"]


def test_symlink_loop_is_a_pack_error(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    os.symlink("..", ctx / "model/up")
    with pytest.raises(PackError, match=r"'model/up'.*loop"):
        walk(ctx, "model")


def test_symlink_escaping_the_context_is_a_pack_error(tmp_path: Path) -> None:
    outside = tree(tmp_path / "outside", {"secret": "s"})
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    os.symlink(outside / "secret", ctx / "model/leak")
    with pytest.raises(PackError, match=r"symlink 'model/leak' points to .*outside the context") as e:
        walk(ctx, "model")
    assert e.value.hint and "copy the file into the context" in e.value.hint


def test_relative_symlink_escaping_through_dotdot_is_a_pack_error(tmp_path: Path) -> None:
    tree(tmp_path / "outside", {"secret": "s"})
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    os.symlink("../../outside", ctx / "model/dir")
    with pytest.raises(PackError, match="outside the context"):
        walk(ctx, "model")


def test_dangling_symlink_is_a_pack_error(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    os.symlink("missing.bin", ctx / "model/gone")
    with pytest.raises(PackError, match=r"symlink 'model/gone' points to 'missing.bin'"):
        walk(ctx, "model")


def test_escaping_symlink_outside_the_layer_or_ignored_is_no_error(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w", "code/x.py": "x", ".kitignore": "model/tmp\n"})
    os.symlink("/etc/passwd", ctx / "code/leak")
    os.symlink("/etc/passwd", ctx / "model/tmp")
    assert rels(walk(ctx, "model", ("code",))) == ["model", "model/w.bin"]


def test_missing_layer_path_is_a_pack_error(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    with pytest.raises(PackError, match="'weights' does not exist"):
        walk(ctx, "weights")


@pytest.mark.parametrize("path", ["../x", "model/../../x", "/etc"])
def test_layer_path_leaving_the_context_is_a_pack_error(tmp_path: Path, path: str) -> None:
    ctx = tree(tmp_path / "ctx", {"model/w.bin": "w"})
    with pytest.raises(PackError, match="outside the context"):
        walk(ctx, path)


def test_layer_is_single_file(tmp_path: Path) -> None:
    ctx = tree(tmp_path / "ctx", {"model.gguf": "m", "dir/a": "a", "blobs/b": "b"})
    os.symlink("blobs/b", ctx / "link")
    os.symlink("/etc/passwd", ctx / "leak")
    assert layer_is_single_file(ctx, "./model.gguf") == Path(os.path.realpath(ctx / "model.gguf"))
    assert layer_is_single_file(ctx, "link") == Path(os.path.realpath(ctx / "blobs/b"))
    assert layer_is_single_file(ctx, "dir") is None
    with pytest.raises(PackError, match="does not exist"):
        layer_is_single_file(ctx, "nope")
    with pytest.raises(PackError, match="outside the context"):
        layer_is_single_file(ctx, "leak")
