"""``kitbridge import hf://…`` end to end: the real CLI against the Hub test server and a real registry.

The Hub is tests/hub_server.py (its request log says what the importer fetched); the registry is a
real docker-registry. Weight files are small synthetic safetensors/GGUF files, except the real
all-MiniLM-L6-v2 of the headline test and the 8 MiB file of the resume test.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct
import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conftest import (
    CLI,
    HF_ENV_VARS,
    MINILM_REPO,
    CLIResult,
    files_of,
    minilm_dir,
    require_tool,
    run_json,
    stored_refs,
    tree_files,
)
from hub_server import HubServer
from registry_server import Registry

from kitbridge.formats.modelpack_schema import validate_config

MIB = 1 << 20
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
FILEPATH = "org.cncf.model.filepath"
README = b"---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# A test model\n"


# --- synthetic model files ------------------------------------------------------------------------------


def safetensors_bytes(n_floats: int, seed: int = 0) -> bytes:
    """A valid safetensors file: one F32 tensor ``w`` of n_floats values (deterministic noise)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(raw)) + raw + random.Random(seed).randbytes(4 * n_floats)


def gguf_bytes(name: str, file_type: int, n_floats: int = 512) -> bytes:
    """A minimal GGUF v3 file: a few metadata keys and one F32 tensor of n_floats values."""

    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text.encode())) + text.encode()

    kvs = [
        s("general.architecture") + struct.pack("<I", 8) + s("llama"),
        s("general.name") + struct.pack("<I", 8) + s(name),
        s("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", file_type),
        s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", 32),
    ]
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs)) + b"".join(kvs)
    out += s("output.weight") + struct.pack("<I", 1) + struct.pack("<Q", n_floats) + struct.pack("<IQ", 0, 0)
    out += b"\0" * (-len(out) % 32)
    return out + random.Random(name).randbytes(4 * n_floats)


def sha256(data: bytes | Path) -> str:
    if isinstance(data, Path):
        h = hashlib.sha256()
        with open(data, "rb") as f:
            while piece := f.read(MIB):
                h.update(piece)
        return h.hexdigest()
    return hashlib.sha256(data).hexdigest()


# --- helpers --------------------------------------------------------------------------------------------


def one_line_error(r: CLIResult, code: int = 1) -> str:
    """The error of a failed command: the exit code and ``error: …`` on stderr, no traceback."""
    assert r.returncode == code, f"exited {r.returncode}, wanted {code}: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert "error:" in r.stderr, r.stderr
    return r.stderr


def resolve_gets(hub: HubServer, repo: str, filename: str | None = None, **kw: Any) -> list[Any]:
    return [r for r in hub.file_requests(repo, filename, **kw) if r.method == "GET"]


def remote_manifest_bytes(registry: Registry, repository: str, tag: str) -> bytes:
    """The manifest as the registry serves it, read by skopeo (an independent client)."""
    skopeo = require_tool("skopeo")
    return subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repository}:{tag}"],
        capture_output=True,
        check=True,
    ).stdout


def remote_manifest(registry: Registry, repository: str, tag: str) -> dict[str, Any]:
    doc = json.loads(remote_manifest_bytes(registry, repository, tag))
    assert isinstance(doc, dict)
    return doc


def remote_blob(registry: Registry, repository: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"{registry.url}/v2/{repository}/blobs/{digest}", timeout=30) as r:
        data = r.read()
    assert isinstance(data, bytes)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def weight_layers(manifest: Mapping[str, Any]) -> dict[str, str]:
    """filepath -> digest of the raw weight layers of a ModelPack manifest."""
    return {
        layer["annotations"][FILEPATH]: layer["digest"]
        for layer in manifest["layers"]
        if layer["mediaType"] == WEIGHT_RAW
    }


def weight_layers_of(doc: Mapping[str, Any]) -> set[str]:
    """Digests of the raw weight layers in an import's --json document."""
    return {layer["digest"] for layer in doc["layers"] if layer["mediaType"] == WEIGHT_RAW}


