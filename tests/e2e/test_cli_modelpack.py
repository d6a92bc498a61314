"""ModelPack through the CLI: pack, unpack, and conversion both ways over the same layer blobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import CLI, FIXTURES, files_of

MP_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"


def manifest(cli: CLI, ref: str) -> dict:
    return json.loads(cli.ok("inspect", ref).stdout)["manifest"]


def config_of(cli: CLI, m: dict) -> dict:
    return json.loads((cli.store / "blobs/sha256" / m["config"]["digest"].split(":")[1]).read_bytes())


def test_pack_modelpack_writes_raw_weights_and_annotated_layers(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "mp:1", "--format", "modelpack")
    m = manifest(cli, "mp:1")
    assert m["artifactType"] == MP_ARTIFACT
    assert m["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    weight = m["layers"][0]
    assert weight["mediaType"] == "application/vnd.cncf.model.weight.v1.raw"
    data = (FIXTURES / "tiny-model/model.safetensors").read_bytes()
    assert weight["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    for layer in m["layers"]:
        ann = layer["annotations"]
        assert ann["org.cncf.model.filepath"] and ann["org.opencontainers.image.title"]
        meta = json.loads(ann["org.cncf.model.file.metadata+json"])
        assert set(meta) == {"name", "mode", "uid", "gid", "size", "mtime", "typeflag"}
    assert "ml.kitops.modelkit.kitfile" in m["annotations"]
    config = config_of(cli, m)
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in m["layers"]]
    assert config["config"]["format"] == "safetensors"
    cli.ok("unpack", "mp:1", "-d", str(tmp_path / "out"))
    got, want = files_of(tmp_path / "out"), files_of(FIXTURES / "tiny-model")
    assert {k: v for k, v in got.items() if k != "Kitfile"} == {
        k: v for k, v in want.items() if k != "Kitfile"
    }


def test_config_validates_against_the_model_spec_rules(cli: CLI) -> None:
    from kitbridge.formats.modelpack_schema import validate_config

    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "mp:1", "--format", "modelpack")
    assert validate_config(config_of(cli, manifest(cli, "mp:1"))) == []


def test_convert_round_trip_reuses_blobs_and_keeps_the_kitfile(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "k:1")
    blobs_before = set((cli.store / "blobs/sha256").iterdir())
    mp = json.loads(cli.ok("convert", "k:1", "m:1", "--to", "modelpack", "--json").stdout)
    back = json.loads(cli.ok("convert", "m:1", "k:2", "--to", "kitops", "--json").stdout)
    assert mp["layersReused"] == back["layersReused"] == 6
    new_blobs = set((cli.store / "blobs/sha256").iterdir()) - blobs_before
    assert len(new_blobs) <= 4  # two configs and two manifests: no layer byte was written
    assert [x["digest"] for x in manifest(cli, "m:1")["layers"]] == [
        x["digest"] for x in manifest(cli, "k:1")["layers"]
    ]
    assert cli.ok("info", "k:2").stdout == cli.ok("info", "k:1").stdout
    cli.ok("unpack", "k:2", "-d", str(tmp_path / "out"))
    assert (
        files_of(tmp_path / "out")["model.safetensors"]
        == (FIXTURES / "tiny-model/model.safetensors").read_bytes()
    )


def test_legacy_cnai_names_are_written_and_read(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "old:1", "--format", "modelpack", "--legacy-cnai")
    m = manifest(cli, "old:1")
    assert m["artifactType"] == "application/vnd.cnai.model.manifest.v1+json"
    assert all(layer["mediaType"].startswith("application/vnd.cnai.model.") for layer in m["layers"])
    assert all("org.cnai.model.filepath" in layer["annotations"] for layer in m["layers"])
    cli.ok("unpack", "old:1", "-d", str(tmp_path / "out"), "--filter", "model")
    assert (tmp_path / "out/model.safetensors").is_file()


def test_compressed_modelpack_directory_layers_unpack(cli: CLI, tmp_path: Path) -> None:
    for comp in ("gzip", "zstd"):
        cli.ok(
            "pack",
            str(FIXTURES / "tiny-model"),
            "-t",
            f"mpz:{comp}",
            "--format",
            "modelpack",
            "--compression",
            comp,
        )
        m = manifest(cli, f"mpz:{comp}")
        tokenizer = next(x for x in m["layers"] if x["annotations"]["org.cncf.model.filepath"] == "tokenizer")
        assert tokenizer["mediaType"] == f"application/vnd.cncf.model.weight.config.v1.tar+{comp}"
        cli.ok("unpack", f"mpz:{comp}", "-d", str(tmp_path / comp))
        got = files_of(tmp_path / comp)
        assert (
            got["tokenizer/tokenizer.json"] == (FIXTURES / "tiny-model/tokenizer/tokenizer.json").read_bytes()
        )


def test_a_modctl_style_artifact_without_kitfile_is_read_and_unpacked(cli: CLI, tmp_path: Path) -> None:
    """modctl writes one raw layer per file, metadata annotations, no Kitfile; the config may be {}."""
    from kitbridge.formats import mediatypes as mt
    from kitbridge.formats import modelpack
    from kitbridge.oci.descriptor import Descriptor
    from kitbridge.oci.store import Store

    store = Store(cli.store)
    files = {
        "model.safetensors": ("weight", (FIXTURES / "tiny-model/model.safetensors").read_bytes()),
        "config.json": ("weight.config", b'{"model_type": "tiny"}\n'),
        "README.md": ("doc", b"# card\n"),
    }
    layers = []
    for path, (kind, data) in files.items():
        digest, size = store.put_bytes(data)
        layers.append(
            Descriptor(
                f"application/vnd.cncf.model.{kind}.v1.raw", digest, size, {modelpack.ANN_FILEPATH: path}
            )
        )
    config_digest, config_size = store.put_bytes(b"{}")
    config = Descriptor(modelpack.CONFIG, config_digest, config_size)
    data = modelpack.manifest_bytes(config, layers, {})
    digest, size = store.put_bytes(data)
    store.set_ref("localhost/modctl/tiny:1", Descriptor(mt.OCI_MANIFEST, digest, size))

    info = cli.ok("info", "modctl/tiny:1").stdout
    assert "path: model.safetensors" in info and "config.json" in info and "README.md" in info
    cli.ok("unpack", "modctl/tiny:1", "-d", str(tmp_path / "out"))
    got = files_of(tmp_path / "out")
    assert {k: v for k, v in got.items() if k != "Kitfile"} == {p: d for p, (_k, d) in files.items()}
    # and it converts to a ModelKit over the same blobs
    cli.ok("convert", "modctl/tiny:1", "modctl/tiny:kit", "--to", "kitops")
    assert [x["digest"] for x in manifest(cli, "modctl/tiny:kit")["layers"]] == [x.digest for x in layers]


def test_a_model_directory_of_shards_becomes_one_weight_layer_per_file(cli: CLI, tmp_path: Path) -> None:
    from conftest import write_tree

    ctx = write_tree(
        tmp_path / "ctx",
        {
            "Kitfile": "manifestVersion: 1.0.0\nmodel:\n  name: s\n  path: weights\n",
            "weights/model-00001-of-00002.safetensors": b"\x01" * 300,
            "weights/model-00002-of-00002.safetensors": b"\x02" * 200,
            "weights/config.json": '{"a": 1}\n',
        },
    )
    cli.ok("pack", str(ctx), "-t", "sh:mp", "--format", "modelpack")
    m = manifest(cli, "sh:mp")
    assert [x["mediaType"].endswith(".raw") for x in m["layers"]] == [True, True, True]
    paths = [x["annotations"]["org.cncf.model.filepath"] for x in m["layers"]]
    assert paths == [
        "weights/model-00001-of-00002.safetensors",
        "weights/config.json",
        "weights/model-00002-of-00002.safetensors",
    ]
    media = {x["annotations"]["org.cncf.model.filepath"]: x["mediaType"] for x in m["layers"]}
    assert media["weights/model-00001-of-00002.safetensors"].endswith("model.weight.v1.raw")
    assert media["weights/config.json"].endswith("model.weight.config.v1.raw")
    cli.ok("unpack", "sh:mp", "-d", str(tmp_path / "out"))
    assert (tmp_path / "out/weights/model-00002-of-00002.safetensors").read_bytes() == b"\x02" * 200
    # the KitOps pack of the same Kitfile keeps the directory as one tar layer, as kit does
    cli.ok("pack", str(ctx), "-t", "sh:kit")
    assert len(manifest(cli, "sh:kit")["layers"]) == 1
