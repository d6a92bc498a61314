"""convert against a real registry: same-registry conversion uploads only the config and the manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import CLI, FIXTURES, files_of
from registry_server import Registry


def test_convert_in_a_registry_moves_no_layer_bytes(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    src = f"{registry.host}/team/tiny:kit"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", src, "--push", "--plain-http")
    fresh = CLI(tmp_path / "fresh")  # an empty store: the conversion cannot have used local blobs
    blobs_before = registry.blob_digests()
    digests: set[str] = set()
    for dst, to in (
        (f"{registry.host}/team/tiny:mp", "modelpack"),
        (f"{registry.host}/other/tiny:mp", "modelpack"),
    ):
        r = json.loads(fresh.ok("convert", src, dst, "--to", to, "--plain-http", "--json").stdout)
        assert r["bytesUploaded"] < 64 * 1024
        digests.add(r["digest"])
        time.sleep(1.1)  # a second apart: a conversion stamped with "now" would differ
    new = registry.blob_digests() - blobs_before
    blob_dir = registry.data_dir / "docker/registry/v2/blobs/sha256"
    sizes = [(blob_dir / d[7:9] / d[7:] / "data").stat().st_size for d in new]
    # Both conversions keep the source's creation time, so they write the same config and manifest
    # (however many seconds apart they run): no layer, and nothing twice.
    assert len(digests) == 1 and len(new) == 2 and all(n < 64 * 1024 for n in sizes)
    assert not (fresh.store / "index.json").exists()
    back = f"{registry.host}/team/tiny:kit2"
    fresh.ok("convert", f"{registry.host}/other/tiny:mp", back, "--to", "kitops", "--plain-http")
    doc = json.loads(fresh.ok("inspect", f"{registry.host}/other/tiny:mp", "--remote", "--plain-http").stdout)
    assert doc["manifest"]["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    fresh.ok("unpack", back, "-d", str(tmp_path / "out"), "--plain-http")
    got, want = files_of(tmp_path / "out"), files_of(FIXTURES / "tiny-model")
    assert {k: v for k, v in got.items() if k != "Kitfile"} == {
        k: v for k, v in want.items() if k != "Kitfile"
    }


def test_local_to_remote_and_remote_to_local(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    remote = f"{registry.host}/team/tiny:mp"
    cli.ok("convert", "tiny:1", remote, "--to", "modelpack", "--plain-http")
    other = CLI(tmp_path / "other")
    other.ok("pull", remote, "--plain-http")
    other.ok("convert", remote, "local/tiny:kit", "--to", "kitops")
    assert other.ok("info", "local/tiny:kit").stdout == cli.ok("info", "tiny:1").stdout
