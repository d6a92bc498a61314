"""``convert --layer-format``: tar layers of one file become raw layers and back, through the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import CLI, write_tree
from conftest import unpacked_files as files_of

KITFILE = """manifestVersion: 1.0.0
package:
  name: reencode
model:
  name: m
  path: weights/model.bin
  parts:
    - path: config.json
docs:
  - path: README.md
"""

FILES: dict[str, str | bytes] = {
    "Kitfile": KITFILE,
    "weights/model.bin": os.urandom(3 * 1024 * 1024 + 17),
    "config.json": '{"hidden_size": 8}\n',
    "README.md": "# a model\n",
}
LAYER_PATHS = ["weights/model.bin", "config.json", "README.md"]


def manifest(cli: CLI, ref: str) -> dict:
    return json.loads(cli.ok("inspect", ref).stdout)["manifest"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_tar_layers_become_raw_and_back(cli: CLI, tmp_path: Path, compression: str) -> None:
    ctx = write_tree(tmp_path / "ctx", FILES)
    cli.ok("pack", str(ctx), "-t", "k:1", "--compression", compression)
    kit = manifest(cli, "k:1")
    assert all(
        layer["mediaType"].endswith(".tar" if compression == "none" else ".tar+gzip")
        for layer in kit["layers"]
    )

    cli.ok("convert", "k:1", "mp:1", "--to", "modelpack", "--layer-format", "raw")
    mp = manifest(cli, "mp:1")
    assert [layer["mediaType"].rsplit(".", 1)[1] for layer in mp["layers"]] == ["raw"] * 3
    want = {rel: FILES[rel] for rel in LAYER_PATHS}
    assert [layer["digest"] for layer in mp["layers"]] == [
        sha256(c if isinstance(c, bytes) else c.encode()) for c in want.values()
    ]
    config = json.loads((cli.store / "blobs/sha256" / mp["config"]["digest"][7:]).read_bytes())
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in mp["layers"]]
    cli.ok("unpack", "mp:1", "-d", str(tmp_path / "out-mp"))
    assert files_of(tmp_path / "out-mp") == files_of(ctx)

    cli.ok("convert", "mp:1", "k:2", "--to", "kitops", "--layer-format", "tar")
    back = manifest(cli, "k:2")
    assert all(layer["mediaType"].endswith(".v1.tar") for layer in back["layers"])
    if compression == "none":  # the same Go-compatible tar bytes pack wrote (modes 0644 / 0755)
        assert [layer["digest"] for layer in back["layers"]] == [layer["digest"] for layer in kit["layers"]]
    cli.ok("unpack", "k:2", "-d", str(tmp_path / "out-k"))
    assert files_of(tmp_path / "out-k") == files_of(ctx)
    config_text = (cli.store / "blobs/sha256" / back["config"]["digest"][7:]).read_text()
    for layer in back["layers"]:  # the Kitfile in the config names the new blobs
        assert layer["digest"] in config_text


def test_raw_modelpack_to_tar_keeps_the_file_mode(cli: CLI, tmp_path: Path) -> None:
    ctx = write_tree(tmp_path / "ctx", FILES, mode=0o600)
    cli.ok("pack", str(ctx), "-t", "mp:1", "--format", "modelpack")
    assert all(layer["mediaType"].endswith(".raw") for layer in manifest(cli, "mp:1")["layers"])
    cli.ok("convert", "mp:1", "mp:2", "--to", "modelpack", "--layer-format", "tar")
    layers = manifest(cli, "mp:2")["layers"]
    assert all(layer["mediaType"].endswith(".v1.tar") for layer in layers)
    cli.ok("unpack", "mp:2", "-d", str(tmp_path / "out"))
    assert files_of(tmp_path / "out") == files_of(ctx)
    assert (tmp_path / "out/weights/model.bin").stat().st_mode & 0o777 == 0o600


def test_a_directory_layer_asked_to_be_raw_is_an_error(cli: CLI, tmp_path: Path) -> None:
    files = {**FILES, "Kitfile": KITFILE + "code:\n  - path: src\n", "src/a.py": "a\n", "src/b.py": "b\n"}
    ctx = write_tree(tmp_path / "ctx", files)
    cli.ok("pack", str(ctx), "-t", "k:1")
    blobs = set((cli.store / "blobs/sha256").iterdir())
    r = cli("convert", "k:1", "mp:1", "--to", "modelpack", "--layer-format", "raw")
    assert r.returncode != 0
    assert "cannot become a raw layer" in r.stderr and "src" in r.stderr
    assert cli("inspect", "mp:1").returncode != 0  # nothing was tagged
    assert set((cli.store / "blobs/sha256").iterdir()) == blobs  # the raw blobs it wrote are gone
    # without --layer-format the directory stays a tar, and the files keep their layers too
    cli.ok("convert", "k:1", "mp:1", "--to", "modelpack")
