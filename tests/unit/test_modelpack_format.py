"""Writing ModelPack: media types (current and legacy), file metadata, the config blob and the manifest."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from kitbridge.errors import FormatError
from kitbridge.formats import modelpack as mp
from kitbridge.formats.kitops import Manifest, parse_manifest
from kitbridge.formats.modelpack_schema import validate_config
from kitbridge.kitfile import load_kitfile
from kitbridge.oci.descriptor import Descriptor
from kitbridge.profile.profiler import ModelProfile


def digest(c: str) -> str:
    return "sha256:" + c * 64


# --- media types ------------------------------------------------------------------------------------------


def test_there_are_twenty_layer_media_types_and_each_parses_back() -> None:
    seen = set()
    for kind in mp.LAYER_KINDS:
        for enc in mp.ENCODINGS:
            name = f"application/vnd.cncf.model.{kind}.v1.{enc}"
            assert mp.parse_layer_media_type(name) == (kind, enc)
            assert mp.parse_layer_media_type(mp.to_legacy(name)) == (kind, enc)
            seen.add(name)
    assert len(seen) == 20


@pytest.mark.parametrize(
    ("entry", "encoding", "expected"),
    [
        ("model", "raw", "application/vnd.cncf.model.weight.v1.raw"),
        ("model", "tar", "application/vnd.cncf.model.weight.v1.tar"),
        ("modelpart", "tar+gzip", "application/vnd.cncf.model.weight.config.v1.tar+gzip"),
        ("dataset", "tar+zstd", "application/vnd.cncf.model.dataset.v1.tar+zstd"),
        ("code", "tar", "application/vnd.cncf.model.code.v1.tar"),
        ("prompt", "raw", "application/vnd.cncf.model.code.v1.raw"),
        ("docs", "tar", "application/vnd.cncf.model.doc.v1.tar"),
        ("mcpserver", "tar+gzip", "application/vnd.cncf.model.code.v1.raw"),
    ],
)
def test_layer_media_type_follows_kits_mapping(entry: str, encoding: str, expected: str) -> None:
    assert mp.layer_media_type(entry, encoding) == expected
    assert mp.layer_media_type(entry, encoding, legacy=True) == expected.replace("vnd.cncf.", "vnd.cnai.")


def test_layer_media_type_refuses_compressed_raw_and_unknown_kinds() -> None:
    with pytest.raises(FormatError):
        mp.layer_media_type("model", "raw+gzip")
    with pytest.raises(ValueError):
        mp.layer_media_type("weights", "raw")


@pytest.mark.parametrize(
    "name",
    [
        "application/vnd.cncf.model.unrecognized.v1.raw",
        "application/vnd.cncf.model.weight.v1.raw+gzip",
        "application/vnd.cncf.model.weight.v1.gguf",
        "application/vnd.cncf.model.weight.v2.tar",
        "application/vnd.cncf.model.config.v1+json",
        "application/vnd.cnai.model.layer.v1.tar",
        "application/vnd.kitops.modelkit.model.v1.tar",
        "application/octet-stream",
    ],
)
def test_parse_layer_media_type_rejects_other_names(name: str) -> None:
    with pytest.raises(FormatError, match="failed to parse media type"):
        mp.parse_layer_media_type(name)


def test_legacy_names_map_both_ways() -> None:
    pairs = [
        (mp.MANIFEST_ARTIFACT, mp.LEGACY_MANIFEST_ARTIFACT),
        (mp.CONFIG, mp.LEGACY_CONFIG),
        (
            "application/vnd.cncf.model.weight.config.v1.tar",
            "application/vnd.cnai.model.weight.config.v1.tar",
        ),
        (mp.ANN_FILEPATH, mp.LEGACY_ANN_FILEPATH),
        (mp.ANN_FILE_METADATA, mp.LEGACY_ANN_FILE_METADATA),
        (mp.ANN_MEDIATYPE_UNTESTED, mp.LEGACY_ANN_MEDIATYPE_UNTESTED),
        (mp.ANN_MODCTL_MODELFILE, "org.cnai.modctl.modelfile"),
    ]
    for current, legacy in pairs:
        assert mp.to_legacy(current) == legacy
        assert mp.to_current(legacy) == current
        assert mp.to_legacy(legacy) == legacy
        assert mp.to_current(current) == current
        assert mp.is_legacy_name(legacy) and not mp.is_legacy_name(current)
    for other in (mp.ANN_TITLE, mp.ANN_KITFILE, "application/vnd.oci.image.manifest.v1+json"):
        assert mp.to_legacy(other) == other == mp.to_current(other)


# --- file metadata ----------------------------------------------------------------------------------------


def test_file_metadata_is_gos_compact_json_in_field_order() -> None:
    text = mp.file_metadata_json("model.safetensors", 0o100644, 1000, 100, 12345, 1700000000, 0)
    assert text == (
        '{"name":"model.safetensors","mode":420,"uid":1000,"gid":100,"size":12345,'
        '"mtime":"2023-11-14T22:13:20Z","typeflag":0}'
    )


def test_file_metadata_mtime_forms() -> None:
    as_str = mp.file_metadata_json("d", 0o755, 0, 0, 0, "2024-05-01T10:00:00.5+02:00", 5)
    assert json.loads(as_str)["mtime"] == "2024-05-01T10:00:00.5+02:00"
    assert json.loads(as_str)["typeflag"] == 5 and json.loads(as_str)["mode"] == 493
    dt = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-3)))
    assert (
        json.loads(mp.file_metadata_json("f", 0o644, 0, 0, 1, dt, 0))["mtime"]
        == "2024-05-01T10:00:00.25-03:00"
    )
    with pytest.raises(ValueError):
        mp.file_metadata_json("f", 0o644, 0, 0, 1, "yesterday", 0)
    with pytest.raises(ValueError):
        mp.file_metadata_json("f", 0o644, 0, 0, 1, 0, 48)


@pytest.mark.parametrize(("flag", "expected"), [(0, 0), (48, 0), (5, 5), (53, 5)])
def test_file_metadata_reader_accepts_tar_typeflag_bytes(flag: int, expected: int) -> None:
    meta = mp.parse_file_metadata(
        json.dumps({"name": "a", "mode": 420, "uid": 1, "gid": 2, "size": 3, "mtime": "x", "typeflag": flag})
    )
    assert meta == mp.FileMetadata("a", 420, 1, 2, 3, "x", expected)


@pytest.mark.parametrize("value", ["{", "[]", '{"typeflag": 50}', '{"size": -1}', '{"name": 3}'])
def test_file_metadata_reader_rejects_garbage(value: str) -> None:
    with pytest.raises(FormatError):
        mp.parse_file_metadata(value)


def test_file_metadata_round_trips() -> None:
    text = mp.file_metadata_json("w.bin", 0o600, 0, 0, 9, "2024-01-01T00:00:00Z", 0)
    assert mp.parse_file_metadata(text).to_json() == text


# --- config -----------------------------------------------------------------------------------------------

KITFILE = load_kitfile(
    """\
