"""A blob streamed from one registry into an upload to another, through a small in-memory pipe.

``BlobPipe.open(offset)`` is the ``open_src`` of ``RegistryClient.upload_blob``: a thread downloads
the blob from ``offset`` on into a bounded queue, and the returned file-like reads from that queue.
Memory stays bounded (a few download chunks), never the whole blob. A download started at byte 0
is verified (size and sha256) before its last chunk is handed over, so a bad blob fails the upload
before the upload can complete. When the upload asks for the offset the pipe has reached (the next
chunk of a chunked upload), the running download goes on; any other offset (a retried upload)
stops it and starts a new one there (an HTTP Range request).
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO, cast

from kitbridge.errors import DigestMismatchError, KitbridgeError, RegistryError

# download(sink, offset, on_bytes): write the blob from byte ``offset`` on into ``sink.write``.
Download = Callable[[BinaryIO, int, Callable[[int], None]], None]

_POLL_S = 0.1


class _Stopped(Exception):
    """Raised inside the download thread when the pipe no longer wants its bytes."""


_END = object()  # the download finished (and verified)


class _Feed:
    """One download thread feeding one bounded queue of chunks."""

    def __init__(self, download: Download, digest: str, size: int, offset: int, max_chunks: int) -> None:
        self.digest = digest
        self.size = size
        self.position = offset  # bytes handed to readers so far, counted from the blob's start
        self.queue: queue.Queue[object] = queue.Queue(maxsize=max(1, max_chunks))
        self.stop = threading.Event()
        self.done = False  # the reader took the end marker or an error
        self._leftover = b""
        self._start = offset
        self._download = download
        self._thread = threading.Thread(target=self._run, name=f"kitbridge-pipe-{digest[7:19]}", daemon=True)
        self._thread.start()

    # -- the download side -------------------------------------------------------------------
    def _put(self, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        hasher = hashlib.sha256() if self._start == 0 else None
        received = self._start
        held: list[bytes] = []  # the latest chunk, released once the next one (or a verified end) comes

        class Sink:
            def write(inner, chunk: bytes) -> int:  # ``self`` is the feed
                nonlocal received
                if self.stop.is_set():
                    raise _Stopped
                received += len(chunk)
                if received > self.size:
                    raise RegistryError(
                        f"blob {self.digest} is bigger than the {self.size} bytes its manifest says",
                        "the source registry or manifest is inconsistent",
                    )
                if hasher is not None:
                    hasher.update(chunk)
                if held:
                    self._put(held.pop())
                held.append(bytes(chunk))
                return len(chunk)

        def check_stop(_n: int) -> None:
            if self.stop.is_set():
                raise _Stopped

        try:
            self._download(cast(BinaryIO, Sink()), self._start, check_stop)
            if received != self.size:
                raise DigestMismatchError(
                    f"blob {self.digest} ended at byte {received}, short of its {self.size} bytes",
                    "the source registry sent a truncated blob; try again",
                )
            if hasher is not None and f"sha256:{hasher.hexdigest()}" != self.digest:
                raise DigestMismatchError(
                    f"blob {self.digest} arrived from the source registry as sha256:{hasher.hexdigest()}",
                    "the source registry or the network corrupted it; nothing was stored, try again",
                )
            if held:
                self._put(held.pop())
            self._put(_END)
        except _Stopped:
            return
        except BaseException as e:  # handed to the reader, which raises it in the uploading thread
            error: BaseException = e
            if not isinstance(e, KitbridgeError):
                error = RegistryError(f"download of blob {self.digest} failed: {e}", "try again")
            try:
                self._put(error)
            except _Stopped:
                return

    # -- the upload side ---------------------------------------------------------------------
    def read(self, n: int) -> bytes:
        if not self._leftover:
            if self.done:
                return b""
            item = self.queue.get()
            if item is _END:
                self.done = True
                return b""
            if isinstance(item, BaseException):
                self.done = True
                raise item
            self._leftover = cast(bytes, item)
        out, self._leftover = self._leftover[:n], self._leftover[n:]
        self.position += len(out)
        return out

    def close(self) -> None:
        self.stop.set()
        while True:  # unblock a download waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()


class _Reader(io.RawIOBase):
    """The file-like one upload attempt reads; closing it leaves the download running."""

    def __init__(self, feed: _Feed) -> None:
        super().__init__()
        self._feed = feed

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._feed.read(len(b))
        b[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        return self._feed.read(size)


class BlobPipe:
    """``open(offset)`` for ``upload_blob``: the blob as ``download`` streams it, from ``offset`` on.

    Use as a context manager (or call ``close``) so that the download thread is always stopped.
    ``max_buffer`` bounds the bytes queued between the two sides (in whole download chunks).
    """

    def __init__(
        self,
        download: Download,
        digest: str,
        size: int,
        *,
        max_buffer: int = 8 * 1024 * 1024,
        chunk: int = 4 * 1024 * 1024,
    ) -> None:
        self._download = download
        self._digest = digest
        self._size = size
        self._max_chunks = max(1, max_buffer // max(1, chunk) - 1)  # one more chunk is held back
        self._feed: _Feed | None = None
        self.downloads = 0  # how many downloads were started (1 unless an upload was retried)

    def open(self, offset: int) -> BinaryIO:
        feed = self._feed
        if feed is None or feed.position != offset or (feed.done and offset < self._size):
            if feed is not None:
                feed.close()
            feed = self._feed = _Feed(self._download, self._digest, self._size, offset, self._max_chunks)
            self.downloads += 1
        return cast(BinaryIO, _Reader(feed))

    def close(self) -> None:
        if self._feed is not None:
            feed, self._feed = self._feed, None
            feed.close()

    def __enter__(self) -> BlobPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
