"""A client for the OCI distribution API: blobs streamed both ways, manifests as exact bytes, tags.

Design choices (the why behind the code):

- **One session, many threads.** Blob transfers run in parallel threads over one
  :class:`RegistryClient`. Its ``requests.Session`` is configured once and never changed afterwards
  (no session-wide auth or headers, cookies refused), its connection pool holds ``max_connections``
  connections, and the auth state (:class:`~kitbridge.oci.auth.Authenticator`) is lock-protected.
- **Retries.** Connection errors, timeouts, 5xx and 429 are retried up to ``retries`` times with
  exponential backoff and jitter (``backoff * 2**n`` seconds, capped at 30 s, times a random 0.5-1.0;
  a ``Retry-After`` header wins, capped at 60 s). Other 4xx answers are final. A 401 runs the
  challenge flow once and retries; a second 401 is an :class:`AuthenticationError`.
- **Downloads** stream 4 MiB chunks into the caller's sink (never the whole blob in memory).
  A dropped connection resumes with ``Range: bytes=<received>-`` inside the same call; the retry
  budget is spent only by attempts that made no progress. A registry that ignores ``Range`` (200
  instead of 206) sends the blob from byte 0: the bytes before the resume point are read and
  discarded, so the sink, the caller's hasher and ``on_bytes`` see every byte exactly once.
- **Uploads** go as one streamed ``PUT ?digest=`` (the fastest path on distribution) unless the blob
  is larger than :data:`CHUNKED_UPLOAD_THRESHOLD` (1 GiB), a ``chunk_size`` is given, or the
  registry refuses the single PUT with 413: then ``PATCH`` chunks (64 MiB by default) with
  ``Content-Range``, and a final ``PUT ?digest=``. A failed single PUT starts a new upload session
  (unless a ``HEAD`` shows the registry committed the blob after all); a failed chunk resumes from
  the offset the registry reports for the session (``GET`` on the upload URL). ``on_bytes``
  reports a high-water mark, so bytes sent again are not counted twice.
- **Secrets** travel only in the ``Authorization`` header of each request; they never reach a log
  line, an exception or a repr.
"""

from __future__ import annotations

import enum
import http.client
import json
import logging
import os
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, BinaryIO, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from kitbridge.errors import (
    DigestMismatchError,
    KitbridgeError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    StoreError,
    TLSError,
)
from kitbridge.oci import digest as digests
from kitbridge.oci.auth import Authenticator
from kitbridge.oci.credentials import Credentials, resolve_credentials

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
# distribution refuses manifests over 4 MiB; so does every registry we know of.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Blobs above this go up in PATCH chunks, so a dropped connection costs one chunk, not the blob.
CHUNKED_UPLOAD_THRESHOLD = 1024 * 1024 * 1024
DEFAULT_UPLOAD_CHUNK = 64 * 1024 * 1024
STREAM_CHUNK = digests.CHUNK  # 4 MiB reads and writes
DEFAULT_TIMEOUT_S = 300.0
_CONNECT_TIMEOUT_S = 30.0
_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0
_MAX_TAG_PAGES = 100_000
_ERROR_BODY_LIMIT = 64 * 1024
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_USER_AGENT = "kitbridge/0.1"
_TLS_HINT = (
    "for a private CA pass --ca-file <ca.pem>; --tls-verify=false skips verification; "
    "--plain-http if the registry speaks plain HTTP"
)
# What a dropped or broken connection raises while a response body streams.
_DROPS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class _Default(enum.Enum):
    RESOLVE = "resolve"


class Hasher(Protocol):
    """A running hash (``hashlib.sha256()``) updated as bytes arrive."""

    def update(self, data: bytes, /) -> None: ...


class _Authorization(AuthBase):
    """Sets (or leaves out) the Authorization header; passing one also keeps requests from ~/.netrc."""

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._value is not None:
            r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "_Authorization(***)" if self._value else "_Authorization(None)"


class _Dropped(Exception):
    """A request of an upload failed in transit; ``error`` is what to raise if we give up."""

    def __init__(self, error: RegistryError) -> None:
        super().__init__(error.message)
        self.error = error