manifestVersion: 1.0.0
package:
  name: mini-bert
  version: "1.0"
  description: A tiny <test> model
  license: MIT
  authors: [Ana <ana@example.org>]
model:
  path: model.safetensors
  license: Apache-2.0
  parts:
    - path: config.json
      license: MIT
datasets:
  - name: remote
    remotePath: s3://bucket/train
    remoteHash: abc
  - path: data/eval.csv
    license: CC-BY-4.0
code:
  - path: src
    license: BSD-3-Clause
docs:
  - path: README.md
"""
)
PROFILE = ModelProfile(
    format="safetensors",
    param_size="22.7M",
    precision="float32",
    architecture="BertModel",
    family="bert",
    task="sentence-similarity",
    license="Apache-2.0",
    languages=("en", "English", "DE", "zh-CN", "en"),
    title="Mini BERT",
    description="from the card",
)
DIFF_IDS = [digest(c) for c in "12345"]


def test_build_config_writes_go_field_order_and_omits_empty_fields() -> None:
    data = mp.build_config(
        KITFILE,
        DIFF_IDS,
        profile=PROFILE,
        created="2024-01-02T03:04:05Z",
        source_url="https://huggingface.co/org/mini-bert",
        revision="0123abc",
    )
    ids = ",".join(f'"{d}"' for d in DIFF_IDS)
    assert (
        data
        == (
            '{"descriptor":{"createdAt":"2024-01-02T03:04:05Z",'
            '"authors":["Ana \\u003cana@example.org\\u003e"],'
            '"family":"bert","name":"mini-bert","sourceURL":"https://huggingface.co/org/mini-bert",'
            '"datasetsURL":["s3://bucket/train"],"version":"1.0","revision":"0123abc",'
            '"licenses":["Apache-2.0","BSD-3-Clause","CC-BY-4.0","MIT"],"title":"mini-bert",'
            '"description":"A tiny \\u003ctest\\u003e model"},'
            f'"modelfs":{{"type":"layers","diffIds":[{ids}]}},'
            '"config":{"architecture":"BertModel","format":"safetensors","paramSize":"22.7M","precision":"float32",'
            '"capabilities":{"inputTypes":["text"],"outputTypes":["embedding"],"languages":["en","de"]}}}'
        ).encode()
    )
    assert validate_config(data) == []


def test_build_config_without_profile_is_kits_config() -> None:
    data = mp.build_config(KITFILE, DIFF_IDS[:1], profile=None, created="2024-01-02T03:04:05Z")
    doc = json.loads(data)
    assert list(doc) == ["descriptor", "modelfs", "config"]
    assert doc["config"] == {}
    assert doc["descriptor"]["licenses"] == ["Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "MIT"]
    assert "family" not in doc["descriptor"] and "revision" not in doc["descriptor"]
    assert validate_config(data) == []


def test_build_config_fills_gaps_from_the_profile_only() -> None:
    bare = load_kitfile("manifestVersion: 1.0.0\nmodel:\n  path: m.gguf\n")
    prof = ModelProfile(format="gguf", task="text-generation", title="Card Title", description="card text")
    doc = json.loads(mp.build_config(bare, DIFF_IDS[:1], profile=prof, created="2024-01-02T03:04:05Z"))
    assert doc["descriptor"]["title"] == "Card Title"
    assert doc["descriptor"]["description"] == "card text"
    assert "name" not in doc["descriptor"]
    assert doc["config"] == {
        "format": "gguf",
        "capabilities": {"inputTypes": ["text"], "outputTypes": ["text"]},
    }


@pytest.mark.parametrize(
    ("task", "ins", "outs"),
    [
        ("text-generation", ["text"], ["text"]),
        ("feature-extraction", ["text"], ["embedding"]),
        ("sentence-similarity", ["text"], ["embedding"]),
        ("image-classification", ["image"], ["text"]),
        ("image-text-to-text", ["text", "image"], ["text"]),
        ("text-to-image", ["text"], ["image"]),
        ("automatic-speech-recognition", ["audio"], ["text"]),
        ("text-to-speech", ["text"], ["audio"]),
        ("reinforcement-learning", [], []),
        ("", [], []),
    ],
)
def test_task_modalities(task: str, ins: list[str], outs: list[str]) -> None:
    assert mp.task_modalities(task) == (ins, outs)


def test_unknown_task_and_no_languages_leave_capabilities_out() -> None:
    prof = ModelProfile(task="reinforcement-learning", languages=("English",))
    doc = json.loads(mp.build_config(KITFILE, DIFF_IDS, profile=prof, created="2024-01-02T03:04:05Z"))
    assert "capabilities" not in doc["config"]


def test_build_config_refuses_what_the_schema_would_reject() -> None:
    with pytest.raises(FormatError, match="at least one layer"):
        mp.build_config(KITFILE, [], profile=None, created="2024-01-02T03:04:05Z")
    with pytest.raises(FormatError, match="createdAt"):
        mp.build_config(KITFILE, DIFF_IDS, profile=None, created="2024-01-02 03:04:05")


def test_config_round_trips_through_parse_config() -> None:
    data = mp.build_config(KITFILE, DIFF_IDS, profile=PROFILE, created="2024-01-02T03:04:05Z")
    parsed = mp.parse_config(data)
    assert parsed.to_json() == data
    assert parsed.diff_ids == DIFF_IDS
    assert parsed.config.capabilities is not None
    assert parsed.config.capabilities.output_types == ["embedding"]


def test_config_writes_pointer_booleans_only_when_set() -> None:
    cfg = mp.ModelPackConfig(
        descriptor=mp.ModelDescriptor(name="m"),
        diff_ids=[DIFF_IDS[0]],
        config=mp.ModelConfig(
            capabilities=mp.ModelCapabilities(reasoning=False, knowledge_cutoff="2024-01-01T00:00:00Z")
        ),
    )
    assert (
        cfg.to_json()
        == (
            '{"descriptor":{"name":"m"},"modelfs":{"type":"layers","diffIds":["' + DIFF_IDS[0] + '"]},'
            '"config":{"capabilities":{"knowledgeCutoff":"2024-01-01T00:00:00Z","reasoning":false}}}'
        ).encode()
    )
    assert (
        mp.ModelPackConfig().to_json()
        == b'{"descriptor":{},"modelfs":{"type":"layers","diffIds":null},"config":{}}'
    )


# --- manifest ---------------------------------------------------------------------------------------------


def _descriptors() -> tuple[Descriptor, list[Descriptor]]:
    config = Descriptor(mp.CONFIG, digest("c"), 321)
    layers = [
        Descriptor(
            mp.layer_media_type("model", "raw"),
            digest("a"),
            100,
            {
                mp.ANN_TITLE: "model.safetensors",
                mp.ANN_FILEPATH: "model.safetensors",
                mp.ANN_FILE_METADATA: mp.file_metadata_json("model.safetensors", 0o644, 0, 0, 100, 0, 0),
            },
        ),
        Descriptor(mp.layer_media_type("docs", "tar"), digest("b"), 2048, {mp.ANN_FILEPATH: "README.md"}),
    ]
    return config, layers


def test_manifest_bytes_in_go_order_with_sorted_annotations() -> None:
    config, layers = _descriptors()
    data = mp.manifest_bytes(config, layers, {mp.ANN_KITFILE: '{"manifestVersion":"1.0.0"}', "a.b": "first"})
    text = data.decode()
    assert text.startswith(
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"artifactType":"application/vnd.cncf.model.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.cncf.model.config.v1+json","digest":"'
        + digest("c")
        + '","size":321},'
        '"layers":[{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"' + digest("a") + '",'
        '"size":100,"annotations":{"org.cncf.model.file.metadata+json":'
    )
    assert text.endswith(
        '"annotations":{"a.b":"first","ml.kitops.modelkit.kitfile":"{\\"manifestVersion\\":\\"1.0.0\\"}"}}'
    )
    manifest = parse_manifest(data)
    assert mp.is_modelpack(manifest)
    assert manifest.layers == layers


def test_legacy_manifest_uses_cnai_names_throughout() -> None:
    config, layers = _descriptors()
    data = mp.manifest_bytes(config, layers, {mp.ANN_KITFILE: "{}"}, legacy=True)
    text = data.decode()
    assert "cncf" not in text
    manifest = parse_manifest(data)
    assert manifest.artifact_type == mp.LEGACY_MANIFEST_ARTIFACT
    assert manifest.config.media_type == mp.LEGACY_CONFIG
    assert manifest.layers[0].media_type == "application/vnd.cnai.model.weight.v1.raw"
    assert set(manifest.layers[0].annotations) == {
        mp.ANN_TITLE,
        mp.LEGACY_ANN_FILEPATH,
        mp.LEGACY_ANN_FILE_METADATA,
    }
    assert manifest.annotations == {mp.ANN_KITFILE: "{}"}
    assert mp.is_modelpack(manifest)
    # Writing it current again gives back the current bytes exactly.
    assert mp.manifest_bytes(manifest.config, manifest.layers, manifest.annotations) == mp.manifest_bytes(
        config, layers, {mp.ANN_KITFILE: "{}"}
    )


def _manifest(artifact_type: str | None, config_type: str) -> Manifest:
    return Manifest(config=Descriptor(config_type, digest("c"), 2), layers=[], artifact_type=artifact_type)


@pytest.mark.parametrize(
    ("artifact_type", "config_type", "expected"),
    [
        (mp.MANIFEST_ARTIFACT, mp.CONFIG, True),
        (mp.LEGACY_MANIFEST_ARTIFACT, mp.LEGACY_CONFIG, True),
        (None, mp.CONFIG, True),
        (None, mp.LEGACY_CONFIG, True),
        (mp.MANIFEST_ARTIFACT, "application/vnd.oci.empty.v1+json", True),
        (
            "application/vnd.kitops.modelkit.manifest.v1+json",
            "application/vnd.kitops.modelkit.config.v1+json",
            False,
        ),
        (None, "application/vnd.kitops.modelkit.config.v1+json", False),
        (
            "application/vnd.cncf.model.unrecognized.v1+json",
            "application/vnd.cncf.model.unrecognized.v1+json",
            False,
        ),
        (None, "application/vnd.oci.image.config.v1+json", False),
    ],
)
def test_is_modelpack(artifact_type: str | None, config_type: str, expected: bool) -> None:
    assert mp.is_modelpack(_manifest(artifact_type, config_type)) is expected
