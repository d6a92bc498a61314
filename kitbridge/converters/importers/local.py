"""The local importer: a folder (or one file) on disk, including a Hugging Face cache snapshot.

A Hugging Face cache repo (``models--org--name/``) keeps each file once under ``blobs/`` (named by
its sha256 for LFS files, by its git blob id otherwise) and makes each revision a directory of
relative symlinks, ``snapshots/<commit>/<path> -> ../../blobs/<etag>``. Those links leave the
snapshot directory, so this importer follows a link when its target stays inside the folder being
imported *or* inside the enclosing cache repo; any other escaping link, and any dangling one, is an
error naming the link. A blob name that is a sha256 is recorded as the file's digest, so nothing
has to hash that file again to know it.

The pack walk refuses links that leave its context directory, so such a tree cannot be packed in
place: :func:`materialize` builds a context directory of **hard links** to the real files (the
snapshot's link targets). Hard links cost no copy and no extra space, they are regular files inside
the context (so the walk packs them under their snapshot names with the blob's bytes and mode), and
they leave the cache untouched. Symlinks inside the context would need the blobs inside it too,
which is the same hard-link problem one level down. Where hard links are impossible (the context is
on another filesystem), the file is copied and the caller is warned.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from kitbridge.converters.importers.base import LOCAL_SCHEME, Provenance, SourceFile, SourceTree
from kitbridge.errors import NotFoundError, PackError, UsageError
from kitbridge.home import home_dir
from kitbridge.kitfile.model import KITFILE_NAMES
from kitbridge.layers.walk import list_dir

JUNK_DIRS = frozenset({".git", ".hg", ".svn", "__MACOSX", ".ipynb_checkpoints", "__pycache__"})
"""Directory names never imported: version control and OS/editor droppings."""
JUNK_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
"""File names (compared case-insensitively) never imported."""
HF_LOCAL_METADATA = ".cache/huggingface"
"""What ``hf download --local-dir`` keeps next to the files (download metadata, locks)."""

_HF_REPO_RE = re.compile(r"(models|datasets|spaces)--(.+)")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


# --- include / exclude globs ----------------------------------------------------------------------------


def _translate(glob: str) -> str:
    """fnmatch's pattern language as a regex body: ``*`` and ``?`` match ``/`` too, ``[...]`` classes."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = glob[i:j].replace("\\", "\\\\")
            i = j + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


@dataclass(frozen=True)
class PathGlob:
    """An ``--include``/``--exclude`` pattern: fnmatch on the ``/`` path relative to the source root.

    ``*`` matches any characters (``/`` too, as in fnmatch and ``hf download``), so ``*.json``
    matches JSON files at any depth; ``**/`` matches zero or more directories; a trailing ``/``
    means "this directory". A pattern that matches a directory matches everything below it.
    """

    pattern: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, pattern: str) -> PathGlob:
        """Parse one pattern; an empty one is a UsageError."""
        p = pattern.strip()
        while p.startswith("./"):
            p = p[2:]
        p = p.rstrip("/")
        if not p:
            raise UsageError(f"empty path pattern {pattern!r}", "give a glob such as '*.safetensors'")
        body = "(?:.*/)?".join(_translate(piece) for piece in p.split("**/"))
        return cls(pattern, re.compile(body, re.DOTALL))

    def matches(self, rel: str) -> bool:
        """Whether the path, or one of its parent directories, matches."""
        if self.regex.fullmatch(rel):
            return True
        parent = rel
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if self.regex.fullmatch(parent):
                return True
        return False


@dataclass(frozen=True)
class PathFilter:
    """Include and exclude globs: a file is kept when an include matches (or there is none) and no exclude."""

    include: tuple[PathGlob, ...] = ()
    exclude: tuple[PathGlob, ...] = ()

    @classmethod
    def compile(cls, include: Sequence[str], exclude: Sequence[str]) -> PathFilter:
        """Parse both lists (see :class:`PathGlob`)."""
        return cls(tuple(map(PathGlob.compile, include)), tuple(map(PathGlob.compile, exclude)))

    def excluded(self, rel: str) -> bool:
        """Whether an exclude pattern matches (the path or a parent): a whole directory can be pruned."""
        return any(g.matches(rel) for g in self.exclude)

    def keeps(self, rel: str) -> bool:
        """Whether a file is imported."""
        if self.include and not any(g.matches(rel) for g in self.include):
            return False
        return not self.excluded(rel)


# --- locating the source --------------------------------------------------------------------------------


def local_path(source: str) -> Path:
    """The filesystem path of a local source: ``file:///abs``, ``file://localhost/abs``, or a plain path."""
    if source[:5].lower() == "file:":
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(
                f"file URI {source!r} names host {parts.netloc!r}",
                "only local files can be imported: file:///absolute/path",
            )
        if parts.query or parts.fragment:
            raise UsageError(f"file URI {source!r} has a query or fragment", "write file:///absolute/path")
        path = urllib.request.url2pathname(parts.path)
        if not path:
            raise UsageError(f"file URI {source!r} has no path", "write file:///absolute/path")
        return Path(path)
    return Path(source).expanduser()


