"""Streaming layer writers: one pass over the bytes, hashed while they are written.

The main thread reads file data straight into a small ring of reused 2 MiB buffers (headers and
padding are copied in between) and hashes each full buffer while it is still in the core's cache;
a worker thread writes it to the sink meanwhile. For compressed layers a compressor thread sits in
between: it compresses, hashes its output, and queues it for the writer. hashlib, zlib, zstandard
and file I/O release the GIL on large buffers, so the stages overlap.

The ring's buffers are page-aligned (anonymous mmaps) and every uncompressed chunk but the last
fills one, so a sink may write an uncompressed layer with ``O_DIRECT`` (pack's staging sink does):
the disk then reads straight from the ring, the writer thread needs next to no CPU, and the layer
costs about as much as hashing the same bytes (the read from the page cache and the hash, both in
the main thread; see ``oci/writeback.py`` for what a page-cache copy costs instead).

Compressed bytes are deterministic for a given zlib / libzstd build, but they cannot equal kit's
(Go's encoders differ); the ``diff_id`` (sha256 of the uncompressed tar) always matches kit.
* gzip: level 1 (best speed: model weights barely compress, so higher levels cost much more time
  for little gain; zlib still manages only ~60 MB/s on incompressible data), raw deflate wrapped
  in a header written here like Go's ``compress/gzip`` (mtime 0, no name, XFL 4 for best speed,
  OS 255), so the bytes do not depend on the platform's zlib gzip header.
* zstd: level 3 (zstd's default), single-threaded, no content size, no checksum.
"""

from __future__ import annotations

import collections
import hashlib
import io
import mmap
import os
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import zstandard

from kitbridge.errors import PackError
from kitbridge.layers.walk import WalkEntry
from kitbridge.oci import tar

Compression = Literal["none", "gzip", "zstd"]


class Sink(Protocol):
    """Where layer bytes go: a file, a store staging file, an upload; only ``write`` is needed."""

    def write(self, data: memoryview, /) -> int | None: ...


GZIP_LEVEL = 1
ZSTD_LEVEL = 3
# 2 MiB pieces stay in this core's 4 MiB L2 between the read and the hash (4 MiB ones measured
# slower); four of them let the reader run 6 MiB ahead of the writer. 2 MiB direct writes reach the
# disk's full speed (measured: 1, 2, 8 MiB and 2-4 writes in flight all ~2 GB/s on a virtio disk).
_RING_CHUNK = 2 * 1024 * 1024
_BUFFERS = 4
_OUT_SLOTS = 16  # compressed chunks queued between the compressor and the writer
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # Go compress/gzip, BestSpeed, mtime 0

_Chunk = memoryview | bytes


@dataclass(frozen=True)
class LayerDigests:
    """What a layer writer produced: blob digest and size, and the uncompressed tar's digest."""

    digest: str
    diff_id: str
    size: int


def write_tar_layer(
    entries: Iterable[WalkEntry], sink: Sink, compression: Compression = "none"
) -> LayerDigests:
    """Write the tar layer of ``entries`` to ``sink``, compressed as asked; hash it in the same pass.

    ``sink.write`` is called from a worker thread with memoryviews of reused buffers: it must be
    done with the bytes when it returns (copy them if it keeps them). Uncompressed, each view
    starts on a page boundary and all but the last are ``_RING_CHUNK`` bytes long (the last is a
    multiple of 512, as a tar stream is), so they suit direct I/O.
    """
    with _Pipeline(sink, compression) as pipe:
        for entry in entries:
            if entry.is_dir:
                pipe.put_bytes(tar.entry_header(entry.rel, entry.mode, 0, True))
                continue
            with _open_checked(entry.abspath, entry.rel, entry.size) as f:
                pipe.put_bytes(tar.entry_header(entry.rel, entry.mode, entry.size, False))
                pipe.put_file(f, entry.size, entry.rel)
            pipe.put_bytes(tar.pad(entry.size))
        pipe.put_bytes(tar.END)
        return pipe.finish()


