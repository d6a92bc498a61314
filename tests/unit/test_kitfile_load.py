"""Reading Kitfiles: strict schema, yaml.v3 (YAML 1.2) scalar rules, file lookup, layer entries, paths."""

from __future__ import annotations

import math
import re
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kitbridge.errors import KitfileError
from kitbridge.kitfile import (
    Code,
    DataSet,
    Docs,
    Kitfile,
    LayerEntry,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    clean_path,
    is_modelkit_reference,
    load_kitfile,
    read_kitfile,
    yaml12,
)


def kitfile(text: str) -> Kitfile:
    return load_kitfile(textwrap.dedent(text))


def params(yaml_text: str) -> Any:
    """The value of model.parameters for a parameters block written at column 0."""
    body = textwrap.indent(textwrap.dedent(yaml_text), "    ")
    kf = load_kitfile(f"manifestVersion: 1.0.0\nmodel:\n  parameters:\n{body}")
    assert kf.model is not None
    return kf.model.parameters


def test_load_reads_every_field_of_the_schema() -> None:
    kf = kitfile(
        """\
        manifestVersion: 1.0.0
        package:
          name: pkg
          version: 2.1.0
          description: a package
          license: MIT
          authors: [Ann, Bob]
        model:
          name: llm
          path: weights
          license: Apache-2.0
          framework: pytorch
          format: safetensors
          version: v3
          description: the model
          parts:
            - name: lora
              path: adapters/lora
              license: MIT
              type: lora
          parameters:
            temperature: 0.7
        code:
          - path: src
            description: code
            license: BSD-3-Clause
        datasets:
          - name: train
            path: data/train
            description: training data
            license: CC0-1.0
            parameters: {rows: 10}
          - name: far
            path: data/far
            remotePath: s3://bucket/far
            remoteHash: abc123
        docs:
          - path: README.md
            description: readme
        prompts:
          - name: sys
            path: prompts/system.md
            description: system prompt
        mcpServers:
          - name: fs
            path: fs.mcpb
            description: filesystem server
        """
    )
    assert kf == Kitfile(
        manifest_version="1.0.0",
        package=Package("pkg", "2.1.0", "a package", "MIT", ["Ann", "Bob"]),
        model=Model(
            name="llm",
            path="weights",
            license="Apache-2.0",
            framework="pytorch",
            format="safetensors",
            version="v3",
            description="the model",
            parts=[ModelPart("lora", "adapters/lora", "MIT", "lora")],
            parameters={"temperature": 0.7},
        ),
        code=[Code("src", "code", "BSD-3-Clause")],
        datasets=[
            DataSet("train", "data/train", "", "", "training data", "CC0-1.0", {"rows": 10}),
            DataSet("far", "data/far", "s3://bucket/far", "abc123"),
        ],
        docs=[Docs("README.md", "readme")],
        prompts=[Prompt("sys", "prompts/system.md", "system prompt")],
        mcp_servers=[McpServer("fs", "fs.mcpb", "filesystem server")],
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("1.10", "1.10"),
        ("1.0", "1.0"),
        ("0xFF", "0xFF"),
        ("true", "true"),
        ("yes", "yes"),
        ("2024-01-02", "2024-01-02"),
        ("'quoted: yes'", "quoted: yes"),
        ("~", ""),
        ("null", ""),
        ("", ""),
        ('""', ""),
        ("!!str 7", "7"),
        ("|\n    two\n    lines", "two\nlines\n"),
    ],
)
def test_typed_string_fields_take_the_literal_text(written: str, expected: str) -> None:
    kf = load_kitfile(f"manifestVersion: 1.0.0\npackage:\n  version: {written}\n")
    assert kf.package.version == expected


def test_unknown_key_names_the_key_its_line_and_the_known_keys() -> None:
    text = "manifestVersion: 1.0.0\npackage:\n  name: x\n\n# weights\nmodel:\n  pth: model.bin\n"
    with pytest.raises(KitfileError) as e:
        load_kitfile(text)
    assert e.value.message == (
        "Kitfile line 7: unknown key 'pth' in model "
        "(known: name, path, license, framework, format, version, description, parts, parameters)"
    )


def test_unknown_key_uses_the_source_name_and_entry_position() -> None:
    with pytest.raises(KitfileError, match=r"^my/Kitfile line 4: unknown key 'descr' in code\[1\] "):
        load_kitfile("code:\n  - path: a\n  - path: b\n    descr: x\n", "my/Kitfile")


def test_unknown_top_level_key_is_an_error() -> None:
    with pytest.raises(KitfileError, match="line 2: unknown key 'datasetz' at the top level"):
        load_kitfile("manifestVersion: 1.0.0\ndatasetz: []\n")