def cache_repo(hf_home: Path, repo: str, repo_type: str = "model") -> Path:
    return hf_home / "hub" / (f"{repo_type}s--" + repo.replace("/", "--"))


# --- 1. the headline: the real MiniLM as a ModelPack, pushed ---------------------------------------------


def test_minilm_as_modelpack_pushed_pulled_and_unpacked(
    hf_cli: CLI, hub: HubServer, registry: Registry, tmp_path: Path
) -> None:
    src = minilm_dir()
    files = tree_files(src)
    commit = hub.add_commit(MINILM_REPO, files)
    ref = f"{registry.host}/minilm:1"
    doc = run_json(
        hf_cli, "import", f"hf://{MINILM_REPO}", "--format", "modelpack", "-t", ref, "--push", "--plain-http"
    )
    assert doc["revision"] == commit
    assert doc["pushed"] == ref and doc["stored"] is True
    assert ".gitattributes" in doc["skipped"]
    assert {f["path"] for f in doc["files"]} == set(files) - {".gitattributes"}
    weight_sha = sha256(src / "model.safetensors")
    # One GET for the weights, every byte of them sent once.
    assert hub.downloads(MINILM_REPO, "model.safetensors") == 1
    assert hub.bytes_served(MINILM_REPO, "model.safetensors") == (src / "model.safetensors").stat().st_size

    manifest = remote_manifest(registry, "minilm", "1")
    assert weight_layers(manifest) == {"model.safetensors": f"sha256:{weight_sha}"}
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    config_bytes = remote_blob(registry, "minilm", manifest["config"]["digest"])
    assert validate_config(config_bytes) == []
    config = json.loads(config_bytes)
    assert config["descriptor"]["revision"] == commit
    assert config["descriptor"]["sourceURL"]
    assert MINILM_REPO in config["descriptor"]["sourceURL"]
    assert config["config"]["capabilities"]["inputTypes"] == ["text"]
    assert doc["digest"] == "sha256:" + sha256(remote_manifest_bytes(registry, "minilm", "1"))

    fresh = CLI(tmp_path / "fresh-home")
    fresh.ok("pull", ref, "--plain-http")
    fresh.ok("unpack", ref, "-d", str(tmp_path / "out"))
    got = files_of(tmp_path / "out")
    got.pop("Kitfile", None)
    want = {k: v for k, v in files_of(src).items() if k != ".gitattributes"}
    assert sorted(got) == sorted(want)
    assert got == want


# --- 2. revisions ---------------------------------------------------------------------------------------


def test_revision_pinning_tags_branches_shas_and_the_default(hf_cli: CLI, hub: HubServer) -> None:
    repo = "acme/Revs"
    v1 = {"model.safetensors": safetensors_bytes(64, 1), "config.json": b'{"v": 1}\n'}
    first = hub.add_commit(repo, v1, tags=["v1"])
    dev = {"config.json": b'{"v": "dev"}\n', "notes.txt": b"dev only\n"}
    dev_sha = hub.add_commit(repo, dev, branch="dev", base=first)
    v2 = {"model.safetensors": safetensors_bytes(64, 2), "config.json": b'{"v": 2}\n'}
    second = hub.add_commit(repo, v2)
    assert len({first, dev_sha, second}) == 3

    cases = [
        (f"hf://{repo}@v1", (), first, v1),
        (f"hf://{repo}@{first}", (), first, v1),
        (f"hf://{repo}", ("--revision", "v1"), first, v1),
        (f"hf://{repo}@dev", (), dev_sha, {**v1, **dev}),
        (f"hf://{repo}@main", (), second, v2),
    ]
    for i, (source, extra, sha, want) in enumerate(cases):
        doc = run_json(hf_cli, "import", source, *extra, "-t", f"revs:{i}")
        assert doc["revision"] == sha, source
        assert {f["path"] for f in doc["files"]} == set(want), source
        root = Path(doc["root"])
        assert root.name == sha
        assert {p: (root / p).read_bytes() for p in want} == want, source
        lfs = {f["path"]: f["sha256"] for f in doc["files"] if f["sha256"]}
        assert lfs == {"model.safetensors": sha256(want["model.safetensors"])}, source

    doc = run_json(hf_cli, "import", f"hf://{repo}")
    assert doc["revision"] == second
    assert doc["reference"].endswith(f"revs:{second[:7]}")
    assert f"revs:{second[:7]}" in " ".join(stored_refs(hf_cli))

    hub.clear_log()
    r = hf_cli("import", f"hf://{repo}@no-such-rev", "-t", "revs:bad")
    err = one_line_error(r, 1)
    assert "no-such-rev" in err
    assert hub.downloads(repo) == 0
    assert resolve_gets(hub, repo) == []
    assert not any(ref.endswith("revs:bad") for ref in stored_refs(hf_cli))