class _HighWater:
    """Reports upload progress to ``on_bytes`` once per byte, however often bytes are re-sent."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self._on_bytes = on_bytes
        self._reported = 0

    def sent_up_to(self, offset: int) -> None:
        if self._on_bytes is not None and offset > self._reported:
            self._on_bytes(offset - self._reported)
        self._reported = max(self._reported, offset)


class _SourceBody:
    """An upload body: ``length`` bytes of ``open_src(start)`` read in chunks as the socket takes them.

    It has a length, so requests sends ``Content-Length`` (not chunked transfer encoding).
    A local read error or a short source raises StoreError, which is not mistaken for a dropped
    connection and so is not retried.
    """

    def __init__(
        self,
        open_src: Callable[[int], BinaryIO],
        start: int,
        length: int,
        progress: _HighWater,
        digest: str,
    ) -> None:
        self._open_src = open_src
        self._start = start
        self._length = length
        self._progress = progress
        self._digest = digest
        self._file: BinaryIO | None = None

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        self.close()
        try:
            self._file = self._open_src(self._start)
            remaining, offset = self._length, self._start
            while remaining > 0:
                chunk = self._file.read(min(STREAM_CHUNK, remaining))
                if not chunk:
                    raise StoreError(
                        f"blob {self._digest} ended at byte {offset}, "
                        f"short of the {self._start + self._length} bytes being uploaded",
                        "the local blob is truncated; check the store with `kitbridge list`",
                    )
                yield chunk
                remaining -= len(chunk)
                offset += len(chunk)
                self._progress.sent_up_to(offset)
        except OSError as e:
            raise StoreError(
                f"cannot read blob {self._digest} for upload: {e.strerror or e}",
                "check the local store is readable",
            ) from None
        finally:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            f.close()


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (upload URLs carry state in theirs)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _loggable(url: str) -> str:
    """``url`` without its query: upload and storage URLs carry state and signatures there."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def _shown(repo: str, ref: str) -> str:
    """``repo:tag`` or ``repo@digest``."""
    return f"{repo}@{ref}" if ref.startswith("sha256:") else f"{repo}:{ref}"


def _media_type(resp: requests.Response) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip()


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def _next_link(resp: requests.Response) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, resolved against the response URL."""
    header = resp.headers.get("Link")
    if not header:
        return None
    for part in header.split(","):
        m = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if m and re.search(r'rel\s*=\s*"?next"?', m.group(2)):
            return urljoin(resp.url, str(m.group(1)))
    return None


def _causes(e: BaseException) -> list[BaseException]:
    """``e`` and everything it wraps (causes, contexts, urllib3 ``reason``s, exception args)."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [e]
    while todo and len(chain) < 32:
        cur = todo.pop(0)
        if any(cur is c for c in chain):
            continue
        chain.append(cur)
        linked = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return chain


def _reason(e: BaseException) -> str:
    """A short, human reason for a connection failure (the innermost cause)."""
    chain = _causes(e)
    for c in chain:
        if isinstance(c, ConnectionRefusedError):
            return "connection refused"
    for c in chain:
        if isinstance(c, urllib3.exceptions.NameResolutionError) or "Name or service not known" in str(c):
            return "cannot resolve the host name"
    for c in chain:
        if isinstance(c, (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout)):
            return "timed out"
    for c in chain:
        if isinstance(c, ConnectionResetError):
            return "connection reset"
    text = str(chain[-1]) or type(chain[-1]).__name__
    return text.splitlines()[0][:200]