def test_layer_info_keys_are_not_accepted_from_yaml() -> None:
    with pytest.raises(KitfileError, match="unknown key 'digest' in model"):
        load_kitfile("model:\n  path: m\n  digest: sha256:00\n")


def test_keys_are_case_sensitive() -> None:
    with pytest.raises(KitfileError, match="unknown key 'ManifestVersion'"):
        load_kitfile("ManifestVersion: 1.0.0\n")


def test_mapping_where_a_string_is_expected_names_key_and_line() -> None:
    with pytest.raises(
        KitfileError, match=r"^Kitfile line 4: 'model\.parts\[0\]\.path' must be a string, got a mapping"
    ):
        load_kitfile("model:\n  parts:\n    - path:\n        nested: x\n")


def test_list_where_a_string_is_expected_is_an_error() -> None:
    with pytest.raises(KitfileError, match=r"line 2: 'package\.name' must be a string, got a list"):
        load_kitfile("package:\n  name: [a, b]\n")


def test_scalar_where_a_list_is_expected_is_an_error() -> None:
    with pytest.raises(KitfileError, match=r"line 1: 'code' must be a list, got a scalar"):
        load_kitfile("code: src\n")
    with pytest.raises(KitfileError, match=r"'package\.authors' must be a list of strings"):
        load_kitfile("package:\n  authors: Ann\n")


def test_scalar_where_a_mapping_is_expected_is_an_error() -> None:
    with pytest.raises(KitfileError, match=r"line 1: 'model' must be a mapping, got a scalar"):
        load_kitfile("model: weights.bin\n")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(KitfileError, match="must be a mapping, got a list"):
        load_kitfile("- a\n- b\n")


def test_null_sections_read_as_empty() -> None:
    kf = load_kitfile("manifestVersion: 1.0.0\npackage:\nmodel: ~\ncode:\ndocs: null\n")
    assert kf == Kitfile(manifest_version="1.0.0")


def test_an_empty_model_mapping_is_kept() -> None:
    assert load_kitfile("model: {}\n").model == Model()


def test_empty_file_is_an_error() -> None:
    with pytest.raises(KitfileError, match="is empty"):
        load_kitfile("# only a comment\n")


def test_only_the_first_document_is_read() -> None:
    assert load_kitfile("manifestVersion: 1.0.0\n---\nbogus: key\n").manifest_version == "1.0.0"


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    with pytest.raises(KitfileError, match="line 3: mapping key 'name' already defined at line 2"):
        load_kitfile("package:\n  name: a\n  name: b\n")


def test_duplicate_keys_inside_parameters_are_rejected() -> None:
    with pytest.raises(KitfileError, match="mapping key '1' already defined"):
        params("1: a\n'1': b\n")


def test_yaml_syntax_error_reports_the_line() -> None:
    with pytest.raises(
        KitfileError, match=r"^Kitfile line 4: invalid YAML: .*\(while parsing a flow sequence at line 3\)"
    ):
        load_kitfile("manifestVersion: 1.0.0\npackage:\n  authors: [a, b\n")


def test_control_characters_are_refused() -> None:
    with pytest.raises(KitfileError, match="invalid YAML"):
        load_kitfile("manifestVersion: 1.0.0\x01\n")


def test_merge_keys_are_refused() -> None:
    with pytest.raises(KitfileError, match="line 5: merge keys"):
        load_kitfile("model:\n  parameters:\n    base: &b {x: 1}\n    other:\n      <<: *b\n")


