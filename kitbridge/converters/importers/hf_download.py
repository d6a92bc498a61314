"""Fetch Hugging Face repo files into the Hugging Face cache: parallel, resumable, verified while written.

The cache is huggingface_hub's own (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``), in its
layout, so ``hf``/transformers see what kitbridge downloaded and kitbridge reuses what they did::

    models--org--name/blobs/<etag>                  the bytes (etag: sha256 for LFS files, git blob sha1 else)
    models--org--name/snapshots/<commit>/<path>     relative symlink to ../../blobs/<etag>
    models--org--name/refs/<branch or tag>          the commit it pointed at

Each blob is written under huggingface_hub's lock for it (``.locks/<repo folder>/<etag>.lock``) into
``blobs/<etag>.incomplete``, hashed as it arrives (sha256 for LFS files, the git blob sha1 for the
others), checked against what the Hub published, and renamed into place. An interrupted download
leaves the ``.incomplete`` file; the next attempt (in this process, or a later one) hashes what is
there and asks for the rest with ``Range``. huggingface_hub 2.x itself neither resumes across
processes nor checks digests; doing both here is why kitbridge has its own fetch loop.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from huggingface_hub.utils._fixes import WeakFileLock  # the lock huggingface_hub takes for a blob

from kitbridge.errors import DigestMismatchError, SourceError
from kitbridge.parallel import Cancelled

CHUNK = 1 << 20
_MAX_STALLS = 5
"""Consecutive attempts that brought no new byte before a download gives up."""


class _ShortBody(Exception):
    """The body ended before the file did (a dropped connection)."""


class _RangeIgnored(Exception):
    """A resumed request got the whole file (200, not 206)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo revision as the Hub lists it."""

    path: str
    size: int
    blob_id: str | None
    """The git blob sha1 (the ETag of a non-LFS file); None when only a cache told us about the file."""
    sha256: str | None
    """The LFS sha256 (the ETag of an LFS file, and the raw layer digest); None for non-LFS files."""

    @property
    def etag(self) -> str:
        """The cache blob name."""
        etag = self.sha256 or self.blob_id
        if etag is None:
            raise ValueError(f"{self.path}: no etag known")
        return etag


def _new_hasher(f: RemoteFile) -> Any:
    """sha256 for LFS files; git's blob id (sha1 over a ``blob <size>\\0`` header and the bytes) otherwise."""
    if f.sha256:
        return hashlib.sha256()
    h = hashlib.sha1()
    h.update(b"blob %d\0" % f.size)
    return h


def _umask() -> int:
    # os.umask can only be read by setting it; do it once, before any download thread runs.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


@dataclass(frozen=True)
class HubCache:
    """One repo's folder in the Hugging Face cache."""

    cache_dir: Path
    repo_type: str
    repo_id: str

    @property
    def folder_name(self) -> str:
        """``models--org--name`` (the same function huggingface_hub uses)."""
        return f"{self.repo_type}s--" + self.repo_id.replace("/", "--")

    @property
    def path(self) -> Path:
        """The repo folder."""
        return self.cache_dir / self.folder_name

    def blob(self, f: RemoteFile) -> Path:
        """Where the file's bytes live (whether or not they are there yet)."""
        return self.path / "blobs" / f.etag

    def snapshot(self, commit: str) -> Path:
        """The snapshot folder of a commit."""
        return self.path / "snapshots" / commit

    def has(self, f: RemoteFile) -> bool:
        """The blob is complete in the cache (right size; its name is its digest)."""
        try:
            return self.blob(f).stat().st_size == f.size
        except OSError:
            return False

    def link(self, commit: str, f: RemoteFile) -> Path:
        """Make ``snapshots/<commit>/<path>`` point at the blob, as huggingface_hub does; return it."""
        dst = self.snapshot(commit) / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(self.blob(f), dst.parent)
        try:
            if os.readlink(dst) == rel:
                return dst
            os.unlink(dst)
        except FileNotFoundError:
            pass
        except OSError:  # a regular file where the link goes (symlink-less cache): replace it
            os.unlink(dst)
        os.symlink(rel, dst)
        return dst

    def write_ref(self, name: str, commit: str) -> None:
        """Record that a branch or tag pointed at a commit (what ``HF_HUB_OFFLINE`` reads later)."""
        ref = self.path / "refs" / name
        ref.parent.mkdir(parents=True, exist_ok=True)
        try:
            if ref.read_text() == commit:
                return
        except OSError:
            pass
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(commit)
        os.replace(tmp, ref)

    def lock(self, f: RemoteFile) -> Any:
        """huggingface_hub's lock for this blob, so its downloads and ours never write the same file."""
        path = self.cache_dir / ".locks" / self.folder_name / f"{f.etag}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return WeakFileLock(path)


