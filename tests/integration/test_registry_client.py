"""RegistryClient against real docker-registry processes (plain HTTP, htpasswd Basic, TLS, token auth).

Faults that a real registry cannot be made to commit (ignoring Range, cutting a body mid-way,
redirecting blob reads to another host) come from a small reverse proxy in front of a real registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import requests
import yaml
from conftest import require_tool
from registry_server import PASSWORD, USER, Registry

from kitbridge.errors import (
    AuthenticationError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TLSError,
)
from kitbridge.oci.credentials import Credentials, save_login
from kitbridge.oci.registry import OCI_MANIFEST, RegistryClient

MiB = 1024 * 1024
GOOD = Credentials(USER, PASSWORD)
EMPTY_CONFIG = b"{}"


@pytest.fixture(autouse=True)
def _no_user_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's own Docker logins or KITBRIDGE_REGISTRY_* variables."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("KITBRIDGE_REGISTRY_USER", raising=False)
    monkeypatch.delenv("KITBRIDGE_REGISTRY_PASSWORD", raising=False)


def blob(size: int, seed: int = 0) -> tuple[bytes, str]:
    """Deterministic pseudo-random bytes (incompressible) and their digest."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    data = bytes(out[:size])
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def opener(data: bytes, calls: list[int] | None = None) -> Callable[[int], BinaryIO]:
    def open_src(offset: int) -> BinaryIO:
        if calls is not None:
            calls.append(offset)
        f = io.BytesIO(data)
        f.seek(offset)
        return f

    return open_src


def plain(reg: Registry, **kw: Any) -> RegistryClient:
    kw.setdefault("credentials", None)
    return RegistryClient(reg.host, plain_http=True, **kw)


def download(client: RegistryClient, repo: str, digest: str, **kw: Any) -> tuple[bytes, str, int]:
    """(bytes, their sha256 as the hasher saw them, bytes reported through on_bytes)."""
    sink, hasher, seen = io.BytesIO(), hashlib.sha256(), [0]

    def on_bytes(n: int) -> None:
        seen[0] += n

    client.download_blob(repo, digest, sink, hasher=hasher, on_bytes=on_bytes, **kw)
    return sink.getvalue(), "sha256:" + hasher.hexdigest(), seen[0]


def manifest_for(client: RegistryClient, repo: str, layer: tuple[bytes, str], tag_note: str = "") -> bytes:
    """Push the config and one layer; return manifest bytes (deliberately not canonical JSON)."""
    config_digest = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()
    client.upload_blob(repo, config_digest, len(EMPTY_CONFIG), opener(EMPTY_CONFIG))
    data, digest = layer
    client.upload_blob(repo, digest, len(data), opener(data))
    config = {"mediaType": "application/vnd.kitops.modelkit.config.v1+json", "digest": config_digest}
    layer_desc = {"mediaType": "application/vnd.kitops.modelkit.model.v1.tar", "digest": digest}
    text = (
        f'{{\n   "schemaVersion": 2,  "mediaType": "{OCI_MANIFEST}",\n'
        '"artifactType": "application/vnd.kitops.modelkit.manifest.v1+json",\n'
        f'"config": {json.dumps(config)[:-1]}, "size": {len(EMPTY_CONFIG)}}},\n'
        f'"layers": [{json.dumps(layer_desc)[:-1]}, "size": {len(data)}}}],\n'
        f'"annotations": {{"note": "{tag_note}"}}}}'
    )
    return text.encode()


# ---- blobs ------------------------------------------------------------------------------------


def test_blob_upload_head_download_round_trip(registry: Registry) -> None:
    data, digest = blob(5 * MiB + 7)
    sent: list[int] = []
    with plain(registry) as client:
        assert client.blob_size("team/model", digest) is None
        client.upload_blob("team/model", digest, len(data), opener(data), on_bytes=sent.append)
        assert sum(sent) == len(data)
        assert max(sent) <= 8 * MiB  # streamed in chunks, never as one piece
        assert client.blob_size("team/model", digest) == len(data)
        got, hashed, seen = download(client, "team/model", digest)
    assert got == data and hashed == digest and seen == len(data)
    assert digest in registry.blob_digests()