def test_aliases_are_expanded() -> None:
    assert params("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    ("written", "value"),
    [
        # YAML 1.1 booleans are plain strings under yaml.v3
        ("yes", "yes"),
        ("on", "on"),
        ("y", "y"),
        ("off", "off"),
        ("No", "No"),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("tRue", "tRue"),
        ("~", None),
        ("Null", None),
        ("NULL", None),
        ("", None),
        ("'null'", "null"),
        # Go strconv.ParseInt(s, 0, 64) after dropping underscores
        ("0xFF", 255),
        ("0o17", 15),
        ("0b101", 5),
        ("-0b11", -3),
        ("0777", 511),
        ("1_000", 1000),
        ("+5", 5),
        ("-0", 0),
        ("9007199254740993", 9007199254740993),
        ("18446744073709551615", 18446744073709551615),
        # too big for uint64: the float regexp takes it
        ("18446744073709551616", 1.8446744073709552e19),
        # "08" is no octal, but matches the float regexp
        ("08", 8.0),
        ("1e21", 1e21),
        ("1e-7", 1e-7),
        ("1.2e+3", 1200.0),
        ("12.0", 12.0),
        ("1.10", 1.1),
        (".5", 0.5),
        ("1.", 1.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
        # overflow is a Go ParseFloat error: the text stays a string
        ("1e400", "1e400"),
        ("1:20", "1:20"),
        ("0x", "0x"),
        ("._1", "._1"),
        ("'12'", "12"),
        ('"0xFF"', "0xFF"),
        ("!!str 123", "123"),
        ("!!float 1", 1.0),
        ("!!int '12'", 12),
        ("! 12", 12),
        ("!custom text", "text"),
        ("!!binary aGk=", "hi"),
        ("2001-12-14T21:59:43", "2001-12-14T21:59:43"),  # no zone: not one of yaml.v3's layouts
        ("2024-02-30", "2024-02-30"),
        ("2024-13-01", "2024-13-01"),
    ],
)
def test_plain_scalars_resolve_like_yaml_v3(written: str, value: Any) -> None:
    assert params(f"v: {written}\n") == {"v": value}
    assert type(params(f"v: {written}\n")["v"]) is type(value)


def test_nan_resolves_to_a_float_nan() -> None:
    assert math.isnan(params("v: .NaN\n")["v"])


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=timezone.utc)),
        ("2024-1-2", datetime(2024, 1, 2, tzinfo=timezone.utc)),
        (
            "2001-12-14T21:59:43.10-05:00",
            datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("2001-12-14t21:59:43Z", datetime(2001, 12, 14, 21, 59, 43, tzinfo=timezone.utc)),
        ("2001-12-14 21:59:43.5", datetime(2001, 12, 14, 21, 59, 43, 500000, tzinfo=timezone.utc)),
        (
            "2001-12-14T21:59:43,25+05:30",
            datetime(2001, 12, 14, 21, 59, 43, 250000, tzinfo=timezone(timedelta(minutes=330))),
        ),
    ],
)
def test_timestamps_become_aware_datetimes(written: str, expected: datetime) -> None:
    got = params(f"t: {written}\n")["t"]
    assert got == expected
    assert got.utcoffset() == expected.utcoffset()


def test_timestamps_python_cannot_hold_keep_gos_text() -> None:
    assert params("a: 2001-12-14T21:59:43.123456789Z\nb: 0001-01-01\n") == {
        "a": "2001-12-14T21:59:43.123456789Z",
        "b": "0001-01-01T00:00:00Z",
    }


def test_map_keys_that_are_not_strings_keep_their_written_text() -> None:
    assert params("1: a\n1.10: b\ntrue: c\n~: d\n2024-01-02: e\n") == {
        "1": "a",
        "1.10": "b",
        "true": "c",
        "~": "d",
        "2024-01-02": "e",
    }


def test_explicit_tag_that_does_not_fit_is_an_error_with_line() -> None:
    with pytest.raises(KitfileError, match=r"line 5: cannot decode !!str `abc` as a !!int"):
        params("a: 1\nb: !!int abc\n")


def test_parameters_keep_quoted_and_block_scalars_as_strings() -> None:
    assert params("a: '1.0'\nb: |\n  x\n  y\nc: >\n  folded\n  text\n") == {
        "a": "1.0",
        "b": "x\ny\n",
        "c": "folded text\n",
    }


def test_yaml12_load_reads_any_document() -> None:
    assert yaml12.load("- 0o10\n- {a: ~}\n") == [8, {"a": None}]
    assert yaml12.load("") is None


# --- files --------------------------------------------------------------------------------------------------


def test_read_kitfile_prefers_kitfile_then_lowercase_then_hidden(tmp_path: Path) -> None:
    (tmp_path / ".kitfile").write_text("manifestVersion: hidden\n")
    assert read_kitfile(tmp_path).manifest_version == "hidden"
    (tmp_path / "kitfile").write_text("manifestVersion: lower\n")
    assert read_kitfile(tmp_path).manifest_version == "lower"
    (tmp_path / "Kitfile").write_text("manifestVersion: upper\n")
    assert read_kitfile(tmp_path).manifest_version == "upper"


def test_read_kitfile_reads_a_named_file_and_names_it_in_errors(tmp_path: Path) -> None:
    f = tmp_path / "custom.yaml"
    f.write_text("manifestVersion: 1.0.0\nbad: 1\n")
    with pytest.raises(KitfileError, match="^" + re.escape(f"{f} line 2: unknown key 'bad'")):
        read_kitfile(f)


def test_read_kitfile_without_a_kitfile_says_what_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(KitfileError, match=r"no Kitfile in .*Kitfile, kitfile, \.kitfile"):
        read_kitfile(tmp_path)
    with pytest.raises(KitfileError, match="does not exist"):
        read_kitfile(tmp_path / "nope")