class RegistryClient:
    """A connection to one registry (``host[:port]``); safe to share between threads.

    ``credentials`` defaults to :func:`~kitbridge.oci.credentials.resolve_credentials` for the
    registry; pass None for anonymous access. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        registry: str,
        *,
        plain_http: bool = False,
        tls_verify: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        credentials: Credentials | Literal[_Default.RESOLVE] | None = _Default.RESOLVE,
        retries: int = 5,
        timeout: float = DEFAULT_TIMEOUT_S,
        backoff: float = 0.5,
        max_connections: int = 32,
    ) -> None:
        self.registry = registry
        self.plain_http = plain_http
        self.retries = max(0, retries)
        self._backoff = backoff
        self._timeout = (min(_CONNECT_TIMEOUT_S, timeout), timeout)
        api_host = "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry
        self.base_url = f"{'http' if plain_http else 'https'}://{api_host}"
        self._verify: bool | str = True
        if ca_file is not None:
            ca = os.fspath(ca_file)
            if not os.path.isfile(ca):
                raise TLSError(f"CA file {ca} does not exist", "pass the path of a PEM file to --ca-file")
            self._verify = ca
        if not tls_verify:
            self._verify = False
            # The user asked for it: do not warn on every request to this host.
            host = urlsplit(self.base_url).hostname or ""
            warnings.filterwarnings(
                "ignore",
                message=f".*host '{re.escape(host)}'",
                category=urllib3.exceptions.InsecureRequestWarning,
            )
        if credentials is _Default.RESOLVE:
            credentials = resolve_credentials(registry)
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max_connections, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = _USER_AGENT
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._session = session
        self._auth = Authenticator(registry, credentials, self._token_request)

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, plain_http={self.plain_http})"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # ---- transport -------------------------------------------------------------------------

    def _delay(self, attempt: int, resp: requests.Response | None = None) -> float:
        if resp is not None:
            after = _retry_after(resp)
            if after is not None:
                return after
        return min(_MAX_BACKOFF_S, self._backoff * 2.0**attempt) * random.uniform(0.5, 1.0)

    def _connection_error(self, e: BaseException, what: str) -> RegistryError:
        if isinstance(e, requests.exceptions.SSLError):
            return self._tls_error(e)
        return RegistryError(
            f"cannot connect to {self.registry} to {what}: {_reason(e)}",
            "check that the registry is running and the address (host:port) is right",
        )

    def _tls_error(self, e: BaseException) -> TLSError:
        text = str(e)
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            return TLSError(
                f"TLS handshake with {self.registry} failed: the server does not speak TLS",
                "pass --plain-http if the registry serves plain HTTP",
            )
        m = re.search(r"certificate verify failed: ([^(')\"]+)", text)
        reason = m.group(1).strip() if m else "handshake failed"
        return TLSError(f"TLS verification of {self.registry} failed: {reason}", _TLS_HINT)

    def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        data: Any = None,
        auth: str | None = None,
        stream: bool = False,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """One request; connection problems come back as requests exceptions, TLS ones as TLSError."""
        try:
            return self._session.request(
                method,
                url,
                headers=headers,
                params=list(params) if params else None,
                data=data,
                auth=_Authorization(auth),
                stream=stream,
                allow_redirects=True,
                timeout=timeout or self._timeout,
                verify=self._verify,
            )
        except requests.exceptions.SSLError as e:
            raise self._tls_error(e) from None

    def _send(
        self,
        method: str,
        url: str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | Callable[[], Any] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send with auth and (when ``retry``) retries; 401 and 403 raise, other statuses return.

        ``body`` is bytes or a factory making a fresh body per attempt (a stream cannot be replayed).
        Without ``retry``, a connection failure raises _Dropped and 5xx/429 answers are returned,
        for the caller's own recovery.
        """
        attempt = 0
        forced: str | None = None
        reauthed = False
        while True:
            auth = forced if forced is not None else self._auth.header(scopes)
            forced = None
            data = body() if callable(body) else body
            try:
                resp = self._raw(
                    method, url, headers=headers, params=params, data=data, auth=auth, stream=stream
                )
            except TLSError:
                raise
            except (requests.ConnectionError, requests.Timeout) as e:
                error = self._connection_error(e, what)
                if not retry:
                    raise _Dropped(error) from None
                if attempt >= self.retries:
                    raise error from None
                delay = self._delay(attempt)
                log.debug(
                    "%s %s failed (%s); retry %d in %.1f s",
                    method,
                    _loggable(url),
                    _reason(e),
                    attempt + 1,
                    delay,
                )
                time.sleep(delay)
                attempt += 1
                continue
            finally:
                if isinstance(data, _SourceBody):
                    data.close()
            if resp.status_code == 401:
                challenge = resp.headers.get("WWW-Authenticate")
                resp.close()
                if reauthed:
                    raise self._auth.failure(what)
                forced = self._auth.challenged(challenge, scopes, auth)
                reauthed = True
                continue
            if resp.status_code == 403:
                _, message = self._registry_error(resp)
                raise PermissionDeniedError(
                    f"{self.registry} denied permission to {what}" + (f": {message}" if message else ""),
                    "ask the registry's admin for access, or log in as a user who has it",
                )
            if retry and resp.status_code in _RETRY_STATUS and attempt < self.retries:
                delay = self._delay(attempt, resp)
                log.debug(
                    "%s %s: HTTP %d; retry %d in %.1f s",
                    method,
                    _loggable(url),
                    resp.status_code,
                    attempt + 1,
                    delay,
                )
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            return resp

    def _token_request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
        data: dict[str, str] | None = None,
    ) -> requests.Response:
        """The transport of the token flow: retries on connection errors, 5xx and 429; no auth flow."""
        what = f"get an auth token from {urlsplit(url).netloc}"
        attempt = 0
        while True:
            try:
                resp = self._raw(method, url, headers=headers, params=params, data=data)
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt >= self.retries:
                    raise self._connection_error(e, what) from None
                time.sleep(self._delay(attempt))
                attempt += 1
                continue
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                delay = self._delay(attempt, resp)
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            return resp

    def _registry_error(self, resp: requests.Response) -> tuple[str, str]:
        """The first ``{"errors": [{"code", "message"}]}`` entry of an error answer (or empty strings)."""
        raw = b""
        try:
            if getattr(resp, "_content", False) is not False:  # already read (not streamed)
                raw = (resp.content or b"")[:_ERROR_BODY_LIMIT]
            elif resp.raw is not None:
                raw = resp.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
        except _DROPS:
            pass
        finally:
            resp.close()
        try:
            body = json.loads(raw)
            first = body["errors"][0]
            return str(first.get("code", "")), str(first.get("message", ""))[:200]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            text = raw.decode("utf-8", "replace").strip()
            return "", text.splitlines()[0][:200] if text else ""

    def _unexpected(self, resp: requests.Response, what: str) -> RegistryError:
        status = resp.status_code
        code, message = self._registry_error(resp)
        if status == 400 and "HTTPS server" in message:
            return TLSError(
                f"{self.registry} speaks HTTPS, not plain HTTP",
                "drop --plain-http (and pass --ca-file for a private CA)",
            )
        detail = ": ".join(x for x in (code, message) if x)
        hint = (
            "the registry is having trouble; try again later"
            if status >= 500 or status == 429
            else "check the reference and the registry address"
        )
        return RegistryError(
            f"{self.registry} answered HTTP {status} to {what}" + (f" ({detail})" if detail else ""), hint
        )

    def _url(self, path: str) -> str:
        return f"{self.base_url}/v2/{path}"

    def _location(self, resp: requests.Response, what: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(
                f"{self.registry} answered {what} without a Location header",
                "the registry does not follow the distribution API",
            )
        return urljoin(resp.url, location)

    # ---- API -------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers the API and accepts our credentials (``GET /v2/``)."""
        what = "access the registry API"
        resp = self._send("GET", self._url(""), scopes=(), what=what)
        with resp:
            if resp.status_code == 200:
                return
            if resp.status_code == 404:
                raise RegistryError(
                    f"{self.registry} does not serve the OCI distribution API (GET /v2/ answered 404)",
                    "check the registry address",
                )
            raise self._unexpected(resp, what)

    def blob_size(self, repo: str, digest: str) -> int | None:
        """The size of blob ``digest`` in ``repo``, or None when the registry does not have it."""
        what = f"look up blob {digest} in {repo}"
        resp = self._send("HEAD", self._url(f"{repo}/blobs/{digest}"), scopes=(_pull(repo),), what=what)
        with resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._unexpected(resp, what)
            length = resp.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise RegistryError(
                    f"{self.registry} answered HEAD of blob {digest} without a size",
                    "the registry does not follow the distribution API",
                )
            return int(length)

    def _blob_not_found(self, repo: str, digest: str) -> NotFoundError:
        return NotFoundError(
            f"blob {digest} not found in {self.registry}/{repo}",
            "the repository does not hold it; check the reference, or push the artifact again",
        )

    def download_blob(
        self,
        repo: str,
        digest: str,
        sink: BinaryIO,
        *,
        offset: int = 0,
        on_bytes: Callable[[int], None] | None = None,
        hasher: Hasher | None = None,
    ) -> None:
        """Stream blob ``digest`` from byte ``offset`` on into ``sink`` (4 MiB at a time).

        ``sink`` already holds the first ``offset`` bytes (the caller resumes a partial file), and
        ``hasher`` (if any) has already seen them; both get every following byte exactly once, and
        ``on_bytes`` is told how many arrived. A dropped connection resumes where it stopped. The
        caller verifies the digest (``hasher``) at the end: this method does not.
        """
        digests.validate(digest)
        what = f"download blob {digest} from {repo}"
        url = self._url(f"{repo}/blobs/{digest}")
        position = offset
        stalls = 0
        while True:
            headers = {"Range": f"bytes={position}-"} if position > 0 else None
            resp = self._send("GET", url, scopes=(_pull(repo),), what=what, headers=headers, stream=True)
            failure: str | None = None
            start = position
            try:
                if resp.status_code == 404:
                    raise self._blob_not_found(repo, digest)
                if resp.status_code == 416 and position > 0:
                    size = self.blob_size(repo, digest)
                    if size == position:
                        return
                    raise RegistryError(
                        f"cannot resume blob {digest} at byte {position}: the registry has {size} bytes",
                        "delete the partial download and pull again",
                    )
                if resp.status_code not in (200, 206):
                    raise self._unexpected(resp, what)
                skip, total = self._response_window(resp, digest, position)
                stream = resp.raw.stream(STREAM_CHUNK, decode_content=False)
                while True:
                    try:
                        chunk = next(stream, None)
                    except _DROPS as e:
                        failure = _reason(e)
                        break
                    if chunk is None:
                        break
                    if skip:
                        dropped = min(skip, len(chunk))
                        skip -= dropped
                        chunk = chunk[dropped:]
                        if not chunk:
                            continue
                    sink.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    position += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                if failure is None and total is not None and position < total:
                    failure = f"the connection closed at byte {position} of {total}"
                if failure is None and total is not None and position > total:
                    raise RegistryError(
                        f"{self.registry} sent {position} bytes of blob {digest}, more than its {total}",
                        "the registry is misbehaving; try again",
                    )
            finally:
                resp.close()
            if failure is None:
                return
            stalls = 0 if position > start else stalls + 1
            if stalls > self.retries:
                raise RegistryError(
                    f"download of blob {digest} from {self.registry}/{repo} kept failing at byte "
                    f"{position}: {failure}",
                    "check the network and the registry, then pull again (it resumes)",
                )
            delay = self._delay(stalls)
            log.debug("blob %s: %s; resuming at byte %d in %.1f s", digest, failure, position, delay)
            time.sleep(delay)

    def _response_window(self, resp: requests.Response, digest: str, position: int) -> tuple[int, int | None]:
        """(bytes to discard before ``position``, total blob size if known) for a 200/206 answer."""
        if resp.status_code == 206:
            m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != position:
                resp.close()
                raise RegistryError(
                    f"{self.registry} answered a range of blob {digest} that does not start "
                    f"at byte {position}",
                    "the registry mishandles Range requests; delete the partial download and pull again",
                )
            return 0, int(m.group(3)) if m.group(3) != "*" else int(m.group(2)) + 1
        length = resp.headers.get("Content-Length")
        # 200: the whole blob from byte 0, whether or not we asked for a range.
        return position, int(length) if length and length.isdigit() else None

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Mount blob ``digest`` from ``from_repo`` into ``repo`` without uploading; False if refused."""
        digests.validate(digest)
        what = f"mount blob {digest} from {from_repo} into {repo}"
        resp = self._send(
            "POST",
            self._url(f"{repo}/blobs/uploads/"),
            scopes=(_push(repo), _pull(from_repo)),
            what=what,
            params=(("mount", digest), ("from", from_repo)),
        )
        with resp:
            if resp.status_code == 201:
                return True
            if resp.status_code == 202:
                # The registry opened an ordinary upload instead: cancel it.
                self._cancel_upload(self._location(resp, "a mount"), repo)
                return False
            if resp.status_code == 404:
                raise NotFoundError(
                    f"repository {repo} not found on {self.registry}", "check the repository name"
                )
            raise self._unexpected(resp, what)

    def _cancel_upload(self, url: str, repo: str) -> None:
        """Best effort: an abandoned upload session is garbage on the registry, not an error."""
        try:
            auth = self._auth.header((_push(repo),))
            self._raw("DELETE", url, auth=auth, timeout=(5.0, 10.0)).close()
        except (KitbridgeError, requests.RequestException) as e:
            log.debug("could not cancel upload %s: %s", _loggable(url), e)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_src: Callable[[int], BinaryIO],
        *,
        on_bytes: Callable[[int], None] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """Upload ``size`` bytes that ``open_src(offset)`` yields (a file positioned at ``offset``)
        as blob ``digest`` of ``repo``, streamed in chunks, recovering from dropped connections.

        ``open_src`` may be called several times (once per attempt or chunk); each returned file is
        closed here. Raises DigestMismatchError if the registry hashes the bytes to another digest.
        """
        digests.validate(digest)
        if chunk_size is not None and chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        chunked = chunk_size is not None or size > CHUNKED_UPLOAD_THRESHOLD
        part = chunk_size or DEFAULT_UPLOAD_CHUNK
        what = f"upload blob {digest} to {repo}"
        progress = _HighWater(on_bytes)
        session: str | None = None  # the upload URL the registry gave us
        offset = 0  # bytes the session holds (chunked)
        resync = False  # a chunk failed: ask the session where it stands before going on
        failures = 0
        while True:
            try:
                if resync and session is not None:
                    session, offset = self._upload_status(session, repo, what)
                    resync = False
                    if session is None and self._already_there(repo, digest, size):
                        return
                if session is None:
                    session, min_chunk = self._start_upload(repo, what)
                    part = max(part, min_chunk)
                    offset = 0
                if chunked:
                    while offset < size:
                        n = min(part, size - offset)
                        session = self._patch(session, repo, digest, offset, n, open_src, progress, what)
                        offset += n
                        failures = 0  # progress: the retry budget is for attempts that get nowhere
                    self._finish(session, repo, digest, None, what)
                else:
                    body = self._body_factory(open_src, 0, size, progress, digest)
                    self._finish(session, repo, digest, body, what)
                return
            except _SwitchToChunks:
                log.debug("%s refused a %d-byte PUT; uploading in chunks", self.registry, size)
                if session is not None:
                    self._cancel_upload(session, repo)
                chunked, session = True, None
            except _Dropped as d:
                failures += 1
                if failures > self.retries:
                    raise d.error from None
                delay = self._delay(failures - 1, d.response if isinstance(d, _Refused) else None)
                log.debug("%s: %s; attempt %d in %.1f s", what, d.error.message, failures + 1, delay)
                time.sleep(delay)
                if chunked:
                    resync = session is not None
                else:
                    if self._already_there(repo, digest, size):
                        return
                    if session is not None:
                        self._cancel_upload(session, repo)
                    session = None

    def _body_factory(
        self, open_src: Callable[[int], BinaryIO], start: int, length: int, progress: _HighWater, digest: str
    ) -> Callable[[], Any]:
        if length == 0:
            return lambda: b""
        return lambda: _SourceBody(open_src, start, length, progress, digest)

    def _transient(self, resp: requests.Response, what: str) -> None:
        """Raise _Refused for an answer worth retrying with a new attempt (5xx, 429)."""
        if resp.status_code in _RETRY_STATUS:
            raise _Refused(self._unexpected(resp, what), resp)

    def _start_upload(self, repo: str, what: str) -> tuple[str, int]:
        """POST a new upload session; return its URL and the registry's minimum chunk size."""
        resp = self._send(
            "POST", self._url(f"{repo}/blobs/uploads/"), scopes=(_push(repo),), what=what, retry=False
        )
        with resp:
            self._transient(resp, what)
            if resp.status_code == 404:
                raise NotFoundError(
                    f"repository {repo} not found on {self.registry}", "check the repository name"
                )
            if resp.status_code != 202:
                raise self._unexpected(resp, what)
            min_chunk = resp.headers.get("OCI-Chunk-Min-Length", "")
            return self._location(resp, "an upload start"), int(min_chunk) if min_chunk.isdigit() else 0

    def _patch(
        self,
        session: str,
        repo: str,
        digest: str,
        offset: int,
        n: int,
        open_src: Callable[[int], BinaryIO],
        progress: _HighWater,
        what: str,
    ) -> str:
        """Send bytes ``offset .. offset+n-1`` as one PATCH; return the session's next URL."""
        resp = self._send(
            "PATCH",
            session,
            scopes=(_push(repo),),
            what=what,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + n - 1}",
            },
            body=self._body_factory(open_src, offset, n, progress, digest),
            retry=False,
        )
        with resp:
            self._transient(resp, what)
            if resp.status_code in (404, 416):
                # The session is gone, or out of step with us: ask it where it stands.
                raise _Dropped(self._unexpected(resp, what))
            if resp.status_code != 202:
                raise self._unexpected(resp, what)
            return self._location(resp, "a chunk upload")

    def _finish(
        self,
        session: str,
        repo: str,
        digest: str,
        body: Callable[[], Any] | None,
        what: str,
    ) -> None:
        """``PUT <session>?digest=`` (with the whole blob as ``body``, or empty after PATCHes)."""
        resp = self._send(
            "PUT",
            _with_query(session, digest=digest),
            scopes=(_push(repo),),
            what=what,
            headers={"Content-Type": "application/octet-stream"},
            body=body if body is not None else b"",
            retry=False,
        )
        with resp:
            self._transient(resp, what)
            if resp.status_code == 413 and body is not None:
                raise _SwitchToChunks
            if resp.status_code == 201:
                stored = resp.headers.get("Docker-Content-Digest")
                if stored and stored != digest:
                    raise DigestMismatchError(
                        f"{self.registry} stored blob {digest} of {repo} as {stored}",
                        "the registry or a proxy changed the bytes; try again",
                    )
                return
            code, message = self._registry_error(resp)
            if code == "DIGEST_INVALID" or (resp.status_code == 400 and "digest" in message.lower()):
                raise DigestMismatchError(
                    f"{self.registry} hashed the uploaded bytes of {digest} ({repo}) to another digest",
                    "the local blob is corrupt; pack or pull it again",
                )
            if resp.status_code == 404 or code == "BLOB_UPLOAD_UNKNOWN":
                raise _Dropped(
                    RegistryError(
                        f"{self.registry} lost the upload session for blob {digest} of {repo}",
                        "try again",
                    )
                )
            detail = ": ".join(x for x in (code, message) if x)
            raise RegistryError(
                f"{self.registry} answered HTTP {resp.status_code} to {what}"
                + (f" ({detail})" if detail else ""),
                "check the reference and the registry address",
            )

    def _upload_status(self, session: str, repo: str, what: str) -> tuple[str | None, int]:
        """Where a chunked upload session stands: (its URL, bytes it holds), or (None, 0) if it is gone.

        Raises _Dropped while the registry cannot be reached (the session may well survive that).
        """
        resp = self._send("GET", session, scopes=(_push(repo),), what=what, retry=False)
        with resp:
            self._transient(resp, what)
            if resp.status_code != 204:
                code, message = self._registry_error(resp)
                log.debug(
                    "upload session is gone (HTTP %d %s %s): starting over", resp.status_code, code, message
                )
                return None, 0
            m = re.match(r"\s*(?:bytes=)?(\d+)-(\d+)", resp.headers.get("Range", ""))
            end = int(m.group(2)) if m else -1
            # distribution reports "0-0" for an empty session (and for one byte): assume empty.
            held = end + 1 if end > 0 else 0
            location = resp.headers.get("Location")
            return (urljoin(resp.url, location) if location else session), held

    def _already_there(self, repo: str, digest: str, size: int) -> bool:
        """True if the registry holds the blob (it committed an upload whose answer we lost).

        One quick look, no retries: the caller is already in its own retry loop.
        """
        try:
            url = self._url(f"{repo}/blobs/{digest}")
            resp = self._send("HEAD", url, scopes=(_push(repo),), what="look up a blob", retry=False)
        except (_Dropped, KitbridgeError):
            return False
        with resp:
            return resp.status_code == 200 and resp.headers.get("Content-Length") == str(size)

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """The manifest ``ref`` (tag or digest) of ``repo``: (exact bytes, media type, digest)."""
        what = f"get manifest {_shown(repo, ref)}"
        resp = self._send(
            "GET",
            self._url(f"{repo}/manifests/{ref}"),
            scopes=(_pull(repo),),
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        with resp:
            if resp.status_code == 404:
                raise self._manifest_not_found(resp, repo, ref)
            if resp.status_code != 200:
                raise self._unexpected(resp, what)
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                raise self._too_big(repo, ref)
            data = bytearray()
            try:
                for chunk in resp.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > MAX_MANIFEST_BYTES:
                        raise self._too_big(repo, ref)
            except _DROPS as e:
                raise self._connection_error(e, what) from None
            media_type = _media_type(resp)
            header_digest = resp.headers.get("Docker-Content-Digest")
        body = bytes(data)
        actual = digests.of_bytes(body)
        if header_digest and header_digest.startswith("sha256:") and header_digest != actual:
            raise DigestMismatchError(
                f"manifest {_shown(repo, ref)} from {self.registry} hashes to {actual}, "
                f"not the {header_digest} the registry announced",
                "the registry or a proxy changed it in transit; try again",
            )
        if ref.startswith("sha256:") and ref != actual:
            raise DigestMismatchError(
                f"manifest {repo}@{ref} from {self.registry} hashes to {actual}",
                "the registry served the wrong content; try again",
            )
        return body, media_type, actual

    def _too_big(self, repo: str, ref: str) -> RegistryError:
        return RegistryError(
            f"manifest {_shown(repo, ref)} on {self.registry} is larger than "
            f"{MAX_MANIFEST_BYTES // (1024 * 1024)} MiB",
            "that is not a manifest kitbridge can use",
        )

    def _manifest_not_found(self, resp: requests.Response, repo: str, ref: str) -> NotFoundError:
        code, _ = self._registry_error(resp)
        if code == "NAME_UNKNOWN":
            return NotFoundError(
                f"repository {repo} not found on {self.registry}", "check the repository name"
            )
        if ref.startswith("sha256:"):
            return NotFoundError(
                f"manifest {repo}@{ref} not found on {self.registry}",
                "check the digest; the repository does not hold it",
            )
        return NotFoundError(
            f"{repo}:{ref} not found on {self.registry}",
            f"check the tag; `kitbridge list {self.registry}/{repo}` shows the tags there",
        )

    def head_manifest(self, repo: str, ref: str) -> tuple[str, int, str] | None:
        """(digest, size, media type) of manifest ``ref`` in ``repo``, or None if it does not exist."""
        what = f"look up manifest {_shown(repo, ref)}"
        resp = self._send(
            "HEAD",
            self._url(f"{repo}/manifests/{ref}"),
            scopes=(_pull(repo),),
            what=what,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        with resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._unexpected(resp, what)
            digest = resp.headers.get("Docker-Content-Digest", "")
            length = resp.headers.get("Content-Length", "")
            media_type = _media_type(resp)
        if not digest.startswith("sha256:") or not length.isdigit():
            # A registry that does not say: fetch the bytes and compute it.
            data, media_type, digest = self.get_manifest(repo, ref)
            return digest, len(data), media_type
        return digest, int(length), media_type

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """Push ``data`` (exact bytes) as manifest ``ref`` (tag or digest) of ``repo``; return its digest."""
        digest = digests.of_bytes(data)
        if ref.startswith("sha256:") and ref != digest:
            raise DigestMismatchError(
                f"manifest bytes hash to {digest}, not to the {ref} they are pushed as",
                "push by tag, or by the manifest's own digest",
            )
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"manifest for {_shown(repo, ref)} is {len(data)} bytes, over the registry limit of 4 MiB",
                "split the artifact into fewer, larger layers",
            )
        what = f"push manifest {_shown(repo, ref)}"
        resp = self._send(
            "PUT",
            self._url(f"{repo}/manifests/{ref}"),
            scopes=(_push(repo),),
            what=what,
            headers={"Content-Type": media_type},
            body=data,
        )
        with resp:
            if resp.status_code not in (200, 201):
                code, message = self._registry_error(resp)
                hint = (
                    "push the blobs the manifest references first"
                    if code == "MANIFEST_BLOB_UNKNOWN" or code == "BLOB_UNKNOWN"
                    else "check the manifest and its media type"
                )
                if resp.status_code >= 500:
                    hint = "the registry is having trouble; try again later"
                detail = ": ".join(x for x in (code, message) if x)
                raise RegistryError(
                    f"{self.registry} refused manifest {_shown(repo, ref)} (HTTP {resp.status_code}"
                    + (f", {detail})" if detail else ")"),
                    hint,
                )
            stored = resp.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise DigestMismatchError(
                f"{self.registry} stored manifest {_shown(repo, ref)} as {stored}, not {digest}",
                "the registry rewrote the manifest; push to an OCI-compliant registry",
            )
        return digest

    def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repo``, following ``Link`` pagination (``page_size`` tags per request)."""
        what = f"list the tags of {repo}"
        url: str | None = self._url(f"{repo}/tags/list")
        params: list[tuple[str, str]] | None = [("n", str(page_size))] if page_size else None
        tags: list[str] = []
        seen: set[str] = set()
        for _ in range(_MAX_TAG_PAGES):
            if url is None:
                return tags
            if url in seen:
                break
            seen.add(url)
            resp = self._send("GET", url, scopes=(_pull(repo),), what=what, params=params)
            params = None  # the next link carries its own query
            with resp:
                if resp.status_code == 404:
                    raise NotFoundError(
                        f"repository {repo} not found on {self.registry}", "check the repository name"
                    )
                if resp.status_code != 200:
                    raise self._unexpected(resp, what)
                try:
                    body = resp.json()
                except ValueError:
                    body = None
                page = body.get("tags") if isinstance(body, dict) else None
                if page is not None and not (
                    isinstance(page, list) and all(isinstance(t, str) for t in page)
                ):
                    raise RegistryError(
                        f"{self.registry} answered a tag list that is not a list of strings",
                        "the registry does not follow the distribution API",
                    )
                tags.extend(page or [])
                url = _next_link(resp)
        raise RegistryError(
            f"{self.registry} paginates the tags of {repo} without end", "the registry is misbehaving"
        )


class _Refused(_Dropped):
    """An upload request answered 5xx/429: retry with a new attempt (honouring Retry-After)."""

    def __init__(self, error: RegistryError, response: requests.Response) -> None:
        super().__init__(error)
        self.response = response


class _SwitchToChunks(Exception):
    """The registry refused the whole blob in one PUT (413): go chunked."""
