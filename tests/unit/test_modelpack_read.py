"""Reading ModelPack artifacts: lenient config parsing, legacy names, and the Kitfile kit would rebuild."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kitbridge.errors import FormatError
from kitbridge.formats import modelpack as mp
from kitbridge.formats.kitops import Manifest, parse_manifest
from kitbridge.kitfile import Code, DataSet, Docs, Kitfile, Model, ModelPart, kitfile_json, load_kitfile


def digest(c: str) -> str:
    return "sha256:" + c * 64


def layer(media_kind: str, d: str, path: str | None, enc: str = "tar", **ann: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": f"application/vnd.cncf.model.{media_kind}.v1.{enc}",
        "digest": d,
        "size": 10,
    }
    annotations = dict(ann)
    if path is not None:
        annotations[mp.ANN_FILEPATH] = path
    if annotations:
        out["annotations"] = annotations
    return out


def manifest(
    layers: list[dict[str, Any]],
    *,
    artifact_type: str | None = mp.MANIFEST_ARTIFACT,
    config_type: str = mp.CONFIG,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": digest("c"), "size": 300},
        "layers": layers,
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    return parse_manifest(json.dumps(doc).encode())


def config_with(diff_ids: list[str]) -> mp.ModelPackConfig:
    return mp.parse_config(json.dumps({"modelfs": {"type": "layers", "diffIds": diff_ids}}).encode())


MIXED = [
    layer("weight", digest("a"), "weights.safetensors", "raw"),
    layer("weight.config", digest("b"), "config.json"),
    layer("weight.config", digest("d"), "tokenizer.json"),
    layer("doc", digest("e"), "README.md"),
    layer("doc", digest("f"), "LICENSE"),
    layer("dataset", digest("0"), "data/train.parquet"),
    layer("code", digest("9"), "scripts/run.sh"),
]
MIXED_DIFF_IDS = [digest(c) for c in "1234567"]


# --- kitfile_for: kit's GenerateKitfileForModelPack -------------------------------------------------------


def test_kitfile_rebuilt_from_manifest_and_config() -> None:
    kf = mp.kitfile_for(manifest(MIXED), config_with(MIXED_DIFF_IDS))
    ids = MIXED_DIFF_IDS
    assert kf == Kitfile(
        manifest_version="1.0.0",
        model=Model(
            path="weights.safetensors",
            digest=digest("a"),
            diff_id=ids[0],
            parts=[
                ModelPart(path="config.json", digest=digest("b"), diff_id=ids[1]),
                ModelPart(path="tokenizer.json", digest=digest("d"), diff_id=ids[2]),
            ],
        ),
        docs=[
            Docs(path="README.md", digest=digest("e"), diff_id=ids[3]),
            Docs(path="LICENSE", digest=digest("f"), diff_id=ids[4]),
        ],
        datasets=[DataSet(path="data/train.parquet", digest=digest("0"), diff_id=ids[5])],
        code=[Code(path="scripts/run.sh", digest=digest("9"), diff_id=ids[6])],
    )


def test_kitfile_rebuilt_from_manifest_alone_has_digests_but_no_diff_ids() -> None:
    kf = mp.kitfile_for(manifest(MIXED))
    assert kf.layer_info() == [
        (digest("a"), ""),
        (digest("b"), ""),
        (digest("d"), ""),
        (digest("9"), ""),
        (digest("0"), ""),
        (digest("e"), ""),
        (digest("f"), ""),
    ]
    assert kitfile_json(kf).startswith(
        b'{"manifestVersion":"1.0.0","package":{},"model":{"path":"weights.safetensors","parts":'
    )


def test_later_weight_layers_become_parts_in_manifest_order() -> None:
    layers = [
        layer("weight", digest("a"), "model-00001.safetensors", "raw"),
        layer("weight.config", digest("b"), "config.json"),
        layer("weight", digest("d"), "model-00002.safetensors", "raw"),
        layer("weight", digest("e"), "model-00003.safetensors", "raw"),
    ]
    kf = mp.kitfile_for(manifest(layers), config_with([digest(c) for c in "1234"]))
    assert kf.model is not None and kf.model.path == "model-00001.safetensors"
    assert [(p.path, p.diff_id) for p in kf.model.parts] == [
        ("config.json", digest("2")),
        ("model-00002.safetensors", digest("3")),
        ("model-00003.safetensors", digest("4")),
    ]


def test_not_a_modelpack_is_refused() -> None:
    odd = "application/vnd.cncf.model.unrecognized.v1+json"
    m = manifest(MIXED, artifact_type=odd, config_type=odd)
    with pytest.raises(FormatError, match="not a modelpack artifact"):
        mp.kitfile_for(m)
    with pytest.raises(FormatError, match="not a modelpack artifact"):
        mp.read_modelpack(m, b"{}")


def test_layer_without_filepath_annotation_is_refused() -> None:
    m = manifest([layer("weight", digest("a"), None, "raw", **{"org.cncf.model.unrecognized": "x.bin"})])
    with pytest.raises(FormatError, match="unknown file path for layer"):
        mp.kitfile_for(m)


def test_layer_with_unknown_media_type_is_refused() -> None:
    m = manifest([layer("unrecognized", digest("a"), "x.safetensors", "raw")])
    with pytest.raises(FormatError, match="failed to parse media type"):
        mp.kitfile_for(m)
    with pytest.raises(FormatError, match="failed to parse media type"):
        mp.read_modelpack(m, b"{}")


def test_diff_ids_that_do_not_match_the_layers_are_refused() -> None:
    m = manifest([layer("weight", digest("a"), "x.safetensors", "raw")])
    with pytest.raises(FormatError, match="invalid ModelPack config"):
        mp.kitfile_for(m, config_with([digest(c) for c in "123"]))


@pytest.mark.parametrize("config", [b"{}", b"", b'{"modelfs":{"type":"layers","diffIds":null}}'])
def test_configs_without_diff_ids_leave_diff_ids_empty(config: bytes) -> None:
    art = mp.read_modelpack(manifest(MIXED), config)
    kf = art.kitfile()
    assert [d for d, _ in kf.layer_info()] == [
        digest("a"),
        digest("b"),
        digest("d"),
        digest("9"),
        digest("0"),
        digest("e"),
        digest("f"),
    ]
    assert all(not diff for _, diff in kf.layer_info())
    assert art.problems  # not valid under the current schema, but readable


def test_manifest_without_weights_gives_an_empty_model_like_kit() -> None:
    kf = mp.kitfile_for(manifest([layer("doc", digest("e"), "README.md")]))
    assert kf.model == Model()
    assert [e.kind for e in kf.layer_entries()] == ["docs"]


# --- the Kitfile annotation -------------------------------------------------------------------------------

ANNOTATED = load_kitfile(
    """\
