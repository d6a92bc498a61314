"""convert between two real registries: layers stream from one to the other, never through the store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import CLI, FIXTURES, files_of, require_tool
from registry_server import Registry

from kitbridge.errors import DigestMismatchError
from kitbridge.oci.blobpipe import BlobPipe


def stored_files(home: Path) -> list[Path]:
    return [p for d in ("store", "store.tmp") for p in (home / d).rglob("*") if p.is_file()]


@pytest.fixture
def registry_b(tmp_path: Path) -> Iterator[Registry]:
    require_tool("docker-registry")
    reg = Registry(tmp_path / "registry-b", "plain").start()
    yield reg
    reg.close()


def layer_digests(cli: CLI, ref: str) -> list[str]:
    doc = json.loads(cli.ok("inspect", ref, "--remote", "--plain-http").stdout)
    return [layer["digest"] for layer in doc["manifest"]["layers"]]


def test_convert_across_registries_streams_layers(
    cli: CLI, registry: Registry, registry_b: Registry, tmp_path: Path
) -> None:
    src = f"{registry.host}/team/tiny:kit"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", src, "--push", "--plain-http")
    fresh = CLI(tmp_path / "fresh")  # an empty store: the conversion cannot have used local blobs

    mp = f"{registry_b.host}/other/tiny:mp"
    r = json.loads(fresh.ok("convert", src, mp, "--to", "modelpack", "--plain-http", "--json").stdout)
    layers = layer_digests(fresh, mp)
    assert layers and set(layers) <= registry_b.blob_digests()
    assert set(layers) <= registry.blob_digests()
    blob_dir = registry_b.data_dir / "docker/registry/v2/blobs/sha256"
    layer_bytes = sum((blob_dir / d[7:9] / d[7:] / "data").stat().st_size for d in set(layers))
    assert r["bytesUploaded"] > layer_bytes  # every layer, plus the config and the manifest
    assert stored_files(fresh.home) == []
    doc = json.loads(fresh.ok("inspect", mp, "--remote", "--plain-http").stdout)
    assert doc["manifest"]["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"

    # ... and back to KitOps in registry A (a new repository there: every layer streams again).
    back = f"{registry.host}/back/tiny:kit"
    r2 = json.loads(fresh.ok("convert", mp, back, "--to", "kitops", "--plain-http", "--json").stdout)
    assert r2["bytesUploaded"] > layer_bytes
    assert layer_digests(fresh, back) == layers
    # A second conversion into B finds every layer there and uploads only the small documents.
    again = json.loads(
        fresh.ok(
            "convert",
            back,
            f"{registry_b.host}/other/tiny:mp2",
            "--to",
            "modelpack",
            "--plain-http",
            "--json",
        ).stdout
    )
    assert again["bytesUploaded"] < 64 * 1024
    assert stored_files(fresh.home) == []

    want = {k: v for k, v in files_of(FIXTURES / "tiny-model").items() if k != "Kitfile"}
    for ref, out in ((mp, "out-b"), (back, "out-a")):
        reader = CLI(tmp_path / f"reader-{out}")
        reader.ok("unpack", ref, "-d", str(tmp_path / out), "--plain-http")
        got = files_of(tmp_path / out)
        assert {k: v for k, v in got.items() if k != "Kitfile"} == want


def _source(data: bytes, fail_at: int | None = None) -> tuple[Callable[..., None], list[int]]:
    """A fake download from ``data`` in 3-byte chunks; records each start offset."""
    starts: list[int] = []

    def download(sink: BinaryIO, offset: int, on_bytes: Callable[[int], None]) -> None:
        starts.append(offset)
        for i in range(offset, len(data), 3):
            if fail_at is not None and i >= fail_at:
                raise OSError("connection reset")
            sink.write(data[i : i + 3])
            on_bytes(len(data[i : i + 3]))

    return download, starts


def read_all(f: BinaryIO) -> bytes:
    buf = io.BytesIO()
    while chunk := f.read(100):
        buf.write(chunk)
    return buf.getvalue()


def test_blob_pipe_streams_restarts_and_verifies() -> None:
    data = bytes(range(256)) * 5
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    download, starts = _source(data)
    with BlobPipe(download, digest, len(data), max_buffer=8, chunk=3) as pipe:
        assert pipe.open(0).read(10) == data[:3]  # reads return what one chunk holds
        assert read_all(pipe.open(0)) == data  # a retry from the start: a new download
        assert read_all(pipe.open(700)) == data[700:]  # a resumed upload: a ranged download
    assert starts[-1] == 700 and 0 in starts

    # Consecutive chunks of a chunked upload continue one download.
    download, starts = _source(data)
    with BlobPipe(download, digest, len(data), max_buffer=8, chunk=3) as pipe:
        got = b""
        for off in range(0, len(data), 100):
            f = pipe.open(off)
            part = b""
            while len(part) < min(100, len(data) - off):
                part += f.read(min(100, len(data) - off) - len(part))
            f.close()
            got += part
        assert got == data and starts == [0]

    # Corrupt bytes fail before the last chunk is handed over.
    bad = bytearray(data)
    bad[5] ^= 1
    download, _ = _source(bytes(bad))
    with BlobPipe(download, digest, len(data), max_buffer=8, chunk=3) as pipe:
        f = pipe.open(0)
        got = b""
        with pytest.raises(DigestMismatchError):
            while len(got) < len(data):
                got += f.read(len(data))
        assert len(got) < len(data)

    # A failing download surfaces in the reader; closing mid-stream stops the thread.
    download, _ = _source(data, fail_at=300)
    with BlobPipe(download, digest, len(data), max_buffer=8, chunk=3) as pipe:
        f = pipe.open(0)
        with pytest.raises(Exception, match="connection reset"):
            while f.read(50):
                pass
    before = threading.active_count()
    download, _ = _source(data)
    with BlobPipe(download, digest, len(data), max_buffer=8, chunk=3) as pipe:
        assert pipe.open(0).read(3) == data[:3]
    assert threading.active_count() <= before


def test_chunked_upload_continues_one_download(registry: Registry, registry_b: Registry) -> None:
    """Every PATCH of a chunked upload asks for the next offset: the same download goes on."""
    from kitbridge.oci.registry import RegistryClient

    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with (
        RegistryClient(registry.host, plain_http=True) as a,
        RegistryClient(registry_b.host, plain_http=True) as b,
    ):
        a.upload_blob("src/blob", digest, len(data), lambda off: io.BytesIO(data[off:]))
        starts: list[int] = []

        def download(sink: BinaryIO, offset: int, on_bytes: Callable[[int], None]) -> None:
            starts.append(offset)
            a.download_blob("src/blob", digest, sink, offset=offset, on_bytes=on_bytes)

        with BlobPipe(download, digest, len(data)) as pipe:
            b.upload_blob("dst/blob", digest, len(data), pipe.open, chunk_size=1024 * 1024)
        assert starts == [0]
        out = io.BytesIO()
        b.download_blob("dst/blob", digest, out)
        assert out.getvalue() == data


@pytest.mark.slow
def test_cross_registry_convert_survives_a_cut_download_and_refuses_corrupt_bytes(
    registry: Registry, registry_b: Registry, tmp_path: Path
) -> None:
    from faultproxy import FaultProxy

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    (model / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  name: w\n  path: weights.bin\n")
    with FaultProxy(registry.host, max_seconds=300) as proxy:
        cli = CLI(tmp_path / "packer")
        src = f"{proxy.host}/faults/w:kit"
        cli.ok("pack", str(model), "-t", src, "--push", "--plain-http")
        layers = layer_digests(cli, src)
        big = layers[0]
        fresh = CLI(tmp_path / "fresh")

        proxy.flip(f"/blobs/{big}", at=6 * 1024 * 1024)
        r = fresh("convert", src, f"{registry_b.host}/w/w:bad", "--to", "modelpack", "--plain-http")
        assert r.returncode != 0 and big in r.stderr, r.stderr
        assert big not in registry_b.blob_digests()

        proxy.disarm()
        proxy.cut(f"/blobs/{big}", after=5 * 1024 * 1024)
        dst = f"{registry_b.host}/w/w:mp"
        fresh.ok("convert", src, dst, "--to", "modelpack", "--plain-http")
        resumed = proxy.matching(f"/blobs/{big}")[-1]
        assert resumed.headers.get("range", "").startswith("bytes=")
        assert big in registry_b.blob_digests()
        assert stored_files(fresh.home) == []
        fresh.ok("unpack", dst, "-d", str(tmp_path / "out"), "--plain-http")
        assert (tmp_path / "out/weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