def write_raw_layer(path: str | os.PathLike[str], sink: Sink) -> LayerDigests:
    """Copy one file to ``sink`` as a raw layer blob; digest == diff_id == the file's sha256.

    The same threading contract as ``write_tar_layer`` applies to ``sink``.
    """
    size = _stat_regular(Path(path), str(path)).st_size
    with _Pipeline(sink, "none") as pipe:
        with _open_checked(Path(path), str(path), size) as f:
            pipe.put_file(f, size, str(path))
        return pipe.finish()


def _stat_regular(path: Path, rel: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except OSError as e:
        raise PackError(
            f"cannot read {rel!r}: {e.strerror or e}", "check that it exists and is readable"
        ) from e
    if not stat.S_ISREG(st.st_mode):
        raise PackError(f"{rel!r} is not a regular file", "a raw layer holds exactly one regular file")
    return st


def _open_checked(path: Path, rel: str, size: int) -> io.FileIO:
    """Open a file that must still be a regular file of ``size`` bytes (as when it was listed)."""
    try:
        # O_NONBLOCK: a file swapped for a FIFO since the walk must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise PackError(f"cannot open {rel!r}: {e.strerror or e}", "check the file's permissions") from e
    f = io.FileIO(fd, "rb", closefd=True)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        f.close()
        now = f"{st.st_size} bytes" if stat.S_ISREG(st.st_mode) else "not a regular file"
        raise PackError(
            f"{rel!r} changed while packing (it was {size} bytes when listed, now {now})",
            "pack again once nothing is writing to the context",
        )
    return f


class _Stage(threading.Thread):
    """A worker that applies ``fn`` to queued chunks in order; ``slots`` bounds what is in flight."""

    def __init__(self, fn: Callable[[_Chunk], None], slots: int, name: str) -> None:
        super().__init__(name=f"kitbridge-{name}", daemon=True)
        self._fn = fn
        self._queue: collections.deque[_Chunk | None] = collections.deque()
        self._items = threading.Semaphore(0)
        self._free = threading.Semaphore(slots)
        self.error: BaseException | None = None

    def reserve(self) -> None:
        """Wait until fewer than ``slots`` chunks are in flight (call before filling/queuing one)."""
        self._free.acquire()

    def put(self, chunk: _Chunk | None) -> None:
        """Queue a chunk (after ``reserve``), or None to stop the worker."""
        self._queue.append(chunk)
        self._items.release()

    def run(self) -> None:
        while True:
            self._items.acquire()
            chunk = self._queue.popleft()
            if chunk is None:
                return
            if self.error is None:
                try:
                    self._fn(chunk)
                except BaseException as e:  # handed to the main thread, which re-raises it
                    self.error = e
            self._free.release()


class _Pipeline:
    """The ring of buffers and the stages behind it (see the module docstring)."""

    def __init__(self, sink: Sink, compression: Compression) -> None:
        self._sink = sink
        self._compression = compression
        self._tar_hash = hashlib.sha256()
        self._blob_hash = self._tar_hash
        self._tar_size = 0
        self._size = 0  # bytes written to the sink
        self._crc = 0
        # Anonymous mmaps: page-aligned, as direct I/O needs; unmapped when the pipeline is dropped.
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        self._bufs = [mmap.mmap(-1, _RING_CHUNK, flags=flags) for _ in range(_BUFFERS)]
        self._slot = -1
        self._view = memoryview(self._bufs[0])
        self._pos = 0
        self._compress: Callable[[_Chunk], bytes] | None = None
        self._flush: Callable[[], bytes] | None = None
        if compression == "gzip":
            deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            self._compress, self._flush = deflate.compress, deflate.flush
        elif compression == "zstd":
            cctx = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, write_checksum=False, write_content_size=False, write_dict_id=False
            )
            zobj = cctx.compressobj()
            self._compress, self._flush = zobj.compress, zobj.flush
        elif compression != "none":
            raise ValueError(f"unknown compression {compression!r}")
        if self._compress is None:
            self._writer = _Stage(self._write, _BUFFERS, "write")
            self._front = self._writer  # fed from the ring
            self._stages = [self._writer]
        else:
            self._blob_hash = hashlib.sha256()
            # The compressor hashes its own output while it is still in cache (measured faster than
            # hashing it in the writer thread).
            self._writer = _Stage(self._write, _OUT_SLOTS, "write")
            self._front = _Stage(self._compress_chunk, _BUFFERS, "compress")
            self._stages = [self._front, self._writer]
        self._started = False
        self._closed = False

    def __enter__(self) -> _Pipeline:
        for stage in self._stages:
            stage.start()
        self._started = True
        if self._compression == "gzip":
            self._emit(_GZIP_HEADER)
        self._next_buffer()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started and not self._closed:
            self._closed = True
            for stage in self._stages:
                self._stop(stage)

    # -- feeding the ring (main thread) --

    def _next_buffer(self) -> None:
        self._front.reserve()
        self._slot = (self._slot + 1) % _BUFFERS
        self._view = memoryview(self._bufs[self._slot])
        self._pos = 0

    def _dispatch(self) -> None:
        if self._pos:
            chunk = self._view[: self._pos]
            self._tar_size += self._pos
            # Hashing here, right after the bytes were read, finds them in this core's cache.
            self._tar_hash.update(chunk)
            if self._compression == "gzip":
                self._crc = zlib.crc32(chunk, self._crc)
            self._front.put(chunk)
            self._raise_stage_error()
            self._next_buffer()

    def put_bytes(self, data: bytes) -> None:
        """Append small in-memory bytes (headers, padding) to the stream."""
        view = memoryview(data)
        while view:
            room = len(self._view) - self._pos
            if not room:
                self._dispatch()
                continue
            n = min(room, len(view))
            self._view[self._pos : self._pos + n] = view[:n]
            self._pos += n
            view = view[n:]

    def put_file(self, f: io.FileIO, size: int, rel: str) -> None:
        """Append exactly ``size`` bytes read from ``f``; a PackError if the file is shorter or longer."""
        remaining = size
        readinto = f.readinto
        while remaining:
            room = len(self._view) - self._pos
            if not room:
                self._dispatch()
                continue
            want = min(room, remaining)
            n = readinto(self._view[self._pos : self._pos + want])
            if not n:
                raise PackError(
                    f"{rel!r} changed while packing (it shrank below the {size} bytes it had when listed)",
                    "pack again once nothing is writing to the context",
                )
            self._pos += n
            remaining -= n
        if f.read(1):
            raise PackError(
                f"{rel!r} changed while packing (it grew beyond the {size} bytes it had when listed)",
                "pack again once nothing is writing to the context",
            )

    def finish(self) -> LayerDigests:
        """Flush everything, stop the workers, and return the digests."""
        self._dispatch()
        self._stop(self._front)
        self._raise_stage_error()
        if self._flush is not None:
            tail = self._flush()
            if self._compression == "gzip":
                tail += struct.pack("<II", self._crc & 0xFFFFFFFF, self._tar_size & 0xFFFFFFFF)
            self._emit(tail)
            self._stop(self._writer)
        self._closed = True
        self._raise_stage_error()
        diff_id = "sha256:" + self._tar_hash.hexdigest()
        return LayerDigests("sha256:" + self._blob_hash.hexdigest(), diff_id, self._size)

    # -- the stages (worker threads) --

    def _write(self, chunk: _Chunk) -> None:
        view = memoryview(chunk)
        total = len(view)
        while view:
            n = self._sink.write(view)
            if n is None or n >= len(view):
                break
            view = view[n:]
        self._size += total

    def _compress_chunk(self, chunk: _Chunk) -> None:
        assert self._compress is not None
        out = self._compress(chunk)
        if out:
            self._emit(out)

    def _emit(self, data: bytes) -> None:
        """Hash compressed bytes and queue them for the writer (compressor thread; main at start/end)."""
        if data:
            self._blob_hash.update(data)
            self._writer.reserve()
            self._writer.put(data)

    # -- shutting down --

    @staticmethod
    def _stop(stage: _Stage) -> None:
        if stage.is_alive():
            stage.put(None)
            stage.join()

    def _raise_stage_error(self) -> None:
        for stage in self._stages:
            if stage.error is not None:
                raise stage.error
