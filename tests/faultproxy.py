"""A loopback HTTP/1.1 proxy in front of a real registry that injects network faults on demand.

The client talks to ``proxy.host`` instead of the registry; every byte goes through unchanged
unless a fault is armed. The proxy parses just enough HTTP/1.1 (request and status lines,
``Content-Length``, ``Transfer-Encoding: chunked``, HEAD/204/304 without body) to find each body's
boundaries on a keep-alive connection, so a fault hits exactly the response it was meant for:

- ``cut(pattern, after=N, times=K)``: forward the first N body bytes of a response to a GET whose
  path contains ``pattern``, then drop both connections (a dropped download);
- ``flip(pattern, at=N, times=K)``: invert the body byte at offset N (bit rot in transit);
- ``throttle(bytes_per_second)``: slow request bodies (uploads) down, to kill things mid-flight.

``times=None`` means every matching response; a response too short for the fault does not use it
up. Each request is logged as an :class:`Exchange` (method, path, headers, status, body bytes each
way), so a test can check what went over the wire, e.g. that a resumed download sent ``Range`` and
received fewer bytes than the whole blob.

It listens on 127.0.0.1 only, proxies only to 127.0.0.1, runs on daemon threads, and stops itself
after ``max_seconds`` even if a test forgets to.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from queue import Empty, Queue

_CHUNK = 256 * 1024
_MAX_HEAD = 64 * 1024


@dataclass
class Exchange:
    """One request/response pair as the proxy saw it."""

    method: str
    path: str
    headers: dict[str, str]  # request headers, lower-cased names
    status: int | None = None
    request_bytes: int = 0  # request body bytes forwarded
    response_bytes: int = 0  # response body bytes forwarded (short when a fault cut it)
    response_length: int | None = None  # the Content-Length the server announced
    fault: str | None = None  # "cut" or "flip" when one was applied


@dataclass
class _Fault:
    kind: str  # "cut" | "flip"
    pattern: str
    offset: int
    times: int | None  # None: every time


class _Closed(Exception):
    """The peer closed the connection (or the proxy cut it)."""


class _Reader:
    """Buffered reads from a socket: header blocks, lines, and counted bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(_CHUNK)
        except OSError:
            return False
        self.buf += data
        return bool(data)

    def until(self, marker: bytes, limit: int = _MAX_HEAD) -> bytes | None:
        """Bytes up to and including ``marker``; None at a clean EOF before any byte."""
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise _Closed("header block too long")
            if not self._fill():
                if self.buf:
                    raise _Closed("connection closed mid-header")
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def some(self, n: int) -> bytes:
        """Up to ``n`` bytes (at least one); _Closed at EOF."""
        if not self.buf and not self._fill():
            raise _Closed("connection closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


class FaultProxy:
    """A fault-injecting proxy to ``upstream`` (``127.0.0.1:<port>``); use as a context manager."""

    def __init__(self, upstream: str, *, max_seconds: float = 600.0) -> None:
        host, _, port = upstream.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the fault proxy only forwards to loopback, not {upstream}")
        self.upstream = ("127.0.0.1", int(port))
        self.exchanges: list[Exchange] = []
        self._faults: list[_Fault] = []
        self._rate: float | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._deadline = time.monotonic() + max_seconds
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: put this in references instead of the registry's host."""
        return f"127.0.0.1:{self.port}"

    # ---- arming -----------------------------------------------------------------------------

    def cut(self, pattern: str, *, after: int, times: int | None = 1) -> None:
        """Drop the connection after ``after`` body bytes of the next ``times`` matching GET responses."""
        with self._lock:
            self._faults.append(_Fault("cut", pattern, after, times))

    def flip(self, pattern: str, *, at: int, times: int | None = 1) -> None:
        """Invert body byte ``at`` of the next ``times`` matching GET responses (if they are that long)."""
        with self._lock:
            self._faults.append(_Fault("flip", pattern, at, times))

    def throttle(self, bytes_per_second: float | None) -> None:
        """Limit request-body (upload) throughput per connection; None lifts the limit."""
        self._rate = bytes_per_second

    def disarm(self) -> None:
        """Pass everything through from now on (a transfer in flight keeps the fault it got)."""
        with self._lock:
            self._faults.clear()
        self._rate = None

    def matching(self, pattern: str, method: str = "GET") -> list[Exchange]:
        """The logged exchanges whose path contains ``pattern``."""
        with self._lock:
            return [e for e in self.exchanges if e.method == method and pattern in e.path]

    @property
    def uploaded(self) -> int:
        """Request-body bytes forwarded so far, all requests together."""
        with self._lock:
            return sum(e.request_bytes for e in self.exchanges)

    def _take_fault(self, ex: Exchange) -> _Fault | None:
        if ex.method != "GET" or ex.status not in (200, 206):
            return None
        with self._lock:
            for f in self._faults:
                short = ex.response_length is not None and ex.response_length <= f.offset
                if f.pattern in ex.path and (f.times is None or f.times > 0) and not short:
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    # ---- life cycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            socks = [*self._socks, self._listener]
        for s in socks:
            _close(s)
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            if time.monotonic() > self._deadline:  # bounded: never outlive a forgetful test
                self._stopped.set()
                break
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # registry down: the client sees a dropped connection
                continue
            with self._lock:
                self._socks.update((client, upstream))
            pending: Queue[Exchange] = Queue()
            self._spawn(self._requests, client, upstream, pending)
            self._spawn(self._responses, upstream, client, pending)
        _close(self._listener)

    def _drop(self, *socks: socket.socket) -> None:
        for s in socks:
            _close(s)
            with self._lock:
                self._socks.discard(s)

    # ---- the two directions -----------------------------------------------------------------

    def _requests(self, client: socket.socket, upstream: socket.socket, pending: Queue[Exchange]) -> None:
        """client -> registry: log each request, forward it and its body."""
        src = _Reader(client)
        try:
            while head := src.until(b"\r\n\r\n"):
                line, headers = _parse_head(head)
                method, path = [*line.split(" "), "", ""][:2]
                ex = Exchange(method, path, headers)
                with self._lock:
                    self.exchanges.append(ex)
                pending.put(ex)  # before forwarding: the response cannot come first
                upstream.sendall(head)
                self._body(src, upstream, headers, ex, upload=True)
            upstream.shutdown(socket.SHUT_WR)
        except (_Closed, OSError):
            self._drop(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket, pending: Queue[Exchange]) -> None:
        """registry -> client: match each response to its request, forward it, apply an armed fault."""
        src = _Reader(upstream)
        try:
            while head := src.until(b"\r\n\r\n"):
                line, headers = _parse_head(head)
                status = int(line.split(" ")[1])
                client.sendall(head)
                if 100 <= status < 200:
                    continue
                try:
                    ex = pending.get(timeout=60)
                except Empty:
                    raise _Closed("response without a request") from None
                ex.status = status
                if "content-length" in headers:
                    ex.response_length = int(headers["content-length"])
                if ex.method == "HEAD" or status in (204, 304):
                    continue
                self._body(src, client, headers, ex, upload=False, fault=self._take_fault(ex))
        except (_Closed, OSError):
            pass
        finally:
            self._drop(upstream, client)

    def _body(
        self,
        src: _Reader,
        dst: socket.socket,
        headers: dict[str, str],
        ex: Exchange,
        *,
        upload: bool,
        fault: _Fault | None = None,
    ) -> None:
        """Forward one message body, chunked or counted; with no framing, read until EOF."""
        seen = 0

        def payload(n: int | None) -> None:
            nonlocal seen
            left = n
            while left is None or left > 0:
                try:
                    data = src.some(_CHUNK if left is None else min(left, _CHUNK))
                except _Closed:
                    if left is None:
                        return
                    raise
                if fault is not None and fault.kind == "cut" and seen + len(data) >= fault.offset:
                    dst.sendall(data[: fault.offset - seen])
                    ex.response_bytes += fault.offset - seen
                    ex.fault = "cut"
                    raise _Closed("cut by the fault proxy")
                if fault is not None and fault.kind == "flip" and seen <= fault.offset < seen + len(data):
                    b = bytearray(data)
                    b[fault.offset - seen] ^= 0xFF
                    data = bytes(b)
                    ex.fault = "flip"
                dst.sendall(data)
                seen += len(data)
                if left is not None:
                    left -= len(data)
                if upload:
                    ex.request_bytes += len(data)
                    if self._rate:
                        time.sleep(len(data) / self._rate)
                else:
                    ex.response_bytes += len(data)

        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = src.until(b"\r\n")
                if size_line is None:
                    raise _Closed("connection closed mid-chunk")
                dst.sendall(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (trailer := src.until(b"\r\n")) not in (None, b"\r\n"):
                        dst.sendall(trailer)
                    dst.sendall(b"\r\n")
                    return
                payload(size)
                crlf = src.until(b"\r\n")
                dst.sendall(crlf or b"")
        elif "content-length" in headers:
            payload(int(headers["content-length"]))
        elif not upload:
            payload(None)  # HTTP/1.0-style body: until the server closes


def _close(s: socket.socket) -> None:
    with suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        s.close()