@dataclass
class Fetcher:
    """Downloads files of one repo commit into the cache with one HTTP session."""

    cache: HubCache
    commit: str
    url_for: Callable[[str], str]
    headers: Mapping[str, str]
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers.update(self.headers)
            self._local.session = s
        return s

    def fetch(self, f: RemoteFile, on_bytes: Callable[[int], None]) -> bool:
        """Make the file complete in the cache and linked in the snapshot; False when it already was."""
        self.cache.blob(f).parent.mkdir(parents=True, exist_ok=True)
        with self.cache.lock(f):
            if self.cache.has(f):
                self.cache.link(self.commit, f)
                return False
            self._download(f, on_bytes)
        self.cache.link(self.commit, f)
        return True

    def _download(self, f: RemoteFile, on_bytes: Callable[[int], None]) -> None:
        blob = self.cache.blob(f)
        partial = blob.with_name(blob.name + ".incomplete")
        hasher = _new_hasher(f)
        have = _rehash(partial, hasher, f.size)
        if have:
            on_bytes(have)
        stalls = 0
        with open(partial, "ab") as out:
            while have < f.size or f.size == 0:
                try:
                    have = self._get(f, out, have, hasher, on_bytes)
                    if f.size == 0:
                        break
                except Cancelled:
                    raise
                except _RangeIgnored:  # the server sent the whole file again: start over
                    out.seek(0)
                    out.truncate()
                    hasher = _new_hasher(f)
                    have = 0
                    continue
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    _ShortBody,
                ) as e:
                    progressed = out.tell() > have
                    have = out.tell()
                    stalls = 0 if progressed else stalls + 1
                    if stalls >= _MAX_STALLS:
                        raise SourceError(
                            f"downloading {f.path} failed after {have} of {f.size} bytes: {e}",
                            "run the import again: it resumes where this one stopped",
                        ) from e
                    time.sleep(min(0.2 * 2**stalls, 2.0))
        got = hasher.hexdigest()
        want = f.sha256 or f.blob_id
        if want is not None and got != want:
            partial.unlink(missing_ok=True)
            kind = "sha256" if f.sha256 else "git blob id"
            raise DigestMismatchError(
                f"{f.path} downloaded with {kind} {got}, but the Hub lists {want}",
                "the download was corrupted or the server is wrong; run the import again",
            )
        os.chmod(partial, 0o666 & ~_UMASK)
        os.replace(partial, blob)

    def _get(self, f: RemoteFile, out: Any, have: int, hasher: Any, on_bytes: Callable[[int], None]) -> int:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._session().get(
            self.url_for(f.path), headers=headers, stream=True, timeout=self.timeout
        ) as r:
            if r.status_code == 416 and have >= f.size:
                return have
            if r.status_code >= 400:
                raise SourceError(
                    f"the Hub answered HTTP {r.status_code} for {f.path}",
                    "check the repo and revision, then run the import again",
                )
            if have and r.status_code == 200:
                raise _RangeIgnored
            for chunk in r.iter_content(CHUNK):
                out.write(chunk)
                hasher.update(chunk)
                have += len(chunk)
                on_bytes(len(chunk))
            out.flush()
        if have < f.size:
            raise _ShortBody(f"the connection closed after {have} of {f.size} bytes")
        if have > f.size:
            raise SourceError(f"the Hub sent {have} bytes for {f.path}, which it lists as {f.size} bytes")
        return have


def _rehash(partial: Path, hasher: Any, size: int) -> int:
    """Feed an earlier attempt's bytes to the hasher; returns how many (0, and no file, when unusable)."""
    try:
        have = partial.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:
        partial.unlink()
        return 0
    with open(partial, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return have


def fetch_header(fetcher: Fetcher, f: RemoteFile, dest: Path, limit: int = 16 << 20) -> int:
    """Write a sparse stand-in for ``f`` at ``dest``: its real header bytes, then a hole to its size.

    The profile reads only headers (safetensors' JSON header, GGUF's metadata), so a stand-in
    gives the same facts as the whole file for a few KiB of traffic. Returns the header bytes written.
    """
    want = _header_length(fetcher, f, limit)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        if want:
            out.write(_first_bytes(fetcher, f, want))
        out.truncate(f.size)
    return want


def _first_bytes(fetcher: Fetcher, f: RemoteFile, n: int) -> bytes:
    """The first ``n`` bytes of the file, asked for with Range and read no further even if the server
    ignores Range and sends the whole file (200)."""
    url = fetcher.url_for(f.path)
    with fetcher._session().get(
        url, headers={"Range": f"bytes=0-{n - 1}"}, stream=True, timeout=fetcher.timeout
    ) as r:
        if r.status_code not in (200, 206):
            raise SourceError(f"the Hub answered HTTP {r.status_code} for the header of {f.path}")
        got = bytearray()
        for chunk in r.iter_content(min(n, CHUNK)):
            got += chunk
            if len(got) >= n:
                break
    if len(got) < n:
        raise SourceError(f"the Hub sent {len(got)} bytes of the {n}-byte header of {f.path}", "try again")
    return bytes(got[:n])


def _header_length(fetcher: Fetcher, f: RemoteFile, limit: int) -> int:
    if PurePosixPath(f.path).suffix.lower() != ".safetensors" or f.size < 8:
        return min(f.size, limit)
    return min(f.size, 8 + int.from_bytes(_first_bytes(fetcher, f, 8), "little"), limit)
