"""Kit's walk for one layer: which context entries a layer holds, in the order kit writes them.

Kit walks the *whole* context with Go's ``filepath.Walk`` (names sorted bytewise per directory,
depth-first pre-order, ``lstat``) and keeps an entry when it is the layer path, lies below it, or
is one of its parent directories; then drops what ``.kitignore`` ignores and what belongs to
another, more specific layer. kitbridge follows that exactly, with two deliberate differences:

* a symlink whose target stays inside the context is packed as its target (a file's content,
  size and mode under the link's own name; a directory is walked), while kit skips it; a link that
  escapes the context or dangles is an error rather than silently missing data;
* the "is it on the layer's path" test works on path components, so a name that merely contains
  ``..`` (``v1..2.bin``) is packed; kit's substring test drops it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kitbridge.errors import PackError
from kitbridge.layers.ignore import IgnoreMatcher, go_clean


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """One tar entry of a layer: archive name, where its bytes are, and the stat facts kit records."""

    rel: str
    """Slash-separated path relative to the context; no trailing slash on directories."""
    abspath: Path
    """The file or directory to read (a symlink's resolved target)."""
    is_dir: bool
    mode: int
    """Permission bits plus setuid/setgid/sticky (``stat.S_IMODE``)."""
    size: int
    """Bytes of content; 0 for directories."""


def is_within(path: str, directory: str) -> bool:
    """Kit's ``isWithin``: ``path`` is ``directory`` or lies below it (``.`` holds everything)."""
    return directory == "." or path == directory or path.startswith(directory + "/")


def clean_layer_path(layer_path: str) -> str:
    """The cleaned, slash-separated layer path; a PackError when it leaves the context."""
    base = go_clean(layer_path.replace(os.sep, "/"))
    if base.startswith("/") or base == ".." or base.startswith("../"):
        raise PackError(
            f"layer path {layer_path!r} is outside the context directory",
            "layer paths are relative to the context directory and may not leave it",
        )
    return base


def walk_layer(
    context: str | os.PathLike[str],
    layer_path: str,
    other_layer_paths: Sequence[str],
    ignore: IgnoreMatcher,
    warn: Callable[[str], None],
) -> Iterator[WalkEntry]:
    """The entries of the layer for ``layer_path``, in kit's order (checks the path exists first).

    ``other_layer_paths`` are the paths of the Kitfile's other layers: what lies inside one of them
    that does not itself contain this layer belongs to that layer only. ``warn`` receives messages
    about skipped entries (FIFOs, sockets, devices) and a layer path that ``.kitignore`` ignores.
    """
    ctx = Path(context)
    base = clean_layer_path(layer_path)
    ctx_real = os.path.realpath(ctx)
    if not os.path.isdir(ctx_real):
        raise PackError(
            f"context {str(ctx)!r} is not a directory", "pass the directory that holds the Kitfile"
        )
    if not os.path.lexists(os.path.join(ctx_real, base)):
        raise PackError(
            f"layer path {layer_path!r} does not exist in {str(ctx)!r}",
            "fix the path in the Kitfile; paths are relative to the context directory",
        )
    if base != "." and ignore.matches(base):
        warn(f"layer path {layer_path} is ignored by .kitignore; only its parent directories are packed")
    # Another layer's path takes the entries inside it, unless it contains this layer itself.
    claimed = sorted({p for p in map(clean_layer_path, other_layer_paths) if not is_within(base, p)})
    return _walk(ctx_real, base, claimed, ignore, warn)


def layer_is_single_file(context: str | os.PathLike[str], layer_path: str) -> Path | None:
    """The file a raw layer would hold: the regular file at ``layer_path`` (links resolved), else None.

    None means the path is a directory or not a regular file, so it cannot be one raw blob. A path
    that does not exist, or a link that dangles or leaves the context, is a PackError.
    """
    ctx_real = os.path.realpath(Path(context))
    base = clean_layer_path(layer_path)
    full = os.path.join(ctx_real, base)
    if not os.path.lexists(full):
        raise PackError(
            f"layer path {layer_path!r} does not exist in {str(context)!r}",
            "fix the path in the Kitfile; paths are relative to the context directory",
        )
    real, st = _resolve(full, base, ctx_real)
    return Path(real) if stat.S_ISREG(st.st_mode) else None


def _resolve(fs_path: str, rel: str, ctx_real: str) -> tuple[str, os.stat_result]:
    """Resolve a path that may involve symlinks; it must exist and stay inside the context."""
    try:
        real = os.path.realpath(fs_path, strict=True)
        st = os.stat(real)
    except OSError as e:
        target = _readlink(fs_path)
        raise PackError(
            f"symlink {rel!r} points to {target!r}, which cannot be resolved ({e.strerror or e})",
            "restore the link's target, or remove the link",
        ) from e
    if not _inside(real, ctx_real):
        raise PackError(
            f"symlink {rel!r} points to {real!r}, outside the context directory {ctx_real!r}",
            "copy the file into the context, or remove the link; only links within the context are followed",
        )
    return real, st


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return path


def _inside(real: str, ctx_real: str) -> bool:
    return real == ctx_real or real.startswith(ctx_real.rstrip(os.sep) + os.sep)


def _walk(
    ctx_real: str,
    base: str,
    claimed: list[str],
    ignore: IgnoreMatcher,
    warn: Callable[[str], None],
) -> Iterator[WalkEntry]:
    root_st = os.stat(ctx_real)
    # Each frame: (archive dir name, real dir path, its remaining names, (dev, ino) of the dirs open).
    stack: list[tuple[str, str, Iterator[str], frozenset[tuple[int, int]]]] = []
    ancestors = frozenset({(root_st.st_dev, root_st.st_ino)})
    stack.append(("", ctx_real, iter(list_dir(ctx_real, ".")), ancestors))
    while stack:
        dir_rel, dir_fs, names, ancestors = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        rel = f"{dir_rel}/{name}" if dir_rel else name
        # On the layer's path: the layer itself, below it, or one of its parent directories.
        if not (is_within(rel, base) or is_within(base, rel)):
            continue
        fs_path = os.path.join(dir_fs, name)
        try:
            st = os.lstat(fs_path)
        except OSError as e:
            raise PackError(
                f"cannot read {rel!r}: {e.strerror or e}", "was it removed or changed while packing?"
            ) from e
        excluded = any(is_within(rel, p) for p in claimed)
        ignored = excluded or ignore.matches(rel)
        # An ignored directory is still walked when a "!" pattern may re-include something below it
        # (kit then packs those entries without the directory's own header). Entries inside another
        # layer's path can never be re-included, so that directory is skipped wholesale.
        descend_ignored = ignored and not excluded and ignore.has_exclusions
        if ignored and not descend_ignored:
            continue
        real = fs_path
        if stat.S_ISLNK(st.st_mode):
            if ignored:
                try:
                    real, st = _resolve(fs_path, rel, ctx_real)
                except PackError:
                    continue  # an ignored link needs no target
            else:
                real, st = _resolve(fs_path, rel, ctx_real)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                raise PackError(
                    f"symlink {rel!r} points to {real!r}, a directory that contains the link (a loop)",
                    "remove the link, or point it at a directory outside its own parents",
                )
            if not ignored:
                yield WalkEntry(rel, Path(real), True, stat.S_IMODE(mode), 0)
            stack.append((rel, real, iter(list_dir(real, rel)), ancestors | {key}))
        elif stat.S_ISREG(mode):
            if not ignored:
                yield WalkEntry(rel, Path(real), False, stat.S_IMODE(mode), st.st_size)
        elif not ignored:
            warn(f"skipping {rel}: not a regular file or directory ({_kind(mode)})")


def list_dir(path: str, rel: str) -> list[str]:
    """A directory's names in Go's order: sorted by their bytes."""
    try:
        names = os.listdir(path)
    except OSError as e:
        raise PackError(
            f"cannot list directory {rel or '.'!r}: {e.strerror or e}", "check the directory's permissions"
        ) from e
    names.sort(key=os.fsencode)
    return names


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