# --- 3. selection: duplicates, globs, GGUF quantizations -------------------------------------------------


def test_safetensors_preferred_and_include_exclude(hf_cli: CLI, hub: HubServer) -> None:
    repo = "acme/dup"
    st = safetensors_bytes(32, 3)
    pt = pickle.dumps({"w": [0.5] * 8}, protocol=2)
    hub.add_commit(
        repo,
        {"model.safetensors": st, "pytorch_model.bin": pt, "config.json": b"{}\n", ".gitattributes": b"x\n"},
    )
    doc = run_json(hf_cli, "import", f"hf://{repo}", "-t", "dup:1")
    assert sorted(f["path"] for f in doc["files"]) == ["config.json", "model.safetensors"]
    assert "pytorch_model.bin" in doc["skipped"]
    assert ".gitattributes" in doc["skipped"]
    assert hub.downloads(repo, "pytorch_model.bin") == 0
    assert doc["kitfile"]["model"]["path"] == "model.safetensors"

    doc = run_json(hf_cli, "import", f"hf://{repo}", "--include", "*.bin", "-t", "dup:2")
    assert [f["path"] for f in doc["files"]] == ["pytorch_model.bin"]
    assert hub.downloads(repo, "pytorch_model.bin") == 1
    assert "model.safetensors" in doc["skipped"]

    doc = run_json(hf_cli, "import", f"hf://{repo}", "--exclude", "config.json", "-t", "dup:3")
    assert [f["path"] for f in doc["files"]] == ["model.safetensors"]
    assert "config.json" in doc["skipped"]


def test_gguf_quant_selection(hf_cli: CLI, hub: HubServer) -> None:
    repo = "acme/tiny-GGUF"
    files = {
        "tiny.Q4_K_M.gguf": gguf_bytes("tiny q4", 15),
        "tiny.Q8_0.gguf": gguf_bytes("tiny q8", 7),
        "tiny.F16.gguf": gguf_bytes("tiny f16", 1),
        # A projector a bit smaller than the model, as in real vision GGUF repos (say 1.3 GB vs 1.9 GB).
        "mmproj-tiny-f16.gguf": gguf_bytes("tiny mmproj", 1, 384),
        "README.md": README,
    }
    hub.add_commit(repo, files)

    err = one_line_error(hf_cli("import", f"hf://{repo}", "-t", "g:0"), 2)
    for q in ("Q4_K_M", "Q8_0", "F16"):
        assert q in err
    assert "--quant" in err
    assert hub.downloads(repo) == 0

    doc = run_json(hf_cli, "import", f"hf://{repo}", "--quant", "q8_0", "-t", "g:1")
    assert sorted(f["path"] for f in doc["files"]) == ["README.md", "mmproj-tiny-f16.gguf", "tiny.Q8_0.gguf"]
    assert {"tiny.Q4_K_M.gguf", "tiny.F16.gguf"} <= set(doc["skipped"])
    assert hub.downloads(repo, "tiny.Q4_K_M.gguf") == 0
    assert hub.downloads(repo, "tiny.F16.gguf") == 0
    # The projector goes with the model; it is not the model itself.
    model = doc["kitfile"]["model"]
    assert model["path"] == "tiny.Q8_0.gguf", model
    assert [p["path"] for p in model.get("parts", [])] == ["mmproj-tiny-f16.gguf"]

    hub.clear_log()
    err = one_line_error(hf_cli("import", f"hf://{repo}", "--quant", "Q2_K", "-t", "g:2"), 2)
    assert "Q2_K" in err
    for q in ("Q4_K_M", "Q8_0", "F16"):
        assert q in err
    assert hub.downloads(repo) == 0