def test_empty_blob_round_trip(registry: Registry) -> None:
    data, digest = b"", "sha256:" + hashlib.sha256(b"").hexdigest()
    with plain(registry) as client:
        client.upload_blob("team/empty", digest, 0, opener(data))
        assert client.blob_size("team/empty", digest) == 0
        assert download(client, "team/empty", digest) == (b"", digest, 0)


def test_chunked_upload_sends_patches(registry: Registry) -> None:
    data, digest = blob(3 * MiB + 512 * 1024, seed=1)
    calls: list[int] = []
    sent: list[int] = []
    with plain(registry) as client:
        client.upload_blob(
            "team/chunked", digest, len(data), opener(data, calls), chunk_size=MiB, on_bytes=sent.append
        )
        assert calls == [0, MiB, 2 * MiB, 3 * MiB]  # one PATCH per chunk, each from its own offset
        assert sum(sent) == len(data)
        assert download(client, "team/chunked", digest)[0] == data


def test_upload_with_wrong_digest_is_refused(registry: Registry) -> None:
    data, _ = blob(1000, seed=2)
    _, other = blob(1000, seed=3)
    with plain(registry) as client, pytest.raises(DigestMismatchError, match=other):
        client.upload_blob("team/model", other, len(data), opener(data))
    assert other not in registry.blob_digests()


def test_download_from_offset_uses_range(registry: Registry) -> None:
    data, digest = blob(3 * MiB + 11, seed=4)
    offset = MiB + 5
    with plain(registry) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
        sink = io.BytesIO(data[:offset])
        sink.seek(offset)
        hasher = hashlib.sha256(data[:offset])
        seen: list[int] = []
        client.download_blob("team/model", digest, sink, offset=offset, hasher=hasher, on_bytes=seen.append)
    assert sink.getvalue() == data
    assert "sha256:" + hasher.hexdigest() == digest
    assert sum(seen) == len(data) - offset


def test_download_from_offset_at_end_is_complete(registry: Registry) -> None:
    data, digest = blob(1000, seed=5)
    with plain(registry) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
        sink = io.BytesIO(data)
        sink.seek(len(data))
        client.download_blob("team/model", digest, sink, offset=len(data))
    assert sink.getvalue() == data


def test_mount_between_repositories(registry: Registry) -> None:
    data, digest = blob(64 * 1024, seed=6)
    with plain(registry) as client:
        client.upload_blob("team/source", digest, len(data), opener(data))
        assert client.mount_blob("team/target", digest, "team/source") is True
        assert client.blob_size("team/target", digest) == len(data)


def test_mount_of_a_missing_blob_returns_false_and_cancels_the_upload(registry: Registry) -> None:
    _, digest = blob(10, seed=7)
    with plain(registry) as client:
        small, small_digest = blob(1, seed=8)
        client.upload_blob("team/target", small_digest, 1, opener(small))  # the repository exists
        assert client.mount_blob("team/target", digest, "team/elsewhere") is False
        assert client.blob_size("team/target", digest) is None
    # The session the 202 opened was cancelled: the registry keeps no live upload (data/startedat).
    uploads = registry.data_dir / "docker/registry/v2/repositories/team/target/_uploads"
    assert [p.name for p in uploads.rglob("*") if p.name in ("data", "startedat")] == []


def test_missing_blob_is_not_found(registry: Registry) -> None:
    _, digest = blob(10, seed=9)
    with plain(registry) as client, pytest.raises(NotFoundError, match=f"blob {digest} not found in"):
        client.download_blob("team/model", digest, io.BytesIO())


# ---- manifests and tags -----------------------------------------------------------------------


