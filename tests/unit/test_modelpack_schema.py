"""The hand-written ModelPack config schema checker: every rule of model-spec's config-schema.json."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kitbridge.formats.modelpack_schema import is_date_time, validate_config

DIFF_ID = "sha256:" + "1" * 64


def minimal() -> dict[str, Any]:
    return {"descriptor": {}, "modelfs": {"type": "layers", "diffIds": [DIFF_ID]}, "config": {}}


def full() -> dict[str, Any]:
    return {
        "descriptor": {
            "createdAt": "2024-03-04T05:06:07Z",
            "authors": ["Ana <ana@example.org>"],
            "family": "tinyllama",
            "name": "tiny-chat",
            "docURL": "https://example.org/doc",
            "sourceURL": "https://example.org/src",
            "datasetsURL": ["s3://bucket/train"],
            "version": "0.1",
            "revision": "deadbeef",
            "vendor": "Example",
            "licenses": ["Apache-2.0", "MIT"],
            "title": "Tiny Chat",
            "description": "a test model",
        },
        "modelfs": {"type": "layers", "diffIds": [DIFF_ID, "sha256:" + "2" * 64]},
        "config": {
            "architecture": "LlamaForCausalLM",
            "format": "gguf",
            "paramSize": "1.1B",
            "precision": "bfloat16,float32",
            "quantization": "Q4_K_M",
            "capabilities": {
                "inputTypes": ["text", "image"],
                "outputTypes": ["text"],
                "knowledgeCutoff": "2023-12-31T23:59:59.5+01:00",
                "reasoning": False,
                "toolUsage": True,
                "reward": False,
                "languages": ["en", "fr"],
            },
        },
    }


def with_change(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted ``path`` set to ``value`` (or deleted when value is ...)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def test_minimal_and_full_configs_are_valid() -> None:
    assert validate_config(minimal()) == []
    assert validate_config(full()) == []
    assert validate_config(json.dumps(full()).encode()) == []


@pytest.mark.parametrize("missing", ["descriptor", "config", "modelfs", "modelfs.type", "modelfs.diffIds"])
def test_required_fields_are_enforced(missing: str) -> None:
    problems = validate_config(with_change(full(), missing, ...))
    assert len(problems) == 1
    assert f"'{missing.rsplit('.', 1)[-1]}' is required" in problems[0]


@pytest.mark.parametrize(
    "path",
    ["extra", "descriptor.extra", "modelfs.extra", "config.extra", "config.capabilities.extra"],
)
def test_unknown_fields_are_rejected_everywhere(path: str) -> None:
    problems = validate_config(with_change(full(), path, "x"))
    assert problems and "unknown field 'extra'" in problems[0]


def test_legacy_snake_case_keys_are_not_in_the_current_schema() -> None:
    doc = minimal()
    doc["modelfs"] = {"type": "layers", "diff_ids": [DIFF_ID]}
    problems = validate_config(doc)
    assert any("'diffIds' is required" in p for p in problems)
    assert any("unknown field 'diff_ids'" in p for p in problems)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("descriptor.version", 3.1),
        ("descriptor.revision", 1234),
        ("descriptor.docURL", ["https://x"]),
        ("descriptor.sourceURL", ["https://x"]),
        ("descriptor.family", None),
        ("descriptor.authors", "ana"),
        ("descriptor.licenses", "MIT"),
        ("descriptor.datasetsURL", "s3://b"),
        ("descriptor.authors", [1]),
        ("config.paramSize", 8),
        ("config.precision", 16),
        ("config.capabilities", []),
        ("config.capabilities.inputTypes", "text"),
        ("config.capabilities.outputTypes", "text"),
        ("config.capabilities.reasoning", "yes"),
        ("config.capabilities.toolUsage", 1),
        ("config.capabilities.reward", "false"),
        ("config.capabilities.languages", "en"),
        ("modelfs.diffIds", DIFF_ID),
        ("modelfs", []),
        ("descriptor", "x"),
    ],
)
def test_wrong_json_types_are_rejected(path: str, value: Any) -> None:
    problems = validate_config(with_change(full(), path, value))
    assert len(problems) == 1
    assert path in problems[0]
    assert "must be" in problems[0]


def test_top_level_must_be_an_object() -> None:
    assert validate_config(b"[]") == ["config blob: must be an object, got an array"]
    assert validate_config(b"{not json") != []


@pytest.mark.parametrize("value", ["layer", "Layers", ""])
def test_modelfs_type_must_be_layers(value: str) -> None:
    problems = validate_config(with_change(full(), "modelfs.type", value))
    assert problems == [f"modelfs.type: {value!r} is not one of layers"]


def test_diff_ids_need_at_least_one_item() -> None:
    problems = validate_config(with_change(full(), "modelfs.diffIds", []))
    assert problems == ["modelfs.diffIds: needs at least 1 item(s), got 0"]


def test_name_must_not_be_empty_when_present() -> None:
    problems = validate_config(with_change(full(), "descriptor.name", ""))
    assert problems == ["descriptor.name: must not be empty"]
    assert validate_config(with_change(full(), "descriptor.name", ...)) == []


@pytest.mark.parametrize("bad", ["img", "TEXT", "embeddings", ""])
def test_modalities_come_from_the_enum(bad: str) -> None:
    problems = validate_config(with_change(full(), "config.capabilities.outputTypes", ["text", bad]))
    assert len(problems) == 1 and "outputTypes[1]" in problems[0]


@pytest.mark.parametrize("lang", ["fra", "EN", "e", "en-US", "en\n", "zh_CN"])
def test_languages_are_two_lowercase_letters(lang: str) -> None:
    problems = validate_config(with_change(full(), "config.capabilities.languages", ["en", lang]))
    assert len(problems) == 1 and "languages[1]" in problems[0]


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.123456789Z",
        "2024-02-29T12:00:00+05:30",
        "1999-12-31T23:59:59-08:00",
    ],
)
def test_rfc3339_date_times_are_accepted(value: str) -> None:
    assert is_date_time(value)
    assert validate_config(with_change(full(), "descriptor.createdAt", value)) == []
    assert validate_config(with_change(full(), "config.capabilities.knowledgeCutoff", value)) == []


@pytest.mark.parametrize(
    "value",
    [
        "2024/01/01T00:00:00Z",
        "2024-01-01",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00",
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00+0100",
        "2024-01-01t00:00:00z",  # RFC 3339 allows it, Go's time.Time (the spec's reader) does not
        "2024-01-01T00:00:00Z\n",
    ],
)
def test_malformed_date_times_are_rejected(value: str) -> None:
    assert not is_date_time(value)
    problems = validate_config(with_change(full(), "descriptor.createdAt", value))
    assert len(problems) == 1 and "RFC 3339" in problems[0]
    problems = validate_config(with_change(full(), "config.capabilities.knowledgeCutoff", value))
    assert len(problems) == 1 and "knowledgeCutoff" in problems[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    doc = with_change(full(), "descriptor.version", 1)
    doc = with_change(doc, "config.capabilities.languages", ["eng"])
    doc = with_change(doc, "modelfs.diffIds", [])
    assert len(validate_config(doc)) == 3
