"""push / pull / remote unpack / login through the real CLI against real docker-registry processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import CLI, FIXTURES, files_of, require_tool
from registry_server import PASSWORD, USER, Registry


def stored_manifest(cli: CLI, ref: str) -> tuple[bytes, str]:
    index = json.loads((cli.store / "index.json").read_text())
    for m in index["manifests"]:
        if m["annotations"]["org.opencontainers.image.ref.name"] == ref:
            return (cli.store / "blobs/sha256" / m["digest"].split(":")[1]).read_bytes(), m["digest"]
    raise AssertionError(f"{ref} not in the store")


def test_pack_push_pull_unpack_round_trip(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/team/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    pushed = json.loads(cli.ok("push", ref, "--plain-http", "--json").stdout)
    assert pushed["blobsTransferred"] == 7  # config + 6 layers
    other = CLI(tmp_path / "other-home")
    pulled = json.loads(other.ok("pull", ref, "--plain-http", "--json").stdout)
    assert pulled["digest"] == pushed["digest"]
    assert stored_manifest(other, ref) == stored_manifest(cli, ref)
    other.ok("unpack", ref, "-d", str(tmp_path / "out"))
    want = files_of(FIXTURES / "tiny-model")
    got = files_of(tmp_path / "out")
    assert {k: v for k, v in got.items() if k != "Kitfile"} == {
        k: v for k, v in want.items() if k != "Kitfile"
    }


def test_second_push_sends_no_blob_bytes(cli: CLI, registry: Registry) -> None:
    ref = f"{registry.host}/team/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    cli.ok("push", ref, "--plain-http")
    again = json.loads(cli.ok("push", ref, "--plain-http", "--json").stdout)
    assert again["bytesTransferred"] == 0 and again["blobsTransferred"] == 0
    assert again["blobsSkipped"] == 7


def test_push_to_another_repository_mounts_blobs(cli: CLI, registry: Registry) -> None:
    a, b = f"{registry.host}/team/a:1", f"{registry.host}/team/b:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", a)
    cli.ok("push", a, "--plain-http")
    result = json.loads(cli.ok("push", a, b, "--plain-http", "--json").stdout)
    assert result["bytesTransferred"] == 0
    assert result["blobsMounted"] == 7


def test_skopeo_reads_what_we_push_and_we_pull_what_skopeo_pushes(
    cli: CLI, registry: Registry, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    ref = f"{registry.host}/interop/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    cli.ok("push", ref, "--plain-http")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], capture_output=True, check=True
    ).stdout
    assert raw == stored_manifest(cli, ref)[0]
    ref2 = f"{registry.host}/interop/by-skopeo:2"
    subprocess.run(
        [skopeo, "copy", "--dest-tls-verify=false", f"oci:{cli.store}:{ref}", f"docker://{ref2}"],
        capture_output=True,
        check=True,
    )
    other = CLI(tmp_path / "h2")
    other.ok("pull", ref2, "--plain-http")
    assert stored_manifest(other, ref2)[1] == stored_manifest(cli, ref)[1]


def test_remote_unpack_fetches_only_selected_layers(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/team/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    cli.ok("push", ref, "--plain-http")
    fresh = CLI(tmp_path / "fresh")
    fresh.ok("unpack", ref, "-d", str(tmp_path / "docs"), "--filter", "docs", "--plain-http")
    assert sorted(files_of(tmp_path / "docs")) == ["LICENSE", "README.md"]
    blobs = {p.name for p in (fresh.store / "blobs/sha256").iterdir()}
    manifest = json.loads(stored_manifest(cli, ref)[0])
    model_layer = manifest["layers"][0]["digest"].split(":")[1]
    assert model_layer not in blobs  # the model layer never crossed the wire
    assert len(blobs) == 3  # config + the two docs layers


def test_inspect_remote_and_list_tags(cli: CLI, registry: Registry) -> None:
    for tag in ("1", "2"):
        ref = f"{registry.host}/team/tiny:{tag}"
        cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref, "--push", "--plain-http")
    doc = json.loads(cli.ok("inspect", f"{registry.host}/team/tiny:2", "--remote", "--plain-http").stdout)
    assert doc["manifest"]["artifactType"] == "application/vnd.kitops.modelkit.manifest.v1+json"
    tags = json.loads(cli.ok("list", f"{registry.host}/team/tiny", "--plain-http", "--json").stdout)["tags"]
    assert sorted(tags) == ["1", "2"]


def test_login_checks_credentials_then_push_uses_them(
    cli: CLI, auth_registry: Registry, tmp_path: Path
) -> None:
    host = auth_registry.host
    r = cli("login", host, "-u", USER, "--password-stdin", "--plain-http", stdin="wrong\n")
    assert r.returncode == 1 and "credentials" in r.stderr.lower()
    assert PASSWORD not in r.stderr and "wrong" not in r.stderr
    assert not (cli.home / "docker-config" / "config.json").exists()
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
    r = cli("login", host, "-u", USER, "--password-stdin", "--plain-http", stdin=PASSWORD + "\n", env=env)
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    ref = f"{host}/secure/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    cli.ok("push", ref, "--plain-http", env=env)
    r = cli("push", ref, "--plain-http", env={"DOCKER_CONFIG": str(tmp_path / "nobody")})
    assert r.returncode == 1 and "login" in r.stderr
    cli.ok("logout", host, env=env)
    r = cli("push", ref, "--plain-http", env=env)
    assert r.returncode == 1


def test_tls_registry_needs_its_ca(cli: CLI, tls_registry: Registry) -> None:
    ref = f"{tls_registry.host}/team/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref)
    r = cli("push", ref)
    assert r.returncode == 1 and "--ca-file" in r.stderr
    cli.ok("push", ref, "--ca-file", str(tls_registry.ca_file))


def test_missing_repository_and_tag_are_clear_errors(cli: CLI, registry: Registry) -> None:
    r = cli("pull", f"{registry.host}/nobody/here:1", "--plain-http")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "nobody/here" in r.stderr
    cli.ok(
        "pack", str(FIXTURES / "tiny-model"), "-t", f"{registry.host}/team/tiny:1", "--push", "--plain-http"
    )
    r = cli("pull", f"{registry.host}/team/tiny:nope", "--plain-http")
    assert r.returncode == 1 and "nope" in r.stderr


def test_push_without_a_registry_is_a_usage_error(cli: CLI) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    r = cli("push", "tiny:1")
    assert r.returncode == 2 and "names no registry" in r.stderr


def test_a_bad_partial_download_is_refetched_whole(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/team/tiny:1"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", ref, "--push", "--plain-http")
    manifest = json.loads(stored_manifest(cli, ref)[0])
    model = manifest["layers"][0]["digest"]
    other = CLI(tmp_path / "other")
    staging = other.home / "store.tmp"
    staging.mkdir(parents=True)
    # What an earlier, interrupted pull might have left: the right length so far, the wrong bytes.
    (staging / f"partial-{model.split(':')[1]}").write_bytes(b"\xff" * 1000)
    other.ok("pull", ref, "--plain-http")
    other.ok("unpack", ref, "-d", str(tmp_path / "out"), "--filter", "model")
    assert (tmp_path / "out/model.safetensors").read_bytes() == (
        FIXTURES / "tiny-model/model.safetensors"
    ).read_bytes()
    assert not list(staging.glob("partial-*"))


def test_a_pull_by_digest_does_not_move_latest(cli: CLI, registry: Registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/team/pinned"
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", f"{repo}:1", "--push", "--plain-http")
    digest = json.loads(cli.ok("inspect", f"{repo}:1", "--json").stdout)["digest"]
    other = CLI(tmp_path / "other")
    other.ok(
        "pack", str(FIXTURES / "tiny-model"), "-t", f"{repo}:latest", "-f", str(_kitfile_named(tmp_path))
    )
    mine = json.loads(other.ok("inspect", f"{repo}:latest", "--json").stdout)["digest"]
    assert mine != digest
    other.ok("pull", f"{repo}@{digest}", "--plain-http")
    assert json.loads(other.ok("inspect", f"{repo}:latest", "--json").stdout)["digest"] == mine
    pinned = f"{repo}:{digest.replace(':', '-')}"
    assert json.loads(other.ok("inspect", pinned, "--json").stdout)["digest"] == digest
    assert json.loads(other.ok("inspect", f"{repo}@{digest}", "--json").stdout)["digest"] == digest


def _kitfile_named(tmp_path: Path) -> Path:
    """The fixture's Kitfile under another package name: another ModelKit over the same files."""
    text = (FIXTURES / "tiny-model" / "Kitfile").read_text()
    path = tmp_path / "Kitfile.other"
    path.write_text(text.replace("name: tiny-model", "name: tiny-model-other", 1))
    return path