def test_manifest_round_trip_keeps_exact_bytes(registry: Registry) -> None:
    with plain(registry) as client:
        data = manifest_for(client, "team/model", blob(2048, seed=10))
        expected = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.put_manifest("team/model", "v1", data, OCI_MANIFEST) == expected
        assert client.get_manifest("team/model", "v1") == (data, OCI_MANIFEST, expected)
        assert client.get_manifest("team/model", expected) == (data, OCI_MANIFEST, expected)
        assert client.head_manifest("team/model", "v1") == (expected, len(data), OCI_MANIFEST)
        assert client.head_manifest("team/model", "v2") is None
        # Pushed by digest (no tag): addressable by that digest.
        other = manifest_for(client, "team/model", blob(2048, seed=10), tag_note="x")
        other_digest = "sha256:" + hashlib.sha256(other).hexdigest()
        assert client.put_manifest("team/model", other_digest, other, OCI_MANIFEST) == other_digest
        assert client.get_manifest("team/model", other_digest)[0] == other


def test_manifest_pushed_by_a_digest_it_does_not_have_is_refused(registry: Registry) -> None:
    with plain(registry) as client, pytest.raises(DigestMismatchError):
        client.put_manifest("team/model", "sha256:" + "0" * 64, b"{}", OCI_MANIFEST)


def test_manifest_naming_missing_blobs_is_refused_with_a_hint(registry: Registry) -> None:
    _, missing = blob(10, seed=11)
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/json", "digest": missing, "size": 10},
            "layers": [],
        }
    ).encode()
    with plain(registry) as client, pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN") as e:
        client.put_manifest("team/model", "v1", data, OCI_MANIFEST)
    assert "push the blobs" in (e.value.hint or "")


def test_missing_tag_and_repository_are_not_found(registry: Registry) -> None:
    with plain(registry) as client:
        data = manifest_for(client, "team/model", blob(100, seed=12))
        client.put_manifest("team/model", "v1", data, OCI_MANIFEST)
        with pytest.raises(NotFoundError, match=r"team/model:nope not found on 127\.0\.0\.1"):
            client.get_manifest("team/model", "nope")
        with pytest.raises(NotFoundError, match=r"team/ghost:v1 not found"):
            client.get_manifest("team/ghost", "v1")
        with pytest.raises(NotFoundError, match=r"repository team/ghost not found"):
            client.list_tags("team/ghost")
        with pytest.raises(NotFoundError, match=r"manifest team/model@sha256:0{64} not found"):
            client.get_manifest("team/model", "sha256:" + "0" * 64)


# ---- auth ---------------------------------------------------------------------------------------


def test_no_credentials_is_an_authentication_error(auth_registry: Registry) -> None:
    data, digest = blob(100, seed=14)
    with plain(auth_registry) as client:
        with pytest.raises(AuthenticationError, match="requires authentication") as e:
            client.ping()
        assert f"kitbridge login {auth_registry.host}" in (e.value.hint or "")
        with pytest.raises(AuthenticationError):
            client.upload_blob("team/model", digest, len(data), opener(data))