@dataclass(frozen=True)
class HFCacheRepo:
    """A Hugging Face cache repo directory (``models--org--name``) and what its name says."""

    path: Path
    repo_type: str
    """``model``, ``dataset`` or ``space``."""
    repo_id: str

    @classmethod
    def at(cls, path: Path) -> HFCacheRepo | None:
        """The cache repo whose directory is ``path``; None when it does not look like one."""
        m = _HF_REPO_RE.fullmatch(path.name)
        if m is None or not (path / "blobs").is_dir() or not (path / "snapshots").is_dir():
            return None
        return cls(path, m.group(1)[:-1], m.group(2).replace("--", "/"))

    @classmethod
    def enclosing(cls, path: Path) -> tuple[HFCacheRepo, Path] | None:
        """The cache repo and snapshot directory that ``path`` (resolved) lies in, if any."""
        for p in (path, *path.parents):
            if p.parent.name == "snapshots":
                repo = cls.at(p.parent.parent)
                if repo is not None:
                    return repo, p
        return None

    def snapshot(self, revision: str | None) -> Path:
        """The snapshot directory of a revision: a ref (``main``, the default) or a commit sha."""
        rev = revision or "main"
        ref = self.path / "refs" / rev
        commit = rev
        if ref.is_file():
            commit = ref.read_text(encoding="utf-8").strip()
        snap = self.path / "snapshots" / commit
        if not snap.is_dir():
            have = sorted(p.name for p in (self.path / "refs").glob("*") if p.is_file())
            raise NotFoundError(
                f"revision {rev!r} of {self.repo_id} is not in the cache at {self.path}",
                f"cached refs: {', '.join(have) or 'none'}; download it first or pass a cached commit",
            )
        return snap


def _inside(real: str, directory: str) -> bool:
    return real == directory or real.startswith(directory.rstrip(os.sep) + os.sep)


# --- the walk -------------------------------------------------------------------------------------------


def _is_junk(name: str, rel: str, is_dir: bool) -> bool:
    if name in JUNK_DIRS or name.lower() in JUNK_FILES:
        return True
    return is_dir and (rel == HF_LOCAL_METADATA or rel.endswith("/" + HF_LOCAL_METADATA))


