"""A local Hugging Face Hub look-alike: the real ``huggingface_hub`` client, pointed at it with
``endpoint=`` (or ``HF_ENDPOINT`` in a subprocess), reads repos from it with no internet.

Why a fake and not huggingface.co: the tests run offline, must make repos private or gated at will,
must count what a client fetched (an importer that promises to download only what it needs is
checked against the request log), and must drop connections mid-body to exercise resumes. What
the server answers copies what huggingface.co sends, as observed with huggingface_hub 0.36 and
2.x: status codes, ``X-Error-Code`` values (the client maps them to its exception classes), the
``X-Repo-Commit`` / ``ETag`` / ``X-Linked-*`` headers its cache is keyed on, and the JSON shapes of
``/api/models/...``, ``/tree``, ``/refs``, ``/paths-info``, ``/commits`` and ``/whoami-v2``. Only the
read side of the Hub exists here: no uploads, no xet (without ``X-Xet-Hash`` headers the client
falls back to plain HTTP downloads), no redirects to a CDN (``/resolve`` answers 200 directly).

Files given as ``Path`` are hashed once when committed and streamed from disk in 1 MiB pieces,
so multi-GiB test files never sit in memory. Pure standard library apart from PyYAML (README
front matter), on daemon threads, bound to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import struct
import sys
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

CHUNK = 1024 * 1024  # read size for hashing and for streaming bodies
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores anything this large in LFS whatever its name
_MODEL_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".gguf",
    ".onnx",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".model",
)
_DATA_SUFFIXES = (".parquet", ".arrow", ".zip", ".tar", ".gz", ".npy", ".pkl", ".joblib", ".skops")
LFS_SUFFIXES = frozenset(_MODEL_SUFFIXES).union(_DATA_SUFFIXES)
# Files of a gated repo anyone may read, as on the real Hub (the model card explains the terms).
UNGATED_FILES = frozenset({"README.md", ".gitattributes"})
REPO_TYPES = {"model": "models", "dataset": "datasets"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_SETTLE_SECONDS = 5.0  # how long log readers wait for answers still being written


def is_lfs(path: str, size: int) -> bool:
    """Whether the Hub would store ``path`` in LFS (and so report ``lfs`` metadata and a sha256 ETag)."""
    suffix = Path(path).suffix.lower()
    return suffix in LFS_SUFFIXES or size >= LFS_MIN_SIZE


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub reports as ``blobId``/``oid``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def lfs_pointer_size(sha256: str, size: int) -> int:
    """Byte length of the git-lfs pointer file for such an object (the Hub's ``pointerSize``)."""
    return len(f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")


def _now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server answered it.

    ``path`` is the raw (still percent-encoded) path without the query; ``range`` the ``Range``
    header; ``body_bytes_sent`` the response body bytes actually written (short when the client left
    or a ``cut()`` fired); ``token`` the bearer token, if any. The trailing fields say what the
    request was about: ``kind`` is one of resolve, info, tree, refs, commits, paths-info, whoami,
    unknown; ``filename`` is set for resolve requests.
    """

    method: str
    path: str
    query: str
    range: str | None
    status: int
    body_bytes_sent: int
    token: str | None
    kind: str = "unknown"
    repo_type: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class FileInfo:
    """What the Hub knows about one committed file."""

    path: str
    size: int
    sha256: str
    blob_id: str  # git blob sha1
    lfs: bool

    @property
    def etag(self) -> str:
        """The (unquoted) ETag the resolve endpoint sends, which names the blob in the HF cache."""
        return self.sha256 if self.lfs else self.blob_id


@dataclass(frozen=True)
class _Blob:
    """File content: in memory (``data``) or on disk (``source``, streamed on demand)."""

    size: int
    sha256: str
    git_sha1: str
    data: bytes | None = None
    source: Path | None = None

    def read(self, offset: int, n: int) -> bytes:
        """A small slice (headers, model cards): never used for bodies."""
        if self.data is not None:
            return self.data[offset : offset + n]
        assert self.source is not None
        with open(self.source, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def pieces(self, start: int, length: int) -> Generator[bytes, None, None]:
        """The bytes [start, start+length) in pieces of at most 1 MiB."""
        if self.data is not None:
            view = memoryview(self.data)
            for pos in range(start, start + length, CHUNK):
                yield bytes(view[pos : min(pos + CHUNK, start + length)])
            return
        assert self.source is not None
        with open(self.source, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                piece = f.read(min(CHUNK, left))
                if not piece:  # the file shrank on disk: the caller sees a short body
                    return
                left -= len(piece)
                yield piece


def _blob_from_bytes(data: bytes) -> _Blob:
    return _Blob(len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data), data=data)


def _blob_from_path(path: Path) -> _Blob:
    """Hash a file once, in 1 MiB reads (a 1 GiB file must not be read into memory)."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    seen = 0
    with open(path, "rb") as f:
        while piece := f.read(CHUNK):
            sha256.update(piece)
            sha1.update(piece)
            seen += len(piece)
    if seen != size:
        raise ValueError(f"{path} changed size while it was being hashed")
    return _Blob(size, sha256.hexdigest(), sha1.hexdigest(), source=path.resolve())


def _safetensors_parameters(blob: _Blob) -> dict[str, int] | None:
    """Parameter counts per dtype from a safetensors header (8-byte LE length + JSON), or None."""
    head = blob.read(0, 8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    if n > _MAX_SAFETENSORS_HEADER or n > blob.size - 8:
        return None
    try:
        header = json.loads(blob.read(8, n))
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    params: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__" or not isinstance(tensor, dict):
            continue
        count = 1
        for dim in tensor.get("shape", []):
            count *= int(dim)
        dtype = str(tensor.get("dtype", "?"))
        params[dtype] = params.get(dtype, 0) + count
    return params


def _front_matter(blob: _Blob) -> dict[str, Any] | None:
    """The YAML front matter of a model/dataset card, as the Hub's ``cardData``."""
    text = blob.read(0, CHUNK).decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1:i]))
            except yaml.YAMLError:
                return None
            # YAML dates etc. must survive json.dumps: round-trip through JSON with str() for the rest.
            return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None
    return None


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, _Blob]
    date: str
    message: str


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    created_at: str
    private: bool = False
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    blob: _Blob | None = None  # streamed body [start, start+length) instead of ``body``
    start: int = 0
    length: int = 0
    cut_after: int | None = None
    kind: str = "unknown"
    repo_type: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(
        status,
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        json.dumps(payload).encode(),
    )