# --- 4. gated and private repos --------------------------------------------------------------------------


def test_gated_repo_tokens_from_env_and_token_file(hf_cli: CLI, hub: HubServer, hf_home: Path) -> None:
    repo = "acme/gated"
    hub.add_commit(
        repo,
        {"model.safetensors": safetensors_bytes(32, 4), "config.json": b"{}\n", "README.md": README},
        gated=True,
    )
    hub.add_token("tok-nobody")
    hub.grant("tok-member", repo)

    err = one_line_error(hf_cli("import", f"hf://{repo}", "-t", "gated:0"))
    assert "gated" in err and "no token" in err
    assert len(err.strip().splitlines()) == 1
    assert hub.downloads(repo) == 0

    err = one_line_error(hf_cli("import", f"hf://{repo}", "-t", "gated:0", env={"HF_TOKEN": "tok-nobody"}))
    assert "gated" in err and "$HF_TOKEN" in err and "no token" not in err
    assert "tok-nobody" not in err  # never the secret itself
    assert hub.downloads(repo) == 0

    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text("tok-nobody\n")
    err = one_line_error(hf_cli("import", f"hf://{repo}", "-t", "gated:0"))
    assert "gated" in err and "the token file" in err and str(hf_home / "token") in err
    assert "no token" not in err and "$HF_TOKEN" not in err
    assert hub.downloads(repo) == 0
    assert stored_refs(hf_cli) == []

    (hf_home / "token").write_text("tok-member\n")
    doc = run_json(hf_cli, "import", f"hf://{repo}", "-t", "gated:1")
    assert sorted(f["path"] for f in doc["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert {r.token for r in resolve_gets(hub, repo)} == {"tok-member"}

    # $HF_TOKEN wins over the token file, as in huggingface_hub.
    (hf_home / "token").write_text("tok-nobody\n")
    hub.clear_log()
    run_json(hf_cli, "import", f"hf://{repo}", "-t", "gated:2", env={"HF_TOKEN": "tok-member"})
    assert {r.token for r in hub.requests if r.repo_id == repo} == {"tok-member"}


def test_private_repo_needs_a_granted_token(hf_cli: CLI, hub: HubServer) -> None:
    repo = "acme/secret"
    hub.add_commit(
        repo, {"model.safetensors": safetensors_bytes(16, 5), "config.json": b"{}\n"}, private=True
    )
    hub.grant("tok-private", repo)

    err = one_line_error(hf_cli("import", f"hf://{repo}", "-t", "secret:0"))
    assert "not found" in err and "private" in err
    assert hub.downloads(repo) == 0

    doc = run_json(hf_cli, "import", f"hf://{repo}", "-t", "secret:1", env={"HF_TOKEN": "tok-private"})
    assert sorted(f["path"] for f in doc["files"]) == ["config.json", "model.safetensors"]


# --- 5. the Hugging Face cache ----------------------------------------------------------------------------


def test_cache_reuse_hardlinks_and_offline(
    hf_cli: CLI, hub: HubServer, hf_home: Path, tmp_path: Path
) -> None:
    repo = "acme/cached"
    weights = safetensors_bytes(4096, 6)
    commit = hub.add_commit(repo, {"model.safetensors": weights, "config.json": b"{}\n", "README.md": README})
    hf_cli.env["SOURCE_DATE_EPOCH"] = "1700000000"  # same inputs, same time: the same manifest digest
    doc = run_json(hf_cli, "import", f"hf://{repo}", "--format", "modelpack", "-t", "cached:1")
    assert hub.downloads(repo) == 3
    digest = sha256(weights)
    weight = {"digest": f"sha256:{digest}", "size": len(weights), "mediaType": WEIGHT_RAW}
    assert weight in doc["layers"]

    # The store's raw weight blob is the cache blob itself (a hard link), not a copy.
    cache_blob = cache_repo(hf_home, repo) / "blobs" / digest
    store_blob = hf_cli.store / "blobs" / "sha256" / digest
    assert cache_blob.is_file() and store_blob.is_file()
    assert cache_blob.stat().st_ino == store_blob.stat().st_ino
    assert (cache_repo(hf_home, repo) / "refs" / "main").read_text().strip() == commit

    hub.clear_log()
    again = run_json(hf_cli, "import", f"hf://{repo}", "--format", "modelpack", "-t", "cached:2")
    assert hub.downloads(repo) == 0
    assert resolve_gets(hub, repo) == []
    assert all(f["cached"] for f in again["files"]) and again["downloadBytes"] == 0
    assert again["digest"] == doc["digest"]

    hub.clear_log()
    offline = run_json(
        hf_cli,
        "import",
        f"hf://{repo}",
        "--format",
        "modelpack",
        "-t",
        "cached:3",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert hub.requests == []
    assert offline["revision"] == commit
    assert sorted(f["path"] for f in offline["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert weight in offline["layers"]
    assert offline["digest"] == doc["digest"]

    cold = tmp_path / "cold-hf-home"
    r = hf_cli("import", f"hf://{repo}", "-t", "cached:4", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(cold)})
    err = one_line_error(r)
    assert "HF_HUB_OFFLINE" in err and "cache" in err
    assert hub.requests == []


# --- 6. resuming an interrupted download ----------------------------------------------------------------


def test_interrupted_download_resumes_in_a_later_run(hf_cli: CLI, hub: HubServer, tmp_path: Path) -> None:
    repo = "acme/big"
    big = tmp_path / "big.safetensors"
    big.write_bytes(safetensors_bytes(2 * MIB, 7))  # 8 MiB and a bit
    size, digest = big.stat().st_size, sha256(big)
    hub.add_commit(repo, {"model.safetensors": big, "config.json": b"{}\n"})

    # First hub.cut, which counts bytes per response: every GET stops after 3 MiB. The fetcher
    # resumes within the run with Range requests, so the import succeeds, each byte sent once.
    hub.cut(repo, "model.safetensors", after_bytes=3 * MIB, times=-1)
    doc = run_json(hf_cli, "import", f"hf://{repo}", "--format", "modelpack", "-t", "big:0")
    hub.uncut()
    assert weight_layers_of(doc) == {f"sha256:{digest}"}
    gets = resolve_gets(hub, repo, "model.safetensors")
    assert len(gets) == 3
    assert [g.range for g in gets] == [None, f"bytes={3 * MIB}-", f"bytes={6 * MIB}-"]
    assert hub.bytes_served(repo, "model.safetensors") == size

    # Now a cut no retry gets past: the run fails and leaves the partial blob for the next one.
    hf_cli.env["HF_HOME"] = str(tmp_path / "hf-home-2")
    cache = tmp_path / "hf-home-2" / "hub" / "models--acme--big"
    hub.clear_log()
    hub.cap(repo, "model.safetensors", 3 * MIB)
    r = hf_cli("import", f"hf://{repo}", "--format", "modelpack", "-t", "big:1")
    err = one_line_error(r)
    assert "model.safetensors" in err and "again" in err and "resume" in err
    partial = cache / "blobs" / f"{digest}.incomplete"
    assert partial.is_file(), sorted(p.name for p in (cache / "blobs").iterdir())
    have = partial.stat().st_size
    assert have >= 3 * MIB
    assert not (cache / "blobs" / digest).exists()
    assert not any(ref.endswith("big:1") for ref in stored_refs(hf_cli))

    hub.uncut()
    hub.clear_log()
    doc = run_json(hf_cli, "import", f"hf://{repo}", "--format", "modelpack", "-t", "big:1")
    gets = resolve_gets(hub, repo, "model.safetensors")
    assert gets, "the rerun did not fetch the rest of the file"
    assert [g.range for g in gets] == [f"bytes={have}-"]
    assert hub.bytes_served(repo, "model.safetensors") == size - have < size
    assert weight_layers_of(doc) == {f"sha256:{digest}"}
    assert not partial.exists() and (cache / "blobs" / digest).stat().st_size == size
    assert any(ref.endswith("big:1") for ref in stored_refs(hf_cli))


# --- 7. --push over blobs the registry already has -------------------------------------------------------


def test_push_skips_downloading_weights_the_registry_has(
    hf_cli: CLI, hub: HubServer, registry: Registry, tmp_path: Path
) -> None:
    repo = "acme/pushme"
    weights = safetensors_bytes(256 * 1024, 8)  # 1 MiB
    files = {"model.safetensors": weights, "config.json": b'{"model_type": "bert"}\n', "README.md": README}
    hub.add_commit(repo, files)
    digest = f"sha256:{sha256(weights)}"
    host = registry.host

    first = run_json(
        hf_cli,
        "import",
        f"hf://{repo}",
        "--format",
        "modelpack",
        "-t",
        f"{host}/a:1",
        "--push",
        "--plain-http",
    )
    assert first["stored"] is True and first["pushed"] == f"{host}/a:1"
    assert hub.bytes_served(repo, "model.safetensors") == len(weights)

    hub.clear_log()
    cold: dict[str, str] = {"HF_HOME": str(tmp_path / "hf-cold")}
    second = run_json(
        hf_cli,
        "import",
        f"hf://{repo}",
        "--format",
        "modelpack",
        "-t",
        f"{host}/a:2",
        "--push",
        "--plain-http",
        env=cold,
    )
    assert second["stored"] is False
    assert second["pushed"] == f"{host}/a:2"
    assert weight_layers_of(second) == {digest}
    assert second["uploadedBytes"] < 64 * 1024
    gets = resolve_gets(hub, repo, "model.safetensors")
    assert all(g.range is not None for g in gets), [g.range for g in gets]
    assert hub.bytes_served(repo, "model.safetensors") < 64 * 1024
    assert not (tmp_path / "hf-cold" / "hub" / "models--acme--pushme" / "blobs" / digest[7:]).exists()
    assert not any(ref.endswith("a:2") for ref in stored_refs(hf_cli))

    manifest = remote_manifest(registry, "a", "2")
    assert weight_layers(manifest) == {"model.safetensors": digest}
    assert weight_layers(remote_manifest(registry, "a", "1")) == {"model.safetensors": digest}

    other = CLI(tmp_path / "other-home")
    other.ok("pull", f"{host}/a:2", "--plain-http")
    other.ok("unpack", f"{host}/a:2", "-d", str(tmp_path / "out"))
    got = files_of(tmp_path / "out")
    got.pop("Kitfile", None)
    assert got == files

    # The same from another machine (empty store, no HF cache): only the registry knows the blob.
    elsewhere = CLI(tmp_path / "elsewhere")
    for var in HF_ENV_VARS:
        elsewhere.env.pop(var, None)
    elsewhere.env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-elsewhere"))
    hub.clear_log()
    far = run_json(
        elsewhere,
        "import",
        f"hf://{repo}",
        "--format",
        "modelpack",
        "-t",
        f"{host}/a:4",
        "--push",
        "--plain-http",
    )
    assert far["stored"] is False and weight_layers_of(far) == {digest}
    assert hub.bytes_served(repo, "model.safetensors") < 64 * 1024
    assert weight_layers(remote_manifest(registry, "a", "4")) == {"model.safetensors": digest}

    # KitOps tar layers carry the file inside a tar: nothing to reuse, the weights are downloaded.
    hub.clear_log()
    kit = run_json(
        hf_cli,
        "import",
        f"hf://{repo}",
        "--format",
        "kitops",
        "-t",
        f"{host}/a:3",
        "--push",
        "--plain-http",
        env={"HF_HOME": str(tmp_path / "hf-cold-2")},
    )
    assert kit["stored"] is True and kit["pushed"] == f"{host}/a:3"
    assert hub.downloads(repo, "model.safetensors") >= 1
    assert hub.bytes_served(repo, "model.safetensors") >= len(weights)


# --- 8. dataset repos --------------------------------------------------------------------------------------


def test_dataset_repo(hf_cli: CLI, hub: HubServer) -> None:
    repo = "org/data"
    card = b"---\nlicense: cc-by-4.0\ntask_categories:\n- text-classification\n---\n# Data\n"
    files = {
        "README.md": card,
        "data/train.csv": b"text,label\nhello,1\nbye,0\n",
        "data/test.parquet": b"PAR1" + random.Random(9).randbytes(2000) + b"PAR1",
    }
    hub.add_commit(repo, files, repo_type="dataset")

    dry = run_json(hf_cli, "import", f"hf://datasets/{repo}", "--dry-run")
    assert dry["dryRun"] is True
    assert {f["path"]: f["size"] for f in dry["files"]} == {k: len(v) for k, v in files.items()}
    assert dry["downloadBytes"] == sum(len(v) for v in files.values())
    assert not any(f["cached"] for f in dry["files"])
    assert hub.downloads(repo, repo_type="dataset") == 0
    assert resolve_gets(hub, repo, repo_type="dataset") == []

    doc = run_json(hf_cli, "import", f"hf://datasets/{repo}", "-t", "data:1")
    kitfile = doc["kitfile"]
    assert "model" not in kitfile or not kitfile["model"]
    paths = [d["path"] for d in kitfile["datasets"]]
    assert paths and all(p.startswith("data") for p in paths)
    assert hub.downloads(repo, repo_type="dataset") == 3
    assert doc["source"] == f"hf://datasets/{repo}"


# --- 9. dry runs --------------------------------------------------------------------------------------------


def test_dry_run_cold_then_warm(hf_cli: CLI, hub: HubServer) -> None:
    repo = "acme/dry"
    files = {"model.safetensors": safetensors_bytes(512, 10), "config.json": b"{}\n", "README.md": README}
    commit = hub.add_commit(repo, files)

    dry = run_json(hf_cli, "import", f"hf://{repo}", "--dry-run")
    assert dry["dryRun"] is True and dry["revision"] == commit
    assert resolve_gets(hub, repo) == []
    assert {f["path"]: f["size"] for f in dry["files"]} == {k: len(v) for k, v in files.items()}
    assert [f["cached"] for f in dry["files"]] == [False] * len(files)
    assert dry["downloadBytes"] == sum(len(v) for v in files.values())
    assert "reference" not in dry and "digest" not in dry
    assert stored_refs(hf_cli) == []

    run_json(hf_cli, "import", f"hf://{repo}", "-t", "dry:1")
    hub.clear_log()
    warm = run_json(hf_cli, "import", f"hf://{repo}", "--dry-run")
    assert [f["cached"] for f in warm["files"]] == [True] * len(files)
    assert warm["downloadBytes"] == 0
    assert resolve_gets(hub, repo) == []
