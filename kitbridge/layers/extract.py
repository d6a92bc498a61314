"""Safe extraction of layer blobs (tar, tar+gzip, tar+zstd, raw) into a target folder, as kit unpacks.

An unpack is two passes over every layer, driven by :class:`Unpacker`:

1. ``scan`` each layer before any is extracted: stream the blob once, hash it, read its tar
   headers and check every entry: relative, no ``..``, not through an existing symlink that leaves
   the target, only regular files and directories, no clash with another layer, and no existing
   file unless ``overwrite`` (replace it) or ``ignore_existing`` (keep it). Any refusal, or a blob
   whose sha256 is not its digest, stops the unpack with nothing written at all.
2. ``extract`` each layer: stream the blob again (hashing again, and checking each entry against
   the scan), write every file to a temp name in its final directory, and rename it into place.
   If anything fails, :meth:`Unpacker.rollback` removes every file and directory this unpack
   created and puts back the files it replaced.

Modes: the permission bits (``0o777``) of files and directories are restored exactly, without the
umask; setuid, setgid and sticky bits are dropped; owners and mtimes are not restored. Directory
modes are applied at the end, so a read-only directory can still be filled.
Python's ``tarfile`` only *reads* headers here (stream mode, PAX and GNU long names included);
every path decision is made by this module.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import stat
import tarfile
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Literal, cast

import zstandard

from kitbridge.errors import UnpackError, UnsafeArchiveError
from kitbridge.oci import digest as digests

Kind = Literal["file", "dir"]
Action = Literal["create", "replace", "skip", "merge"]
LayerFormat = Literal["tar", "raw"]
Compression = Literal["none", "gzip", "zstd"]

DEFAULT_RAW_MODE = 0o644
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_TYPE_NAMES = {
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}
_EXISTING_HINT = "pass --overwrite to replace existing files or --ignore-existing to keep them"
_DECODE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, zstandard.ZstdError)


@dataclass(frozen=True)
class PlannedEntry:
    """One entry of a layer as scanned: where it goes and what extraction will do with it."""

    path: str  # relative, "/"-separated, normalised (no ".", "..", or empty parts)
    kind: Kind
    mode: int  # permission bits only
    size: int
    action: Action


@dataclass(frozen=True)
class LayerPlan:
    """The scanned, verified contents of one layer blob and what extracting it will do."""

    digest: str
    media_type: str
    format: LayerFormat
    compression: Compression
    dest: Path  # the target, symlinks resolved
    entries: tuple[PlannedEntry, ...]

    @property
    def size(self) -> int:
        """Bytes of file content the layer holds."""
        return sum(e.size for e in self.entries if e.kind == "file")


def layer_encoding(media_type: str) -> tuple[LayerFormat, Compression]:
    """(format, compression) of a layer media type: ``…tar``, ``…tar+gzip``, ``…tar+zstd`` or ``…raw``."""
    mt = media_type.lower()
    if mt.endswith(("tar+gzip", "tar.gzip", ".tar.gz")):
        return "tar", "gzip"
    if mt.endswith(("tar+zstd", "tar.zstd")):
        return "tar", "zstd"
    if mt.endswith((".tar", "/x-tar")):
        return "tar", "none"
    if mt.endswith(".raw"):
        return "raw", "none"
    raise UnpackError(
        f"unsupported layer media type {media_type!r}",
        "kitbridge unpacks tar, tar+gzip, tar+zstd and raw layers",
    )


def _normalize(name: str, digest: str) -> str | None:
    """The safe relative path of an archive name; None for the target itself (``.``)."""
    if "\x00" in name:
        raise _unsafe(digest, name, "contains a NUL byte")
    if name.startswith("/"):
        raise _unsafe(digest, name, "is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(digest, name, "has a '..' component")
    return "/".join(parts) or None


def _unsafe(digest: str, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"layer {digest}: entry {name!r} {why}; nothing was unpacked",
        "the ModelKit is malformed or malicious; do not unpack it",
    )


def _within(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _classify(member: tarfile.TarInfo, digest: str) -> Kind:
    if member.type == tarfile.DIRTYPE:
        return "dir"
    if member.type in _FILE_TYPES and member.sparse is None:
        return "file"
    what = _TYPE_NAMES.get(member.type, f"entry of tar type {member.type!r}")
    raise _unsafe(digest, member.name, f"is a {what}; only regular files and directories are allowed")


class _HashingReader:
    """Reads a blob, hashing every byte that passes (and counting them)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(digests.CHUNK):
            pass

    def check(self, digest: str) -> None:
        self.drain()
        digests.check(digest, "sha256:" + self._hash.hexdigest(), f"layer {digest}")