def _error(status: int, message: str, code: str | None = None, **headers: str) -> _Response:
    h = {"X-Error-Message": message, **headers}
    if code is not None:
        h["X-Error-Code"] = code
    return _json(status, {"error": message}, h)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class HubServer:
    """An in-process Hub: add repos with :meth:`add_commit`, point the client at :attr:`url`.

    State changes (commits, tokens, grants, cuts) may happen while the server runs; each request
    sees a consistent snapshot. ``requests`` and the counting helpers first wait (up to a few
    seconds) for answers still being written, so a test that checks the log right after its
    client returned never races the server thread that logs the last response.
    """

    def __init__(self) -> None:
        self.url = ""
        self.valid_tokens: set[str] = set()
        self._users: dict[str, str] = {}
        self._grants: set[tuple[str, str]] = set()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._safetensors: dict[str, dict[str, int] | None] = {}  # by blob sha256
        self._cuts: dict[tuple[str, str, str], list[int]] = {}  # -> [after_bytes, times left (-1: forever)]
        self._caps: dict[tuple[str, str, str], int] = {}  # -> file offset no GET goes past
        self._log: list[LoggedRequest] = []
        self._commit_counter = 0
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on a free 127.0.0.1 port; returns the base URL (also in :attr:`url`)."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            port = self._httpd.server_address[1]
            self.url = f"http://127.0.0.1:{port}"
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self.url

    def close(self) -> None:
        """Stop listening and drop open keep-alive connections (their handler threads then exit)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content ----------------------------------------------------------------------------------

    def add_commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        repo_type: str = "model",
        branch: str = "main",
        tags: Sequence[str] = (),
        private: bool = False,
        gated: bool = False,
        delete: Sequence[str] = (),
        message: str = "",
        base: str | None = None,
    ) -> str:
        """Commit to ``branch`` (creating the repo, and the branch, on first use); returns the sha.

        The new file set is the branch's previous one (or, for a new branch, that of revision
        ``base``; empty without it), plus ``files`` (added or replaced), minus ``delete``. ``tags``
        are created or moved to the new commit; ``private``/``gated`` are repo-wide, last call wins.
        Path values are hashed now and streamed from disk later: do not change them afterwards.
        """
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {sorted(REPO_TYPES)}, not {repo_type!r}")
        if not _REPO_ID.match(repo_id):
            raise ValueError(f"repo_id must look like 'org/name', not {repo_id!r}")
        blobs: dict[str, _Blob] = {}
        for name, content in files.items():
            _check_repo_path(name)
            if isinstance(content, Path):
                blobs[name] = _blob_from_path(content)
            elif isinstance(content, (bytes, bytearray, memoryview)):
                blobs[name] = _blob_from_bytes(bytes(content))
            else:
                raise TypeError(f"{name}: content must be bytes or a Path, not {type(content).__name__}")
        params = {
            b.sha256: _safetensors_parameters(b)
            for n, b in blobs.items()
            if n.lower().endswith(".safetensors") and b.sha256 not in self._safetensors
        }
        with self._lock:
            self._safetensors.update(params)
            key = (repo_type, repo_id)
            repo = self._repos.get(key)
            if repo is None:
                repo = self._repos[key] = _Repo(repo_type, repo_id, _now_iso())
            repo.private, repo.gated = private, gated
            parent = repo.branches.get(branch)
            if parent is None and base is not None:
                base_commit = self._resolve(repo, base)
                if base_commit is None:
                    raise ValueError(f"{repo_id}: unknown base revision {base!r}")
                parent = base_commit.sha
            tree = dict(repo.commits[parent].files) if parent is not None else {}
            tree.update(blobs)
            for name in delete:
                if name not in tree:
                    raise ValueError(f"{repo_id}@{branch}: cannot delete {name!r}, it is not in the repo")
                del tree[name]
            self._commit_counter += 1
            h = hashlib.sha1(usedforsecurity=False)
            h.update(
                f"{repo_type}:{repo_id}\n{self._commit_counter}\n{parent}\n{branch}\n{message}\n".encode()
            )
            for name in sorted(tree):
                h.update(f"{name}\0{tree[name].git_sha1}\n".encode())
            sha = h.hexdigest()
            repo.commits[sha] = _Commit(
                sha, parent, tree, _now_iso(), message or f"commit {self._commit_counter}"
            )
            repo.branches[branch] = sha
            for tag in tags:
                repo.tags[tag] = sha
            return sha

    def file_info(
        self, repo_id: str, filename: str, *, revision: str = "main", repo_type: str = "model"
    ) -> FileInfo:
        """Size, hashes and LFS-ness of a committed file (what a test compares downloads with)."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            commit = self._resolve(repo, revision)
            if commit is None:
                raise KeyError(f"{repo_id}: unknown revision {revision!r}")
            blob = commit.files[filename]
            return FileInfo(filename, blob.size, blob.sha256, blob.git_sha1, is_lfs(filename, blob.size))

    # -- auth -------------------------------------------------------------------------------------

    def add_token(self, token: str, user: str = "tester") -> None:
        """Make ``token`` a valid token of ``user`` (for whoami; grants give it repo access)."""
        with self._lock:
            self.valid_tokens.add(token)
            self._users[token] = user

    def grant(self, token: str, repo_id: str) -> None:
        """Let ``token`` read the private or gated repo ``repo_id`` (any repo type); adds the token."""
        with self._lock:
            if token not in self.valid_tokens:
                self.add_token(token)
            self._grants.add((token, repo_id))

    # -- faults -----------------------------------------------------------------------------------

    def cut(
        self, repo_id: str, filename: str, after_bytes: int, times: int = 1, *, repo_type: str = "model"
    ) -> None:
        """The next ``times`` GETs of that file (any revision) send the headers and ``after_bytes``
        body bytes, then the connection is shut down, so the client sees a truncated body.
        ``times=-1``: every GET until :meth:`uncut`."""
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._lock:
            self._cuts[(repo_type, repo_id, filename)] = [after_bytes, times]

    def cap(self, repo_id: str, filename: str, offset: int, *, repo_type: str = "model") -> None:
        """Every GET of that file stops at byte ``offset`` of the file (then the connection drops), so a
        client that resumes with Range gets no further until :meth:`uncut`: a download that stays broken."""
        with self._lock:
            self._caps[(repo_type, repo_id, filename)] = offset

    def uncut(self) -> None:
        """Disarm every pending cut and cap."""
        with self._lock:
            self._cuts.clear()
            self._caps.clear()

    # -- request log ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of the request log, oldest first (after in-flight answers finished)."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=_SETTLE_SECONDS)
            return list(self._log)

    def clear_log(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=_SETTLE_SECONDS)
            self._log.clear()

    def file_requests(
        self, repo_id: str, filename: str | None = None, *, repo_type: str = "model"
    ) -> list[LoggedRequest]:
        """GET and HEAD requests to the resolve endpoint of that repo (and file)."""
        return [
            r
            for r in self.requests
            if r.kind == "resolve"
            and r.method in ("GET", "HEAD")
            and r.repo_type == repo_type
            and r.repo_id == repo_id
            and (filename is None or r.filename == filename)
        ]

    def downloads(self, repo_id: str, filename: str | None = None, *, repo_type: str = "model") -> int:
        """How many resolve GETs sent body bytes (a resumed download counts once per attempt)."""
        return sum(
            1
            for r in self.file_requests(repo_id, filename, repo_type=repo_type)
            if r.method == "GET" and r.body_bytes_sent > 0
        )

    def bytes_served(self, repo_id: str, filename: str | None = None, *, repo_type: str = "model") -> int:
        """File body bytes written by resolve GETs of that repo (and file)."""
        return sum(
            r.body_bytes_sent
            for r in self.file_requests(repo_id, filename, repo_type=repo_type)
            if r.method == "GET"
        )

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self, entry: LoggedRequest) -> None:
        with self._idle:
            self._log.append(entry)
            self._in_flight -= 1
            self._idle.notify_all()

    # -- answering --------------------------------------------------------------------------------

    def _resolve(self, repo: _Repo, rev: str) -> _Commit | None:
        """Branch, tag or full commit sha (the real Hub accepts no short shas); refs/... spelled out."""
        sha = repo.branches.get(rev) or repo.tags.get(rev)
        if sha is None and rev.startswith("refs/heads/"):
            sha = repo.branches.get(rev[len("refs/heads/") :])
        if sha is None and rev.startswith("refs/tags/"):
            sha = repo.tags.get(rev[len("refs/tags/") :])
        if sha is None and _FULL_SHA.match(rev):
            sha = rev
        return repo.commits.get(sha) if sha is not None else None

    def _may_read(self, token: str | None, repo: _Repo) -> bool:
        return token is not None and (token, repo.repo_id) in self._grants

    def answer(
        self, method: str, raw_path: str, query: str, range_header: str | None, token: str | None, body: bytes
    ) -> _Response:
        """Route one request (under the lock; streaming bodies is left to the handler)."""
        with self._lock:
            try:
                return self._route(method, raw_path, query, range_header, token, body)
            except Exception as e:  # a bug here must show up as a 500 the test can see, not a hang
                return _error(500, f"hub test server error: {type(e).__name__}: {e}")

    def _route(
        self, method: str, raw_path: str, query: str, range_header: str | None, token: str | None, body: bytes
    ) -> _Response:
        params = parse_qs(query, keep_blank_values=True)
        seg = raw_path.split("/")[1:]
        if raw_path == "/api/whoami-v2":
            return self._whoami(token)
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in ("models", "datasets"):
            repo_type = seg[1][:-1]
            repo_id = f"{unquote(seg[2])}/{unquote(seg[3])}"
            rest = seg[4:]
            if method == "POST" and len(rest) >= 2 and rest[0] == "paths-info":
                form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
                return self._api(
                    repo_type, repo_id, "paths-info", unquote("/".join(rest[1:])), "", form, token
                )
            if method not in ("GET", "HEAD"):
                return _error(405, f"{method} is not supported by this test server")
            if not rest or rest == [""]:
                return self._api(repo_type, repo_id, "info", "main", "", params, token)
            if rest[0] == "revision" and len(rest) >= 2:
                return self._api(repo_type, repo_id, "info", unquote("/".join(rest[1:])), "", params, token)
            if rest[0] == "tree" and len(rest) >= 2:
                path = unquote("/".join(rest[2:]))
                return self._api(repo_type, repo_id, "tree", unquote(rest[1]), path, params, token)
            if rest[0] == "refs" and len(rest) == 1:
                return self._api(repo_type, repo_id, "refs", "", "", params, token)
            if rest[0] == "commits" and len(rest) >= 2:
                return self._api(
                    repo_type, repo_id, "commits", unquote("/".join(rest[1:])), "", params, token
                )
        if len(seg) >= 6 and seg[0] == "datasets" and seg[3] == "resolve":
            repo_id = f"{unquote(seg[1])}/{unquote(seg[2])}"
            return self._resolve_file(
                method, "dataset", repo_id, unquote(seg[4]), seg[5:], range_header, token
            )
        if len(seg) >= 5 and seg[0] != "api" and seg[2] == "resolve":
            repo_id = f"{unquote(seg[0])}/{unquote(seg[1])}"
            return self._resolve_file(method, "model", repo_id, unquote(seg[3]), seg[4:], range_header, token)
        return _error(404, "Sorry, we can't find the page you are looking for.")

    def _whoami(self, token: str | None) -> _Response:
        if token is None or token not in self.valid_tokens:
            resp = _error(401, "Invalid credentials in Authorization header")
        else:
            user = self._users.get(token, "tester")
            resp = _json(
                200,
                {
                    "type": "user",
                    "id": hashlib.sha1(user.encode(), usedforsecurity=False).hexdigest()[:24],
                    "name": user,
                    "fullname": user,
                    "isPro": False,
                    "orgs": [],
                    "auth": {
                        "type": "access_token",
                        "accessToken": {"displayName": "t", "role": "read", "createdAt": _now_iso()},
                    },
                },
            )
        resp.kind = "whoami"
        return resp

    def _access(self, repo_type: str, repo_id: str, token: str | None) -> _Repo | _Response:
        """The repo, or the Hub's error: bad token 401; missing/private 401 anonymous, 404 logged in."""
        if token is not None and token not in self.valid_tokens:
            return _error(401, "Invalid credentials in Authorization header")
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._may_read(token, repo)):
            return _error(401 if token is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _api(
        self,
        repo_type: str,
        repo_id: str,
        kind: str,
        rev: str,
        path: str,
        params: Mapping[str, list[str]],
        token: str | None,
    ) -> _Response:
        resp = self._api_answer(repo_type, repo_id, kind, rev, path, params, token)
        resp.kind, resp.repo_type, resp.repo_id, resp.revision = kind, repo_type, repo_id, rev or None
        return resp

    def _api_answer(
        self,
        repo_type: str,
        repo_id: str,
        kind: str,
        rev: str,
        path: str,
        params: Mapping[str, list[str]],
        token: str | None,
    ) -> _Response:
        repo = self._access(repo_type, repo_id, token)
        if isinstance(repo, _Response):
            return repo
        if kind == "refs":
            return _json(200, self._refs(repo, include_prs=_truthy(params, "include_prs")))
        commit = self._resolve(repo, rev)
        if commit is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        if kind == "info":
            return _json(200, self._info(repo, commit, blobs=_truthy(params, "blobs")))
        if kind == "commits":
            return _json(200, self._history(repo, commit))
        expand = _truthy(params, "expand")
        if kind == "paths-info":
            wanted = params.get("paths", [])
            entries = [e for p in wanted if (e := self._entry(repo, commit, p.strip("/"), expand))]
            return _json(200, entries)
        listing = self._tree(repo, commit, path.strip("/"), _truthy(params, "recursive"), expand)
        if listing is None:
            return _error(404, f"Entry not found: {path}", "EntryNotFound", **{"X-Repo-Commit": commit.sha})
        return _json(200, listing)

    def _refs(self, repo: _Repo, *, include_prs: bool) -> dict[str, Any]:
        def ref(name: str, prefix: str, sha: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{prefix}/{name}", "targetCommit": sha}

        branches = sorted(repo.branches.items(), key=lambda kv: (kv[0] != "main", kv[0]))
        out: dict[str, Any] = {
            "branches": [ref(n, "heads", s) for n, s in branches],
            "converts": [],
            "tags": [ref(n, "tags", s) for n, s in sorted(repo.tags.items())],
        }
        if include_prs:
            out["pullRequests"] = []
        return out

    def _info(self, repo: _Repo, commit: _Commit, *, blobs: bool) -> dict[str, Any]:
        org = repo.repo_id.split("/")[0]
        card = _front_matter(commit.files["README.md"]) if "README.md" in commit.files else None
        tags: list[str] = []
        if card:
            card_tags = card.get("tags")
            if isinstance(card_tags, str):
                tags.append(card_tags)
            elif isinstance(card_tags, list):
                tags.extend(str(t) for t in card_tags)
            if isinstance(card.get("license"), str):
                tags.append(f"license:{card['license']}")
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
            "id": repo.repo_id,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        info.update(
            {
                "author": org,
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": "auto" if repo.gated else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": tags,
            }
        )
        if card and repo.repo_type == "model":
            for key in ("pipeline_tag", "library_name"):
                if isinstance(card.get(key), str):
                    info[key] = card[key]
        if card is not None:
            info["cardData"] = card
        siblings = []
        for name in sorted(commit.files):
            blob = commit.files[name]
            sib: dict[str, Any] = {"rfilename": name}
            if blobs:
                sib["size"] = blob.size
                sib["blobId"] = blob.git_sha1
                if is_lfs(name, blob.size):
                    sib["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": lfs_pointer_size(blob.sha256, blob.size),
                    }
            siblings.append(sib)
        info["siblings"] = siblings
        if repo.repo_type == "model":
            totals: dict[str, int] = {}
            for name, blob in commit.files.items():
                if name.lower().endswith(".safetensors"):
                    for dtype, n in (self._safetensors.get(blob.sha256) or {}).items():
                        totals[dtype] = totals.get(dtype, 0) + n
            if totals:
                info["safetensors"] = {"parameters": totals, "total": sum(totals.values())}
        info["usedStorage"] = sum(b.size for b in commit.files.values())
        return info

    def _history(self, repo: _Repo, commit: _Commit) -> list[dict[str, Any]]:
        out = []
        current: _Commit | None = commit
        while current is not None:
            title, _, body = current.message.partition("\n")
            out.append(
                {
                    "id": current.sha,
                    "title": title,
                    "message": body.strip(),
                    "authors": [{"user": "tester"}],
                    "date": current.date,
                }
            )
            current = repo.commits[current.parent] if current.parent else None
        return out

    def _last_commit(self, repo: _Repo, commit: _Commit, path: str) -> _Commit:
        """The newest ancestor that changed ``path`` (files) or anything under it (folders)."""

        def state(c: _Commit) -> list[tuple[str, str]]:
            prefix = path + "/"
            return sorted((n, b.git_sha1) for n, b in c.files.items() if n == path or n.startswith(prefix))

        current, mine = commit, state(commit)
        while current.parent is not None:
            parent = repo.commits[current.parent]
            if state(parent) != mine:
                return current
            current = parent
        return current

    def _file_entry(self, repo: _Repo, commit: _Commit, name: str, expand: bool) -> dict[str, Any]:
        blob = commit.files[name]
        entry: dict[str, Any] = {"type": "file", "oid": blob.git_sha1, "size": blob.size, "path": name}
        if is_lfs(name, blob.size):
            entry["lfs"] = {
                "oid": blob.sha256,
                "size": blob.size,
                "pointerSize": lfs_pointer_size(blob.sha256, blob.size),
            }
        if expand:
            entry["lastCommit"] = self._commit_ref(self._last_commit(repo, commit, name))
        return entry

    def _dir_entry(self, repo: _Repo, commit: _Commit, name: str, expand: bool) -> dict[str, Any]:
        prefix = name + "/"
        h = hashlib.sha1(f"tree {name}\n".encode(), usedforsecurity=False)
        for n in sorted(commit.files):
            if n.startswith(prefix):
                h.update(f"{n}\0{commit.files[n].git_sha1}\n".encode())
        entry: dict[str, Any] = {"type": "directory", "oid": h.hexdigest(), "size": 0, "path": name}
        if expand:
            entry["lastCommit"] = self._commit_ref(self._last_commit(repo, commit, name))
        return entry

    @staticmethod
    def _commit_ref(c: _Commit) -> dict[str, str]:
        return {"id": c.sha, "title": c.message.partition("\n")[0], "date": c.date}

    @staticmethod
    def _dirs(commit: _Commit) -> set[str]:
        dirs: set[str] = set()
        for name in commit.files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _entry(self, repo: _Repo, commit: _Commit, path: str, expand: bool) -> dict[str, Any] | None:
        if path in commit.files:
            return self._file_entry(repo, commit, path, expand)
        if path in self._dirs(commit):
            return self._dir_entry(repo, commit, path, expand)
        return None

    def _tree(
        self, repo: _Repo, commit: _Commit, base: str, recursive: bool, expand: bool
    ) -> list[dict[str, Any]] | None:
        dirs = self._dirs(commit)
        if base and base not in dirs:
            return None
        prefix = base + "/" if base else ""

        def wanted(name: str) -> bool:
            return name.startswith(prefix) and (recursive or "/" not in name[len(prefix) :])

        entries = [self._dir_entry(repo, commit, d, expand) for d in dirs if wanted(d)]
        entries += [self._file_entry(repo, commit, f, expand) for f in commit.files if wanted(f)]
        return sorted(entries, key=lambda e: str(e["path"]))

    def _resolve_file(
        self,
        method: str,
        repo_type: str,
        repo_id: str,
        rev: str,
        path_segments: list[str],
        range_header: str | None,
        token: str | None,
    ) -> _Response:
        filename = unquote("/".join(path_segments))
        resp = self._resolve_answer(method, repo_type, repo_id, rev, filename, range_header, token)
        resp.kind, resp.repo_type, resp.repo_id = "resolve", repo_type, repo_id
        resp.revision, resp.filename = rev, filename
        return resp

    def _resolve_answer(
        self,
        method: str,
        repo_type: str,
        repo_id: str,
        rev: str,
        filename: str,
        range_header: str | None,
        token: str | None,
    ) -> _Response:
        if method not in ("GET", "HEAD"):
            return _error(405, f"{method} is not supported on resolve")
        repo = self._access(repo_type, repo_id, token)
        if isinstance(repo, _Response):
            return repo
        if repo.gated and filename not in UNGATED_FILES and not self._may_read(token, repo):
            if token is None:
                msg = (
                    f"Access to {repo_type} {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in."
                )
                return _error(401, msg, "GatedRepo")
            msg = (
                f"Access to {repo_type} {repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.url}/{repo_id} to ask for access."
            )
            return _error(403, msg, "GatedRepo")
        commit = self._resolve(repo, rev)
        if commit is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        blob = commit.files.get(filename)
        if blob is None:
            return _error(404, "Entry not found", "EntryNotFound", **{"X-Repo-Commit": commit.sha})
        lfs = is_lfs(filename, blob.size)
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{blob.sha256 if lfs else blob.git_sha1}"',
        }
        if lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(blob.size)
        status, start, length = 200, 0, blob.size
        span = _parse_range(range_header, blob.size)
        if span == "unsatisfiable":
            return _Response(416, {**headers, "Content-Range": f"bytes */{blob.size}"})
        if isinstance(span, tuple):
            status, start, end = 206, span[0], span[1]
            length = end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        resp = _Response(status, headers, blob=blob, start=start, length=length)
        if method == "GET" and length > 0:
            key = (repo_type, repo_id, filename)
            cap = self._caps.get(key)
            if cap is not None:
                resp.cut_after = max(0, cap - start)
            cut = self._cuts.get(key)
            if cut is not None:
                resp.cut_after = cut[0]
                if cut[1] > 0:
                    cut[1] -= 1
                    if cut[1] == 0:
                        del self._cuts[key]
        return resp


def _truthy(params: Mapping[str, list[str]], name: str) -> bool:
    values = params.get(name) or params.get(f"{name}[]") or []
    return any(v.lower() in ("1", "true", "yes", "") for v in values)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` inclusive, ``"unsatisfiable"`` (416), or None to ignore the header (200).

    A single ``bytes=a-b`` / ``a-`` / ``-n`` range; the end is clamped to the last byte (clients ask
    for ``bytes=0-100000`` of small files). Multi-ranges and malformed headers are ignored.
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:  # malformed: ignored, as RFC 9110 says
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


def _check_repo_path(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad path in repo: {name!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kitbridge-hub-test/1"
    timeout = 60  # an idle keep-alive connection is dropped after this (handler threads exit)
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # the request log is the HubServer's
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _handle(self) -> None:
        hub = self.server.hub
        hub._begin()
        split = urlsplit(self.path)
        token = _bearer(self.headers.get("Authorization"))
        range_header = self.headers.get("Range")
        resp: _Response | None = None
        sent = 0
        try:
            body = self._read_body()
            resp = hub.answer(self.command, split.path, split.query, range_header, token, body)
            sent = self._send(resp)
        finally:
            hub._end(
                LoggedRequest(
                    method=self.command,
                    path=split.path,
                    query=split.query,
                    range=range_header,
                    status=resp.status if resp is not None else 0,
                    body_bytes_sent=sent,
                    token=token,
                    kind=resp.kind if resp is not None else "unknown",
                    repo_type=resp.repo_type if resp is not None else None,
                    repo_id=resp.repo_id if resp is not None else None,
                    revision=resp.revision if resp is not None else None,
                    filename=resp.filename if resp is not None else None,
                )
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):  # not spoken here: do not reuse the connection
            self.close_connection = True
            return b""
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, resp: _Response) -> int:
        """Write the answer; returns the body bytes written. Clients leaving mid-body are not errors."""
        sent = 0
        length = resp.length if resp.blob is not None else len(resp.body)
        try:
            self.send_response(resp.status)
            for name, value in resp.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command == "HEAD":
                return 0
            if resp.blob is None:
                if resp.body:
                    self.wfile.write(resp.body)
                    sent = len(resp.body)
                return sent
            limit = length if resp.cut_after is None else min(length, resp.cut_after)
            with contextlib.closing(resp.blob.pieces(resp.start, limit)) as pieces:
                for piece in pieces:
                    view = memoryview(piece)
                    while view:  # send(), not sendall(): the log counts what a vanishing client got
                        n = self.connection.send(view)
                        sent += n
                        view = view[n:]
            if resp.cut_after is not None or sent < length:
                self._abort()
        except OSError:  # BrokenPipe, ConnectionReset, timeouts: the client went away
            self.close_connection = True
        return sent

    def _abort(self) -> None:
        """Drop the connection mid-body: the client sees fewer bytes than Content-Length said."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.connection.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, hub: HubServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client that vanished: not the test's problem
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_hub() -> Iterator[HubServer]:
    """A started :class:`HubServer`, closed on exit (usable outside pytest, e.g. in benchmarks)."""
    hub = HubServer()
    hub.start()
    try:
        yield hub
    finally:
        hub.close()