@dataclass
class _Walk:
    root: str
    zones: tuple[str, ...]
    """Real directories a link target may lie in."""
    blobs: str | None
    """The HF cache ``blobs`` directory, whose file names are digests."""
    filt: PathFilter
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def resolve_link(self, fs_path: str, rel: str) -> str:
        target = os.readlink(fs_path)
        try:
            real = os.path.realpath(fs_path, strict=True)
        except OSError as e:
            raise PackError(
                f"symlink {rel!r} points to {target!r}, which does not exist ({e.strerror or e})",
                "restore the link's target, remove the link, or --exclude it",
            ) from e
        if not any(_inside(real, z) for z in self.zones):
            where = " or ".join(repr(z) for z in self.zones)
            raise PackError(
                f"symlink {rel!r} points to {real!r}, outside {where}",
                "copy the file into the folder, or --exclude the link; "
                "only links that stay inside the imported folder are followed",
            )
        return real

    def add_file(self, rel: str, real: str, st: os.stat_result) -> None:
        digest = None
        if self.blobs is not None and os.path.dirname(real) == self.blobs:
            name = os.path.basename(real)
            if _SHA256_RE.fullmatch(name):
                digest = name.lower()
        self.files.append(SourceFile(rel, Path(real), st.st_size, digest))

    def entry(self, fs_path: str, rel: str, name: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            st = os.lstat(fs_path)
        except OSError as e:
            raise PackError(f"cannot read {rel!r}: {e.strerror or e}", "was it removed meanwhile?") from e
        if self.filt.excluded(rel):
            self.skipped.append(rel)
            return
        real = fs_path
        if stat.S_ISLNK(st.st_mode):
            if not self.filt.keeps(rel) and not os.path.isdir(fs_path):
                self.skipped.append(rel)  # a link to a file nobody asked for: its target does not matter
                return
            real = self.resolve_link(fs_path, rel)
            st = os.stat(real)
        if _is_junk(name, rel, stat.S_ISDIR(st.st_mode)):
            self.skipped.append(rel)
        elif stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                raise PackError(
                    f"symlink {rel!r} points to {real!r}, a directory that contains the link (a loop)",
                    "remove the link, or --exclude it",
                )
            self.walk(real, rel, ancestors | {key})
        elif not stat.S_ISREG(st.st_mode) or not self.filt.keeps(rel):
            self.skipped.append(rel)
        else:
            self.add_file(rel, real, st)

    def walk(self, directory: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        for name in list_dir(directory, rel):
            child_rel = f"{rel}/{name}" if rel else name
            self.entry(os.path.join(directory, name), child_rel, name, ancestors)


def _walk(root: str, zones: tuple[str, ...], blobs: str | None, filt: PathFilter) -> _Walk:
    walker = _Walk(root, zones, blobs, filt)
    st = os.stat(root)
    walker.walk(root, "", frozenset({(st.st_dev, st.st_ino)}))
    return walker


# --- the importer ---------------------------------------------------------------------------------------


class LocalImporter:
    """Files on this machine: ``file://`` URIs and plain paths (a folder, one file, an HF cache repo)."""

    schemes: ClassVar[tuple[str, ...]] = (LOCAL_SCHEME,)

    def resolve(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        work_dir: Path | None = None,
    ) -> SourceTree:
        """List the source's files (nothing is copied; ``work_dir`` is not used).

        A folder is listed recursively; a file is a tree of that one file in its folder; a Hugging
        Face cache repo directory (``models--org--name``) means its snapshot for ``revision``
        (a ref or commit; default ``main``). ``revision`` is a UsageError for anything else.
        """
        filt = PathFilter.compile(include, exclude)
        path = local_path(source)
        if not os.path.lexists(path):
            raise NotFoundError(f"{source!r}: no such file or directory", "check the path")
        try:
            real = Path(os.path.realpath(path, strict=True))
        except OSError as e:
            raise PackError(
                f"{source!r} cannot be resolved ({e.strerror or e})", "is it a dangling link?"
            ) from e
        repo = HFCacheRepo.at(real) if real.is_dir() else None
        if repo is not None:
            real = Path(os.path.realpath(repo.snapshot(revision)))
            found: tuple[HFCacheRepo, Path] | None = (repo, real)
        else:
            found = HFCacheRepo.enclosing(real)
            if revision is not None and (found is None or not _is_revision(found[0], found[1], revision)):
                raise UsageError(
                    f"--revision {revision!r} does not apply to {source!r}",
                    "a local folder has no revisions; pass the folder of the snapshot you want, "
                    "or a Hugging Face cache repo directory (models--org--name)",
                )
        if real.is_dir():
            root, only = real, None
        elif real.is_file():
            root, only = real.parent, real.name
        else:
            raise PackError(f"{source!r} is neither a file nor a directory", "import a folder or a file")
        zones = (str(root),) if found is None else (str(root), str(found[0].path))
        blobs = None if found is None else str(found[0].path / "blobs")
        if only is None:
            walker = _walk(str(root), zones, blobs, filt)
        else:
            walker = _Walk(str(root), zones, blobs, filt)
            walker.entry(str(root / only), only, only, frozenset())
            walker.skipped += [n for n in list_dir(str(root), "") if n != only]
        provenance = _provenance(real if only is None else root / only, found)
        return SourceTree(root, walker.files, provenance, tuple(walker.skipped))


def _is_revision(repo: HFCacheRepo, snapshot: Path, revision: str) -> bool:
    if snapshot.name == revision:
        return True
    ref = repo.path / "refs" / revision
    return ref.is_file() and ref.read_text(encoding="utf-8").strip() == snapshot.name


def _provenance(real: Path, found: tuple[HFCacheRepo, Path] | None) -> Provenance:
    if found is None:
        return Provenance(source_uri=real.as_uri(), importer=LOCAL_SCHEME)
    repo, snapshot = found
    commit = snapshot.name if _COMMIT_RE.fullmatch(snapshot.name) else None
    return Provenance(
        source_uri=real.as_uri(),
        importer=LOCAL_SCHEME,
        revision=commit,
        extra={"hf.repo_id": repo.repo_id, "hf.repo_type": repo.repo_type, "hf.cache_dir": str(repo.path)},
    )


# --- a context directory pack can read ------------------------------------------------------------------


@dataclass
class PackContext:
    """A directory to pack a SourceTree from; ``cleanup()`` removes it when :func:`materialize` made it."""

    path: Path
    owned: bool
    """Made by materialize in a temporary place (removed by cleanup); False for the tree's own root."""
    linked: int = 0
    """Files hard-linked into it."""
    copied: int = 0
    """Files copied into it (hard links were impossible)."""

    def cleanup(self) -> None:
        """Remove the directory if materialize created it; the tree's own root is never touched."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> PackContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def packable_in_place(tree: SourceTree) -> bool:
    """Whether packing ``tree.root`` itself packs exactly the tree: nothing skipped, no link leaves it."""
    if tree.skipped or tree.remote_files:
        return False
    root = os.path.realpath(tree.root)
    return all(_inside(os.path.realpath(f.abspath), root) for f in tree.files)


_LINK_FALLBACK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _temp_parent(tree: SourceTree) -> Path | None:
    """A place for a temporary context on the same filesystem as the files, so hard links work."""
    if not tree.files:
        return None
    sample = tree.files[0].abspath
    candidates = [Path(tempfile.gettempdir()), home_dir() / "tmp"]
    for c in candidates:
        if c.is_dir() and _same_device(c, sample):
            return c
    home_tmp = candidates[-1]
    if home_tmp.parent.is_dir() and _same_device(home_tmp.parent, sample):
        home_tmp.mkdir(exist_ok=True)
        return home_tmp
    return None


def _parents(rel: str) -> Iterator[str]:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def materialize(
    tree: SourceTree,
    dest: str | os.PathLike[str] | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> PackContext:
    """A context directory that ``kitbridge.pack.pack(context=...)`` packs as exactly this tree.

    Without ``dest``, a tree that is its whole root with no link leaving it is packed in place
    (``PackContext(tree.root, owned=False)``). Otherwise -- files were skipped or filtered, or they
    are HF cache links into ``blobs/`` -- the files are hard-linked into ``dest`` (which must be
    missing or empty), or into a new temporary directory that :meth:`PackContext.cleanup`
    removes. Directories get the source directories' permission bits, so tar headers do not
    depend on the umask. A root-level ``Kitfile`` is not carried over: the caller writes the one
    to pack. Files on another filesystem are copied; ``warn`` hears about it once.
    """
    if dest is None and packable_in_place(tree):
        return PackContext(tree.root, owned=False)
    if dest is None:
        target = Path(tempfile.mkdtemp(prefix="kitbridge-context-", dir=_temp_parent(tree)))
        owned = True
        # mkdtemp makes 0700; a ``code: .`` tar layer records the root's mode, so give it the source's.
        _copy_dir_mode(target, tree.root)
    else:
        target = Path(dest)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UsageError(
                f"context directory {str(target)!r} exists and is not empty",
                "pass a new or empty directory",
            )
        target.mkdir(parents=True, exist_ok=True)
        owned = False
    ctx = PackContext(target, owned)
    try:
        _fill(ctx, tree, warn or (lambda _m: None))
    except BaseException:
        if owned:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return ctx


def _fill(ctx: PackContext, tree: SourceTree, warn: Callable[[str], None]) -> None:
    made: set[str] = set()
    warned = False
    for f in tree.files:
        if f.path in KITFILE_NAMES:
            continue
        for d in _parents(f.path):
            if d not in made:
                _make_dir(ctx.path / d, tree.root / d)
                made.add(d)
        dst = ctx.path / f.path
        if f.remote:
            _copy_sparse(f.abspath, dst, f.size)
            continue
        try:
            os.link(f.abspath, dst)
            ctx.linked += 1
            continue
        except OSError as e:
            if e.errno not in _LINK_FALLBACK:
                raise PackError(f"cannot link {f.path!r} into {str(ctx.path)!r}: {e.strerror or e}") from e
        if not warned:
            warn(
                f"copying files into {ctx.path}: hard links to {tree.root} are not possible there "
                "(another filesystem); pass a context directory on the same filesystem to avoid the copy"
            )
            warned = True
        try:
            shutil.copyfile(f.abspath, dst)
            os.chmod(dst, stat.S_IMODE(os.stat(f.abspath).st_mode))
        except OSError as e:
            raise PackError(f"cannot copy {f.path!r} into {str(ctx.path)!r}: {e.strerror or e}") from e
        ctx.copied += 1


def _copy_sparse(src: Path, dst: Path, size: int) -> None:
    """Copy a remote file's stand-in: its data regions only, holes stay holes (it may be gigabytes long)."""
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fd = fin.fileno()
            pos = 0
            while pos < size:
                try:
                    start = os.lseek(fd, pos, os.SEEK_DATA)
                    end = os.lseek(fd, start, os.SEEK_HOLE)
                except OSError:  # no data after pos (ENXIO), or no SEEK_DATA support: nothing left to copy
                    break
                fin.seek(start)
                fout.seek(start)
                left = end - start
                while left > 0 and (chunk := fin.read(min(left, 1 << 20))):
                    fout.write(chunk)
                    left -= len(chunk)
                pos = end
            fout.truncate(size)
    except OSError as e:
        raise PackError(f"cannot copy the stand-in of {src.name!r}: {e.strerror or e}") from e


def _copy_dir_mode(dst: Path, src: Path) -> None:
    try:
        mode = stat.S_IMODE(os.stat(src).st_mode)
    except OSError:
        mode = 0o755
    os.chmod(dst, mode | stat.S_IRWXU)  # we must be able to fill it


def _make_dir(dst: Path, src: Path) -> None:
    dst.mkdir()
    _copy_dir_mode(dst, src)