manifestVersion: 1.0.0
package: {name: demo, license: MIT}
model:
  name: demo
  path: weights.safetensors
  parts: [{path: config.json}]
docs: [{path: ./README.md}]
"""
)
ANNOTATED_LAYERS = [
    layer("weight", digest("a"), "weights.safetensors", "raw"),
    layer("weight.config", digest("b"), "config.json"),
    layer("doc", digest("e"), "README.md"),
]


def test_kitfile_annotation_wins_and_gets_layer_info_by_path() -> None:
    m = manifest(
        list(reversed(ANNOTATED_LAYERS)),
        annotations={mp.ANN_KITFILE: kitfile_json(ANNOTATED).decode()},
    )
    kf = mp.kitfile_for(m, config_with([digest("3"), digest("2"), digest("1")]))
    assert kf.package.name == "demo" and kf.model is not None and kf.model.name == "demo"
    assert kf.layer_info() == [
        (digest("a"), digest("1")),
        (digest("b"), digest("2")),
        (digest("e"), digest("3")),
    ]


def test_kitfile_annotation_with_layer_info_is_taken_as_is() -> None:
    with_info = ANNOTATED.with_layer_info([(digest("7"), digest("8"))] * 3)
    m = manifest(ANNOTATED_LAYERS, annotations={mp.ANN_KITFILE: kitfile_json(with_info).decode()})
    assert mp.kitfile_for(m) == with_info


def test_kitfile_annotation_without_matching_paths_pairs_by_position() -> None:
    renamed = [layer("weight", digest("a"), "w.bin", "raw"), *ANNOTATED_LAYERS[1:]]
    m = manifest(renamed, annotations={mp.ANN_KITFILE: kitfile_json(ANNOTATED).decode()})
    assert [d for d, _ in mp.kitfile_for(m).layer_info()] == [digest("a"), digest("b"), digest("e")]


def test_broken_kitfile_annotation_is_a_format_error() -> None:
    m = manifest(ANNOTATED_LAYERS, annotations={mp.ANN_KITFILE: '{"model": []}'})
    with pytest.raises(
        FormatError, match=r"invalid Kitfile in manifest annotation ml\.kitops\.modelkit\.kitfile"
    ):
        mp.kitfile_for(m)


# --- legacy artifacts -------------------------------------------------------------------------------------


def _legacy_manifest() -> Manifest:
    def old(kind: str, d: str, path: str, **extra: str) -> dict[str, Any]:
        return {
            "mediaType": f"application/vnd.cnai.model.{kind}.v1.tar",
            "digest": d,
            "size": 512,
            "annotations": {"org.cnai.model.filepath": path, **extra},
        }

    meta = (
        '{"name":"model.bin","mode":420,"uid":0,"gid":0,"size":3,'
        '"mtime":"2025-01-01T00:00:00Z","typeflag":48}'
    )
    return manifest(
        [
            old("doc", digest("1"), "LICENSE"),
            old("weight.config", digest("2"), "config.json"),
            old(
                "weight",
                digest("3"),
                "model.bin",
                **{
                    "org.cnai.model.file.metadata+json": meta,
                    "org.cnai.model.file.mediatype.untested": "true",
                },
            ),
        ],
        artifact_type=mp.LEGACY_MANIFEST_ARTIFACT,
        config_type=mp.LEGACY_CONFIG,
    )


LEGACY_CONFIG = b"""{
  "descriptor": {"createdAt": "2025-02-12T17:01:43.968027+08:00", "family": "qwen2", "name": "Qwen2.5-0.5B"},
  "modelfs": {"type": "layers", "diff_ids": ["%s", "%s", "%s"]},
  "config": {"paramSize": "0.5b", "capabilities": {"input_types": ["text"], "output_types": ["text"],
             "knowledge_cutoff": "2024-01-01T00:00:00Z", "tool_usage": true}}
}""" % tuple(digest(c).encode() for c in "abc")


def test_legacy_artifact_reads_with_snake_case_config_and_cnai_annotations() -> None:
    art = mp.read_modelpack(_legacy_manifest(), LEGACY_CONFIG)
    assert art.legacy
    assert art.config.diff_ids == [digest(c) for c in "abc"]
    assert art.config.descriptor.family == "qwen2"
    caps = art.config.config.capabilities
    assert caps == mp.ModelCapabilities(
        input_types=["text"], output_types=["text"], knowledge_cutoff="2024-01-01T00:00:00Z", tool_usage=True
    )
    assert [(x.kind, x.encoding, x.filepath) for x in art.layers] == [
        ("doc", "tar", "LICENSE"),
        ("weight.config", "tar", "config.json"),
        ("weight", "tar", "model.bin"),
    ]
    assert art.layers[2].metadata == mp.FileMetadata("model.bin", 420, 0, 0, 3, "2025-01-01T00:00:00Z", 0)
    assert art.layers[2].untested and not art.layers[0].untested
    assert any("diff_ids" in p for p in art.problems)

    kf = art.kitfile()
    assert kf.model is not None and kf.model.path == "model.bin" and kf.model.diff_id == digest("c")
    assert [p.path for p in kf.model.parts] == ["config.json"]
    assert [(d.path, d.diff_id) for d in kf.docs] == [("LICENSE", digest("a"))]


def test_current_artifact_is_not_legacy_and_has_no_problems() -> None:
    data = json.dumps(
        {"descriptor": {"name": "m"}, "modelfs": {"type": "layers", "diffIds": MIXED_DIFF_IDS}, "config": {}}
    ).encode()
    art = mp.read_modelpack(manifest(MIXED), data)
    assert not art.legacy and art.problems == []
    assert art.config.descriptor.name == "m"


def test_config_media_type_alone_identifies_a_modelpack() -> None:
    art = mp.read_modelpack(manifest(MIXED, artifact_type=None), b"{}")
    assert len(art.layers) == 7


# --- parse_config -----------------------------------------------------------------------------------------


def test_parse_config_ignores_unknown_keys_and_matches_case_insensitively() -> None:
    cfg = mp.parse_config(
        b'{"Descriptor": {"NAME": "x", "extra": 1}, "future": {}, "modelfs": {"DiffIDs": []}}'
    )
    assert cfg.descriptor.name == "x"
    assert cfg.diff_ids == []


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"descriptor": {"version": 3}}', "descriptor.version"),
        (b'{"descriptor": {"authors": "ana"}}', "descriptor.authors"),
        (b'{"descriptor": []}', "descriptor"),
        (b'{"modelfs": {"diffIds": "sha256:x"}}', "modelfs.diffIds"),
        (b'{"config": {"capabilities": {"reasoning": "yes"}}}', "config.capabilities.reasoning"),
        (b'{"config": {"capabilities": {"languages": [1]}}}', "config.capabilities.languages[0]"),
        (b"[]", "config"),
        (b"{nope", "not valid JSON"),
    ],
)
def test_parse_config_rejects_wrong_types(data: bytes, where: str) -> None:
    with pytest.raises(FormatError, match="invalid ModelPack config") as e:
        mp.parse_config(data)
    assert where in str(e.value)


def test_bad_file_metadata_annotation_is_a_format_error() -> None:
    m = manifest([layer("weight", digest("a"), "w.bin", "raw", **{mp.ANN_FILE_METADATA: "{broken"})])
    with pytest.raises(FormatError, match="metadata"):
        mp.read_modelpack(m, b"{}")