def test_wrong_password_is_an_authentication_error_without_the_password(
    auth_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = Credentials(USER, "wrong-password-123")
    with plain(auth_registry, credentials=bad) as client, pytest.raises(AuthenticationError) as e:
        client.ping()
    assert f"rejected the credentials of user '{USER}'" in str(e.value)
    assert f"kitbridge login {auth_registry.host}" in str(e.value)
    for text in (str(e.value), repr(e.value), repr(client), caplog.text):
        assert "wrong-password-123" not in text


def test_basic_auth_with_the_right_credentials(
    auth_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data, digest = blob(2 * MiB, seed=15)
    with plain(auth_registry, credentials=GOOD) as client:
        client.ping()
        m = manifest_for(client, "team/model", (data, digest))
        mdigest = client.put_manifest("team/model", "v1", m, OCI_MANIFEST)
        assert client.get_manifest("team/model", "v1")[2] == mdigest
        assert download(client, "team/model", digest)[0] == data
        assert client.list_tags("team/model") == ["v1"]
        assert client.mount_blob("team/other", digest, "team/model") is True
    assert PASSWORD not in caplog.text


def test_credentials_default_to_the_environment_and_docker_config(
    auth_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RegistryClient(auth_registry.host, plain_http=True) as client, pytest.raises(AuthenticationError):
        client.ping()
    save_login(auth_registry.host, USER, PASSWORD)
    with RegistryClient(auth_registry.host, plain_http=True) as client:
        client.ping()
    monkeypatch.setenv("KITBRIDGE_REGISTRY_USER", USER)
    monkeypatch.setenv("KITBRIDGE_REGISTRY_PASSWORD", "env-wins-and-is-wrong")
    with RegistryClient(auth_registry.host, plain_http=True) as client, pytest.raises(AuthenticationError):
        client.ping()


def test_one_client_shared_by_threads(auth_registry: Registry) -> None:
    blobs = [blob(MiB + i, seed=100 + i) for i in range(8)]
    with plain(auth_registry, credentials=GOOD, max_connections=8) as client:

        def round_trip(item: tuple[bytes, str]) -> bool:
            data, digest = item
            client.upload_blob("team/par", digest, len(data), opener(data))
            return download(client, "team/par", digest)[0] == data

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(round_trip, blobs))


# ---- TLS ------------------------------------------------------------------------------------------


def test_unknown_ca_is_a_tls_error_with_hints(tls_registry: Registry) -> None:
    client = RegistryClient(tls_registry.host, credentials=None, retries=0)
    with client, pytest.raises(TLSError, match=r"TLS verification of 127\.0\.0\.1") as e:
        client.ping()
    assert "--ca-file" in (e.value.hint or "") and "--tls-verify=false" in (e.value.hint or "")


def test_ca_file_makes_tls_work(tls_registry: Registry) -> None:
    data, digest = blob(MiB, seed=16)
    with RegistryClient(tls_registry.host, ca_file=tls_registry.ca_file, credentials=None) as client:
        client.ping()
        client.upload_blob("team/model", digest, len(data), opener(data))
        assert download(client, "team/model", digest)[0] == data


def test_tls_verify_false_skips_verification(tls_registry: Registry) -> None:
    data, digest = blob(1000, seed=24)
    with RegistryClient(tls_registry.host, tls_verify=False, credentials=None) as client:
        client.ping()
        client.upload_blob("team/model", digest, len(data), opener(data))
        assert download(client, "team/model", digest)[0] == data


def test_plain_http_against_tls_and_tls_against_plain(tls_registry: Registry, registry: Registry) -> None:
    with plain(tls_registry) as client, pytest.raises(TLSError, match="speaks HTTPS"):
        client.ping()
    client = RegistryClient(registry.host, credentials=None, retries=0)
    with client, pytest.raises(TLSError, match="does not speak TLS") as e:
        client.ping()
    assert "--plain-http" in (e.value.hint or "")


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TLSError, match=r"CA file .*nope\.pem does not exist"):
        RegistryClient("127.0.0.1:1", ca_file=tmp_path / "nope.pem", credentials=None)


# ---- faults ---------------------------------------------------------------------------------------


def test_registry_down_is_a_registry_error_naming_the_host(registry: Registry) -> None:
    registry.stop()
    started = time.monotonic()
    client = plain(registry, retries=2, backoff=0.05)
    with (
        client,
        pytest.raises(RegistryError, match=rf"cannot connect to {registry.host}.*connection refused"),
    ):
        client.blob_size("team/model", blob(1)[1])
    assert time.monotonic() - started < 5


class SlowSource(io.RawIOBase):
    """A blob source that pauses once, at byte ``pause_at`` of the blob, until told to go on."""

    def __init__(
        self, data: bytes, offset: int, pause_at: int, reached: threading.Event, resume: threading.Event
    ) -> None:
        self.f = io.BytesIO(data)
        self.f.seek(offset)
        self.reached, self.resume = reached, resume
        self.pause_at = pause_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.f.tell() >= self.pause_at and not self.reached.is_set():
            self.reached.set()
            self.resume.wait(30)
        return self.f.readinto(buffer)


def _kill_then_restart(reg: Registry, reached: threading.Event, resume: threading.Event) -> threading.Thread:
    def run() -> None:
        reached.wait(60)
        reg.kill()
        resume.set()  # the upload now writes into a dead socket
        time.sleep(1.0)  # let it fail and retry against a closed port at least once
        reg.restart()

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.slow
def test_upload_survives_registry_killed_and_restarted(registry: Registry) -> None:
    data, digest = blob(40 * MiB, seed=17)
    reached, resume = threading.Event(), threading.Event()
    opened: list[int] = []
    sent: list[int] = []

    def open_src(offset: int) -> BinaryIO:
        opened.append(offset)
        return io.BufferedReader(SlowSource(data, offset, 8 * MiB, reached, resume))

    t = _kill_then_restart(registry, reached, resume)
    with plain(registry, retries=8, backoff=0.2) as client:
        client.upload_blob("team/big", digest, len(data), open_src, on_bytes=sent.append)
        t.join()
        assert len(opened) >= 2  # the first attempt died with the registry
        assert sum(sent) == len(data)  # progress counted each byte once
        assert client.blob_size("team/big", digest) == len(data)
        assert download(client, "team/big", digest)[1] == digest


@pytest.mark.slow
@pytest.mark.parametrize("pause_at", [8 * MiB, 12 * MiB], ids=["between-chunks", "mid-chunk"])
def test_chunked_upload_after_a_restart_resumes_where_the_registry_stands(
    registry: Registry, pause_at: int
) -> None:
    data, digest = blob(24 * MiB, seed=18)
    reached, resume = threading.Event(), threading.Event()
    opened: list[int] = []

    def open_src(offset: int) -> BinaryIO:
        opened.append(offset)
        return io.BufferedReader(SlowSource(data, offset, pause_at, reached, resume))

    t = _kill_then_restart(registry, reached, resume)
    with plain(registry, retries=8, backoff=0.2) as client:
        client.upload_blob("team/big", digest, len(data), open_src, chunk_size=8 * MiB)
        t.join()
        assert download(client, "team/big", digest)[1] == digest
    # The chunk at 0 went through; the one at 8 MiB paused at ``pause_at`` and died with the registry.
    assert opened[:2] == [0, 8 * MiB]
    if pause_at == 8 * MiB:
        # Nothing of the broken PATCH reached the registry: the retry asked the session where it
        # stood (8 MiB) and went on from there, not from byte 0.
        assert opened[2:] == [8 * MiB, 16 * MiB]
    else:
        # If part of the broken PATCH reached the registry's disk, distribution refuses to resume
        # the session (its state token names an offset the file no longer has) and the upload
        # starts over in a new one; if none did, it resumes at 8 MiB. Either way, it completes.
        assert opened[2:] in ([0, 8 * MiB, 16 * MiB], [8 * MiB, 16 * MiB])


# ---- faults only a proxy can cause ------------------------------------------------------------


class FaultProxy:
    """A reverse proxy to a real registry that can drop ``Range``, cut one body short, or redirect
    blob GETs to another host name (``localhost``) that serves them as signed storage would."""

    def __init__(self, upstream: Registry, *, strip_range: bool = False, cut_after: int | None = None,
                 redirect_blobs: bool = False, page_tags: bool = False,
                 busy: list[int] | None = None) -> None:  # fmt: skip
        self.upstream = upstream
        self.strip_range, self.cut_after, self.redirect_blobs = strip_range, cut_after, redirect_blobs
        self.page_tags = page_tags
        self.busy = list(busy or [])  # statuses (429/5xx) to answer the first requests with
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            def do_HEAD(self) -> None:
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def tags_page(self, h: BaseHTTPRequestHandler, headers: dict[str, str]) -> None:
        """Serve the tag list in pages (``n``, ``last``, a relative ``Link``), as distribution 3 and
        the big registries do; distribution 2.8 itself always sends every tag at once."""
        parts = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(parts.query)
        r = requests.get(self.upstream.url + parts.path, headers=headers, timeout=30)
        if r.status_code != 200:
            body = r.content
            h.send_response(r.status_code)
        else:
            tags = sorted(r.json()["tags"])
            last = query.get("last", [""])[0]
            n = int(query.get("n", ["3"])[0])
            rest = [t for t in tags if t > last]
            body = json.dumps({"name": r.json()["name"], "tags": rest[:n]}).encode()
            h.send_response(200)
            if len(rest) > n:
                next_query = urllib.parse.urlencode({"n": n, "last": rest[n - 1]})
                h.send_header("Link", f'<{parts.path}?{next_query}>; rel="next"')
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        self.requests.append((h.command, h.path, dict(headers)))
        if self.busy:
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            h.send_response(self.busy.pop(0))
            h.send_header("Retry-After", "1")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        if self.page_tags and "/tags/list" in h.path:
            self.tags_page(h, headers)
            return
        path = h.path
        if path.startswith("/_storage"):
            path = path[len("/_storage") :]
            headers.pop("Authorization", None)
            if self.upstream.mode == "basic":  # storage URLs are pre-signed: the proxy holds the key
                headers["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        elif (
            self.redirect_blobs
            and h.command == "GET"
            and "/blobs/sha256:" in path
            and ("Authorization" in headers or self.upstream.mode != "basic")  # else: the 401 first
        ):
            h.send_response(307)
            h.send_header("Location", f"http://localhost:{self.port}/_storage{path}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if self.strip_range:
            headers.pop("Range", None)
        r = requests.request(
            h.command,
            self.upstream.url + path,
            headers=headers,
            stream=True,
            allow_redirects=False,
            timeout=30,
        )
        h.send_response(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "date", "server"):
                h.send_header(k, v)
        h.end_headers()
        if h.command == "HEAD":
            r.close()
            return
        sent = 0
        for chunk in r.raw.stream(64 * 1024, decode_content=False):
            if self.cut_after is not None and sent + len(chunk) > self.cut_after:
                h.wfile.write(chunk[: self.cut_after - sent])
                h.wfile.flush()
                self.cut_after = None  # once
                h.connection.shutdown(socket.SHUT_RDWR)
                h.close_connection = True
                r.close()
                return
            h.wfile.write(chunk)
            sent += len(chunk)
        r.close()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    made: list[FaultProxy] = []

    def make(upstream: Registry, **kw: Any) -> FaultProxy:
        p = FaultProxy(upstream, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_download_resumes_after_a_dropped_connection(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    data, digest = blob(6 * MiB + 3, seed=19)
    with plain(registry) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
    proxy = proxy_factory(registry, cut_after=MiB + 1234)
    with RegistryClient(proxy.host, plain_http=True, credentials=None, backoff=0.05) as client:
        got, hashed, seen = download(client, "team/model", digest)
    assert got == data and hashed == digest and seen == len(data)
    gets = [hd for method, _, hd in proxy.requests if method == "GET"]
    assert len(gets) == 2 and "Range" not in gets[0]
    start = int(gets[1]["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= MiB + 1234  # resumed from what had arrived, not from 0


def test_registry_ignoring_range_restarts_from_zero_and_skips_what_we_have(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    data, digest = blob(3 * MiB, seed=20)
    with plain(registry) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
    proxy = proxy_factory(registry, strip_range=True)
    offset = 2 * MiB + 77
    sink = io.BytesIO(data[:offset])
    sink.seek(offset)
    hasher = hashlib.sha256(data[:offset])
    seen: list[int] = []
    with RegistryClient(proxy.host, plain_http=True, credentials=None) as client:
        client.download_blob("team/model", digest, sink, offset=offset, hasher=hasher, on_bytes=seen.append)
    assert sink.getvalue() == data
    assert "sha256:" + hasher.hexdigest() == digest
    assert sum(seen) == len(data) - offset


def test_blob_redirect_is_followed_without_forwarding_credentials(
    auth_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    data, digest = blob(2 * MiB, seed=21)
    with plain(auth_registry, credentials=GOOD) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
    proxy = proxy_factory(auth_registry, redirect_blobs=True)
    with RegistryClient(proxy.host, plain_http=True, credentials=GOOD) as client:
        assert download(client, "team/model", digest)[0] == data
    storage = [hd for _, path, hd in proxy.requests if path.startswith("/_storage")]
    assert storage, "the download did not go through the redirect"
    assert all("Authorization" not in hd for hd in storage)
    assert any("Authorization" in hd for _, path, hd in proxy.requests if "/blobs/" in path)


# ---- Bearer tokens: a real token service in front of a real registry ---------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenService:
    """A distribution token server: checks Basic credentials or a refresh token, signs RS256 JWTs
    (with the openssl CLI) that the registry verifies against our certificate."""

    SERVICE, ISSUER, REFRESH = "kitbridge-test-registry", "kitbridge-test-issuer", "refresh-good"

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = root / "token.key", root / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-days", "1", "-subj", "/CN=kitbridge token signer"],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True, capture_output=True
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.calls: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                service.answer(self, q.get("scope", []), self.headers.get("Authorization"), None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = urllib.parse.parse_qs(body)
                scopes = form.get("scope", [""])[0].split()
                service.answer(self, scopes, None, form)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def answer(
        self,
        h: BaseHTTPRequestHandler,
        scopes: list[str],
        auth: str | None,
        form: dict[str, list[str]] | None,
    ) -> None:
        self.calls.append({"scopes": scopes, "auth": auth is not None, "form": form is not None})
        if form is not None:
            ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [self.REFRESH]
            subject = USER if ok else None
        elif auth is None:
            subject = ""  # anonymous: a token that grants nothing
        else:
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            subject = USER if auth == expected else None
        if subject is None:
            h.send_response(401)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        access = []
        for scope in scopes if subject else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        token = self.sign(
            {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 300, "nbf": now - 10,
             "iat": now, "jti": os.urandom(8).hex(), "access": access}
        )  # fmt: skip
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def test_list_tags_follows_link_pagination(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    tags = [f"t{i}" for i in range(7)]
    with plain(registry) as client:
        data = manifest_for(client, "team/model", blob(100, seed=13))
        for t in tags:
            client.put_manifest("team/model", t, data, OCI_MANIFEST)
        assert sorted(client.list_tags("team/model")) == tags  # 2.8 itself: one page
    proxy = proxy_factory(registry, page_tags=True)
    with RegistryClient(proxy.host, plain_http=True, credentials=None) as client:
        assert client.list_tags("team/model", page_size=2) == tags
        pages = [path for _, path, _ in proxy.requests]
        assert pages == [
            "/v2/team/model/tags/list?n=2",
            "/v2/team/model/tags/list?n=2&last=t1",
            "/v2/team/model/tags/list?n=2&last=t3",
            "/v2/team/model/tags/list?n=2&last=t5",
        ]
        assert client.list_tags("team/model") == tags  # the registry's own page size (3 here)
        with pytest.raises(NotFoundError, match="repository team/ghost not found"):
            client.list_tags("team/ghost")


def test_busy_answers_are_retried_after_retry_after(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    data, digest = blob(1000, seed=25)
    with plain(registry) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
    proxy = proxy_factory(registry, busy=[429, 503])
    with RegistryClient(proxy.host, plain_http=True, credentials=None, backoff=0.01) as client:
        started = time.monotonic()
        assert client.blob_size("team/model", digest) == len(data)
        assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice (not the 0.01 s backoff)
    assert len(proxy.requests) == 3


def test_busy_answers_beyond_the_retry_budget_fail_with_the_status(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(registry, busy=[503, 503])
    client = RegistryClient(proxy.host, plain_http=True, credentials=None, retries=1)
    with client, pytest.raises(RegistryError, match=r"answered HTTP 503 .*TOOMANYREQUESTS") as e:
        client.list_tags("team/model")
    assert "try again later" in (e.value.hint or "")
    assert len(proxy.requests) == 2


def test_client_errors_are_not_retried(registry: Registry, proxy_factory: Callable[..., FaultProxy]) -> None:
    proxy = proxy_factory(registry)
    client = RegistryClient(proxy.host, plain_http=True, credentials=None)
    with client, pytest.raises(NotFoundError):
        client.get_manifest("team/model", "nope")
    assert len(proxy.requests) == 1


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    """docker-registry with ``auth.token`` pointing at a TokenService."""
    require_tool("docker-registry")
    require_tool("openssl")
    tokens = TokenService(tmp_path / "token")
    reg = Registry(tmp_path / "registry-token", "plain")
    reg.root.mkdir(parents=True)
    cfg = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(reg.data_dir)}, "delete": {"enabled": True}},
        "http": {"addr": reg.host, "secret": "kitbridge-tests"},
        "auth": {
            "token": {
                "realm": tokens.realm,
                "service": TokenService.SERVICE,
                "issuer": TokenService.ISSUER,
                "rootcertbundle": str(tokens.cert),
            }
        },
    }
    (reg.root / "config.yml").write_text(yaml.safe_dump(cfg))
    reg.start()
    yield reg, tokens
    reg.close()
    tokens.close()


def test_bearer_token_flow_against_a_token_registry(token_registry: tuple[Registry, TokenService]) -> None:
    reg, tokens = token_registry
    data, digest = blob(MiB, seed=22)
    with plain(reg, credentials=GOOD) as client:
        client.ping()
        client.upload_blob("team/model", digest, len(data), opener(data))
        m = manifest_for(client, "team/model", (data, digest))
        client.put_manifest("team/model", "v1", m, OCI_MANIFEST)
        assert download(client, "team/model", digest)[0] == data
        assert client.list_tags("team/model") == ["v1"]
        # Mounting needs pull on the source repository as well as push on the target, in one token.
        assert client.mount_blob("team/copy", digest, "team/model") is True
    assert all(c["auth"] for c in tokens.calls)
    assert ["repository:team/copy:pull,push", "repository:team/model:pull"] in [
        sorted(c["scopes"]) for c in tokens.calls
    ]
    # Tokens are cached per scope: far fewer token requests than registry requests.
    assert len(tokens.calls) <= 6


def test_bearer_wrong_password_and_anonymous_are_refused(
    token_registry: tuple[Registry, TokenService],
) -> None:
    reg, _ = token_registry
    client = plain(reg, credentials=Credentials(USER, "nope-wrong"))
    with client, pytest.raises(AuthenticationError, match="rejected the credentials") as e:
        client.ping()
    assert "nope-wrong" not in str(e.value)
    with plain(reg) as client, pytest.raises(AuthenticationError, match="requires authentication"):
        client.list_tags("team/model")


def test_bearer_identity_token_uses_the_refresh_grant(token_registry: tuple[Registry, TokenService]) -> None:
    reg, tokens = token_registry
    data, digest = blob(1000, seed=23)
    with plain(reg, credentials=Credentials("<token>", TokenService.REFRESH)) as client:
        client.upload_blob("team/model", digest, len(data), opener(data))
        assert client.blob_size("team/model", digest) == len(data)
    assert tokens.calls and all(c["form"] for c in tokens.calls)