def _decompressed(raw: _HashingReader, compression: Compression) -> IO[bytes]:
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=cast(IO[bytes], raw), mode="rb"))
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], raw), read_across_frames=True, closefd=False
        )
        return cast(IO[bytes], reader)
    return cast(IO[bytes], raw)


def _open_tar(raw: _HashingReader, compression: Compression) -> tarfile.TarFile:
    # A large bufsize: stream mode otherwise reads (and hashes) 10 KiB at a time.
    return tarfile.open(fileobj=_decompressed(raw, compression), mode="r|", bufsize=digests.CHUNK)


class Unpacker:
    """One unpack into ``dest``: scan every layer, then extract; rolls back everything on failure.

    Use as a context manager: leaving the block normally commits (directory modes applied,
    replaced files' backups dropped); an exception rolls back.
    """

    def __init__(
        self, dest: str | os.PathLike[str], *, overwrite: bool = False, ignore_existing: bool = False
    ):
        if overwrite and ignore_existing:
            raise UnpackError("overwrite and ignore_existing exclude each other", "choose one of them")
        self.dest = Path(dest)
        self.dest_real = Path(os.path.realpath(self.dest))
        self.overwrite = overwrite
        self.ignore_existing = ignore_existing
        self._claimed: dict[str, Kind] = {}
        # (what, path, backup) in the order done; rollback walks it backwards.
        self._journal: list[tuple[str, Path, Path | None]] = []
        self._temps: set[Path] = set()
        self._created_dirs: set[Path] = set()
        self._dir_modes: dict[Path, int] = {}
        self._done = False

    def __enter__(self) -> Unpacker:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.commit()
        else:
            self.rollback()

    # ---- pass 1: scan ------------------------------------------------------------------------

    def scan(
        self,
        blob: BinaryIO,
        media_type: str,
        digest: str,
        *,
        filepath: str | None = None,
        mode: int | None = None,
    ) -> LayerPlan:
        """Read and verify one layer blob and plan its extraction; writes nothing.

        ``filepath`` (the ``org.cncf.model.filepath`` annotation) names the file of a raw layer;
        ``mode`` its permission bits (default 0o644).
        """
        digests.validate(digest)
        fmt, compression = layer_encoding(media_type)
        if self.dest.exists() and not self.dest.is_dir():
            raise UnpackError(f"{self.dest} exists and is not a directory", "unpack into a folder")
        raw = _HashingReader(blob)
        entries: list[PlannedEntry] = []
        if fmt == "raw":
            if not filepath:
                raise UnpackError(
                    f"raw layer {digest} has no org.cncf.model.filepath annotation",
                    "the ModelKit is incomplete; a raw layer needs the path of its file",
                )
            rel = _normalize(filepath, digest)
            if rel is None:
                raise _unsafe(digest, filepath, "does not name a file")
            perm = (DEFAULT_RAW_MODE if mode is None else mode) & 0o777
            action = self._plan(rel, "file")
            raw.check(digest)
            entries.append(PlannedEntry(rel, "file", perm, raw.size, action))
        else:
            try:
                with _open_tar(raw, compression) as tf:
                    for member in tf:
                        kind = _classify(member, digest)
                        rel = _normalize(member.name, digest)
                        if rel is None:
                            if kind == "dir":
                                continue
                            raise _unsafe(digest, member.name, "does not name a file")
                        size = member.size if kind == "file" else 0
                        action = self._plan(rel, kind)
                        entries.append(PlannedEntry(rel, kind, member.mode & 0o777, size, action))
            except _DECODE_ERRORS as e:
                raw.check(digest)  # a corrupt blob is reported as such, not as a bad tar
                raise UnpackError(
                    f"layer {digest} is not a readable {media_type} ({e})",
                    "the blob is damaged; pull it again",
                ) from e
            raw.check(digest)
        return LayerPlan(digest, media_type, fmt, compression, self.dest_real, tuple(entries))

    def _plan(self, rel: str, kind: Kind) -> Action:
        """Check ``rel`` against this unpack's other entries and the target; return what to do."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            anc = "/".join(parts[:i])
            if self._claimed.get(anc) == "file":
                raise UnpackError(
                    f"{rel!r} lies under {anc!r}, which is a file in this ModelKit",
                    "the ModelKit's layers contradict each other",
                )
        prev = self._claimed.get(rel)
        if prev is not None and not (prev == "dir" and kind == "dir"):
            raise UnpackError(
                f"{rel!r} appears more than once in the ModelKit's layers (as {prev} and {kind})",
                "the ModelKit's layers overlap; unpack fewer layers with --filter",
            )
        action = self._check_target(rel, kind)
        for i in range(1, len(parts)):
            self._claimed.setdefault("/".join(parts[:i]), "dir")
        self._claimed[rel] = kind
        return action

    def _existing_file(self, rel: str) -> Action:
        if self.overwrite:
            return "replace"
        if self.ignore_existing:
            return "skip"
        raise UnpackError(f"{rel!r} already exists in {self.dest}", _EXISTING_HINT)

    def _check_target(self, rel: str, kind: Kind) -> Action:
        """What is already in the target at ``rel``: refuse escapes through symlinks and type clashes."""
        parts = rel.split("/")
        root = str(self.dest_real)
        cur = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            p = os.path.join(cur, part)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                return "create"
            if stat.S_ISLNK(st.st_mode):
                if last and kind == "file":
                    return self._existing_file(rel)  # the link itself is replaced or kept, never followed
                real = os.path.realpath(p)
                if not _within(real, root):
                    raise UnsafeArchiveError(
                        f"{rel!r} would be written outside {self.dest} through the symlink {p} -> "
                        f"{os.readlink(p)}; nothing was unpacked",
                        "remove the symlink, or unpack into an empty folder",
                    )
                try:
                    st = os.stat(real)
                except FileNotFoundError:
                    raise UnpackError(
                        f"{rel!r} would be written through the dangling symlink {p}", "remove the symlink"
                    ) from None
                p = real
            if last:
                if kind == "dir":
                    if stat.S_ISDIR(st.st_mode):
                        return "merge"
                    raise UnpackError(
                        f"{rel!r} exists in {self.dest} and is not a directory",
                        "remove it, or unpack elsewhere",
                    )
                if stat.S_ISDIR(st.st_mode):
                    raise UnpackError(
                        f"{rel!r} exists in {self.dest} as a directory", "remove it, or unpack elsewhere"
                    )
                return self._existing_file(rel)
            if not stat.S_ISDIR(st.st_mode):
                raise UnpackError(
                    f"cannot unpack {rel!r}: {'/'.join(parts[: i + 1])!r} exists in {self.dest} "
                    "and is not a directory",
                    "remove it, or unpack elsewhere",
                )
            cur = p
        return "create"

    # ---- pass 2: extract ---------------------------------------------------------------------

    def extract(self, blob: BinaryIO, plan: LayerPlan) -> None:
        """Write a scanned layer into the target (re-hashing the blob and checking it against the plan)."""
        try:
            self._extract(blob, plan)
        except OSError as e:
            raise UnpackError(
                f"cannot unpack layer {plan.digest} into {self.dest}: {e}", "check free space and permissions"
            ) from e

    def _extract(self, blob: BinaryIO, plan: LayerPlan) -> None:
        if self._done:
            raise UnpackError("this unpack has already finished", "start a new one")
        if plan.dest != self.dest_real:
            raise UnpackError(
                f"layer {plan.digest} was scanned for {plan.dest}, not {self.dest}", "scan it again"
            )
        self._make_dirs("")
        raw = _HashingReader(blob)
        if plan.format == "raw":
            (only,) = plan.entries
            if only.action != "skip":
                self._write_file(only, raw)
            raw.check(plan.digest)
            return
        expected = iter(plan.entries)
        changed = UnpackError(
            f"layer {plan.digest} changed between scan and extract",
            "something is rewriting the store; try again",
        )
        with _open_tar(raw, plan.compression) as tf:
            for member in tf:
                kind = _classify(member, plan.digest)
                rel = _normalize(member.name, plan.digest)
                if rel is None:
                    continue
                entry = next(expected, None)
                size = member.size if kind == "file" else 0
                if entry is None or (entry.path, entry.kind, entry.size) != (rel, kind, size):
                    raise changed
                if kind == "dir":
                    made = self._make_dirs(rel)
                    if made in self._created_dirs:
                        self._dir_modes[made] = entry.mode
                elif entry.action != "skip":
                    src = tf.extractfile(member)
                    if src is None:
                        raise changed
                    self._write_file(entry, src)
        if next(expected, None) is not None:
            raise changed
        raw.check(plan.digest)

    def _make_dirs(self, rel: str) -> Path:
        """Create the target and ``rel`` below it as needed; return the real path (checked inside)."""
        root = str(self.dest_real)
        if not self.dest_real.is_dir():
            missing = []
            p = self.dest_real
            while not p.exists() and p != p.parent:
                missing.append(p)
                p = p.parent
            for d in reversed(missing):
                self._mkdir(d)
        cur = self.dest_real
        for part in rel.split("/") if rel else []:
            p = cur / part
            if not self._mkdir(p):
                real = os.path.realpath(p)
                if not _within(real, root) or not os.path.isdir(real):
                    raise UnsafeArchiveError(
                        f"{p} is no longer a directory inside {self.dest}; unpack stopped and rolled back",
                        "something changed the target while unpacking; try again",
                    )
                p = Path(real)
            cur = p
        return cur

    def _mkdir(self, p: Path) -> bool:
        try:
            os.mkdir(p)
        except FileExistsError:
            return False
        self._journal.append(("dir", p, None))
        self._created_dirs.add(p)
        return True

    def _write_file(self, entry: PlannedEntry, src: IO[bytes] | _HashingReader) -> None:
        parent_rel, _, name = entry.path.rpartition("/")
        parent = self._make_dirs(parent_rel)
        final = parent / name
        tmp = parent / f".kitbridge-{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self._temps.add(tmp)
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(digests.CHUNK):
                f.write(chunk)
            os.fchmod(f.fileno(), entry.mode)
        if entry.action == "replace":
            self._journal.append(("replace", final, self._backup(final)))
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)  # fails instead of clobbering a file that appeared since the scan
            except FileExistsError:
                raise UnpackError(
                    f"{entry.path!r} appeared in {self.dest} while unpacking", _EXISTING_HINT
                ) from None
            except OSError:
                if os.path.lexists(final):
                    raise UnpackError(
                        f"{entry.path!r} appeared in {self.dest} while unpacking", _EXISTING_HINT
                    ) from None
                os.rename(tmp, final)
            else:
                os.unlink(tmp)
            self._journal.append(("file", final, None))
        self._temps.discard(tmp)

    def _backup(self, final: Path) -> Path | None:
        """Keep the file about to be replaced under a temp name (None if it is already gone)."""
        backup = final.parent / f".kitbridge-{secrets.token_hex(8)}.bak"
        try:
            os.link(final, backup, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError:
            os.rename(final, backup)  # no hardlinks here: a moment without the file, still restorable
        return backup

    # ---- finish ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Finish: apply directory modes (deepest first) and drop the backups of replaced files."""
        if self._done:
            return
        self._done = True
        for what, _path, backup in self._journal:
            if what == "replace" and backup is not None:
                backup.unlink(missing_ok=True)
        for d in sorted(self._dir_modes, key=lambda p: len(p.parts), reverse=True):
            os.chmod(d, self._dir_modes[d])

    def rollback(self) -> None:
        """Undo this unpack: remove what it created, restore what it replaced."""
        if self._done:
            return
        self._done = True
        for tmp in self._temps:
            tmp.unlink(missing_ok=True)
        for what, path, backup in reversed(self._journal):
            with suppress(OSError):  # best effort: keep undoing the rest
                if what == "file":
                    path.unlink(missing_ok=True)
                elif what == "replace" and backup is not None:
                    os.replace(backup, path)
                elif what == "replace":
                    path.unlink(missing_ok=True)
                else:
                    path.rmdir()


def scan_layer(
    blob: BinaryIO,
    media_type: str,
    dest: str | os.PathLike[str],
    *,
    digest: str,
    overwrite: bool = False,
    ignore_existing: bool = False,
    filepath: str | None = None,
    mode: int | None = None,
) -> LayerPlan:
    """Scan one layer on its own (a whole unpack should use one :class:`Unpacker` for all layers)."""
    unpacker = Unpacker(dest, overwrite=overwrite, ignore_existing=ignore_existing)
    return unpacker.scan(blob, media_type, digest, filepath=filepath, mode=mode)


def extract_layer(blob: BinaryIO, plan: LayerPlan) -> None:
    """Extract one scanned layer into ``plan.dest``, rolling it back on failure."""
    with Unpacker(plan.dest) as unpacker:
        unpacker.extract(blob, plan)