# --- layer entries ------------------------------------------------------------------------------------------


def test_layer_entries_follow_kits_manifest_order() -> None:
    kf = kitfile(
        """\
        mcpServers: [{name: s, path: s.mcpb}]
        prompts: [{name: p, path: p.md}]
        docs: [{path: README.md}]
        datasets:
          - {name: local, path: data/a}
          - {name: far, path: data/b, remotePath: s3://b/k, remoteHash: h}
          - {path: data/c}
        code: [{path: src}]
        model:
          name: m
          path: model.bin
          parts: [{name: tok, path: tok.json}, {path: cfg.json}]
        """
    )
    assert kf.layer_entries() == [
        LayerEntry("model", "model.bin", 0, "m"),
        LayerEntry("modelpart", "tok.json", 0, "tok"),
        LayerEntry("modelpart", "cfg.json", 1, ""),
        LayerEntry("code", "src", 0),
        LayerEntry("dataset", "data/a", 0, "local"),
        LayerEntry("dataset", "data/c", 2, ""),
        LayerEntry("docs", "README.md", 0),
        LayerEntry("prompt", "p.md", 0, "p"),
        LayerEntry("mcpserver", "s.mcpb", 0, "s"),
    ]
    assert [e.location for e in kf.layer_entries()][:3] == ["model", "model.parts[0]", "model.parts[1]"]


def test_model_without_a_local_path_gets_no_layer() -> None:
    ref = kitfile("model: {path: 'registry.example.com/org/base:v1', parts: [{path: lora}]}\n")
    assert [e.kind for e in ref.layer_entries()] == ["modelpart"]
    assert kitfile("model: {name: only-metadata}\n").layer_entries() == []


def test_layer_entry_cleans_its_path() -> None:
    assert LayerEntry("model", "./model//weights/../", 0).cleaned_path == "model"


def test_with_layer_info_sets_digest_and_diff_id_in_layer_order() -> None:
    kf = kitfile(
        "model: {path: m, parts: [{path: p}]}\ndatasets: [{path: r, remotePath: s3://b/k}, {path: d}]\n"
    )
    out = kf.with_layer_info([("sha256:1", "sha256:a"), ("sha256:2", "sha256:b"), ("sha256:3", "sha256:c")])
    assert out.model is not None
    assert (out.model.digest, out.model.diff_id) == ("sha256:1", "sha256:a")
    assert (out.model.parts[0].digest, out.model.parts[0].diff_id) == ("sha256:2", "sha256:b")
    assert out.datasets[0].digest == ""  # remote: no layer
    assert (out.datasets[1].digest, out.datasets[1].diff_id) == ("sha256:3", "sha256:c")
    assert out.layer_info() == [("sha256:1", "sha256:a"), ("sha256:2", "sha256:b"), ("sha256:3", "sha256:c")]
    assert kf.model is not None and kf.model.digest == ""  # the original is untouched


def test_with_layer_info_refuses_a_wrong_count() -> None:
    with pytest.raises(ValueError, match="1 layer entries but 2"):
        kitfile("code: [{path: a}]\n").with_layer_info([("a", "a"), ("b", "b")])


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        (".", "."),
        ("./", "."),
        ("./model", "model"),
        ("model/", "model"),
        ("a//b/./c/", "a/b/c"),
        ("src/../lib", "lib"),
        ("a/b/../../..", ".."),
        ("../x/../y", "../y"),
        ("/abs/../..", "/"),
        ("//double", "/double"),
        ("./some/meandering/../../test-path", "test-path"),
    ],
)
def test_clean_path_matches_go_filepath_clean(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


@pytest.mark.parametrize(
    ("text", "is_ref"),
    [
        ("docker.io/kit-org/kit-repo:latest", True),
        ("localhost:5000/model:v1", True),
        ("org/model:1.0", True),
        ("model:tag", True),
        ("ghcr.io/o/m@sha256:" + "a" * 64, True),
        ("sha256:" + "b" * 64, True),
        ("reg.io/o/m:t,extra", True),
        ("model", False),  # no ':' or '@'
        ("data/train.csv", False),
        ("s3://bucket/key", False),
        ("https://example.com", False),
        ("Org/Model:1", False),  # uppercase repository
        ("org/model:", False),  # empty tag
        ("org/model:bad tag", False),
        ("org/model@sha256:short", False),
        ("reg.io/-bad-:x", False),
        ("C:\\models\\m.bin", False),
    ],
)
def test_is_modelkit_reference_follows_kits_heuristic(text: str, is_ref: bool) -> None:
    assert is_modelkit_reference(text) is is_ref
