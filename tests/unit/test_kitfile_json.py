"""The Kitfile's JSON form: byte-exact Go json.Marshal of kit's struct, and reading config blobs back."""

from __future__ import annotations

import math

import pytest

from kitbridge.errors import KitfileError
from kitbridge.kitfile import (
    Docs,
    Kitfile,
    Model,
    Package,
    dump_kitfile,
    kitfile_from_config_json,
    kitfile_json,
    load_kitfile,
)

RICH_KITFILE = """\
manifestVersion: 1.0.0
package:
  name: demo-kit
  version: 1.10
  description: "Tags <b> & \\"q\\" \\u2028 é"
  license: Apache-2.0
  authors: [Ana <ana@example.org>, "Bo & Co"]
model:
  name: demo
  path: ./weights/
  framework: transformers
  format: safetensors
  version: 0.3
  parts:
    - name: adapter
      path: weights/lora
      type: lora.v2
    - path: tok.json
  parameters:
    b_int: 0x1F
    a_float: 2.50
    big: 1e21
    small: 0.0000005
    octal: 0755
    legacy: on
    when: 2023-06-01
    at: 2023-06-01T08:30:00.250+02:00
    nothing: ~
    "7": seven
    "10": ten
    list: [1, two, 3.0, {x: y}]
code:
  - path: src
    description: Training code
    license: MIT
datasets:
  - name: train
    path: data/train.csv
    parameters: {split: 0.9}
  - name: remote
    path: data/big
    remotePath: s3://bucket/big
    remoteHash: sha256:abc
docs:
  - path: README.md
  - path: ""
prompts:
  - name: system
    path: prompts/system.md
    description: System prompt
mcpServers:
  - name: fs
    path: servers/fs.mcpb
"""

# Worked out from the rules: struct order, omitempty (but docs[].path), Go escaping of < > & U+2028,
# map keys sorted bytewise, 0x1F=31, 0755=493, 2.50=2.5, 3.0=3, 1e21=1e+21, 5e-7 in exponent form,
# dates as RFC 3339 with the fraction trimmed, paths as written.
RICH_JSON = (
    b'{"manifestVersion":"1.0.0",'
    b'"package":{"name":"demo-kit","version":"1.10",'
    b'"description":"Tags \\u003cb\\u003e \\u0026 \\"q\\" \\u2028 \xc3\xa9","license":"Apache-2.0",'
    b'"authors":["Ana \\u003cana@example.org\\u003e","Bo \\u0026 Co"]},'
    b'"model":{"name":"demo","path":"./weights/","framework":"transformers","format":"safetensors",'
    b'"version":"0.3","parts":[{"name":"adapter","path":"weights/lora","type":"lora.v2"},{"path":"tok.json"}],'
    b'"parameters":{"10":"ten","7":"seven","a_float":2.5,"at":"2023-06-01T08:30:00.25+02:00","b_int":31,'
    b'"big":1e+21,"legacy":"on","list":[1,"two",3,{"x":"y"}],"nothing":null,"octal":493,"small":5e-7,'
    b'"when":"2023-06-01T00:00:00Z"}},'
    b'"code":[{"path":"src","description":"Training code","license":"MIT"}],'
    b'"datasets":[{"name":"train","path":"data/train.csv","parameters":{"split":0.9}},'
    b'{"name":"remote","path":"data/big","remotePath":"s3://bucket/big","remoteHash":"sha256:abc"}],'
    b'"docs":[{"path":"README.md"},{"path":""}],'
    b'"prompts":[{"name":"system","path":"prompts/system.md","description":"System prompt"}],'
    b'"mcpServers":[{"name":"fs","path":"servers/fs.mcpb"}]}'
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def test_rich_kitfile_json_is_byte_exact() -> None:
    assert kitfile_json(load_kitfile(RICH_KITFILE)) == RICH_JSON


def test_empty_package_is_still_written() -> None:
    assert (
        kitfile_json(load_kitfile("manifestVersion: 1.0.0\n")) == b'{"manifestVersion":"1.0.0","package":{}}'
    )
    assert kitfile_json(Kitfile()) == b'{"manifestVersion":"","package":{}}'


def test_layer_info_goes_last_in_each_entry() -> None:
    kf = load_kitfile(
        "manifestVersion: 1.0.0\nmodel: {name: m, path: m, parts: [{path: p}]}\ndocs: [{path: d}]\n"
    )
    kf = kf.with_layer_info([(D1, D1), (D2, D2), (D3, "sha256:" + "f" * 64)])
    assert kitfile_json(kf) == (
        b'{"manifestVersion":"1.0.0","package":{},"model":{"name":"m","path":"m","parts":[{"path":"p",'
        b'"digest":"' + D2.encode() + b'","diffId":"' + D2.encode() + b'"}],'
        b'"digest":"' + D1.encode() + b'","diffId":"' + D1.encode() + b'"},'
        b'"docs":[{"path":"d","digest":"' + D3.encode() + b'","diffId":"sha256:' + b"f" * 64 + b'"}]}'
    )


@pytest.mark.parametrize(
    ("parameters", "json_tail"),
    [
        ("", b'"model":{"path":"m"}}'),
        ("\n  parameters: ~", b'"model":{"path":"m"}}'),
        ("\n  parameters: {}", b'"model":{"path":"m","parameters":{}}}'),
        ("\n  parameters: []", b'"model":{"path":"m","parameters":[]}}'),
        ('\n  parameters: ""', b'"model":{"path":"m","parameters":""}}'),
        ("\n  parameters: false", b'"model":{"path":"m","parameters":false}}'),
        ("\n  parameters: |\n    text", b'"model":{"path":"m","parameters":"text\\n"}}'),
    ],
)
def test_parameters_are_left_out_only_when_null(parameters: str, json_tail: bytes) -> None:
    kf = load_kitfile(f"manifestVersion: 1.0.0\nmodel:\n  path: m{parameters}\n")
    assert kitfile_json(kf) == b'{"manifestVersion":"1.0.0","package":{},' + json_tail


def test_an_empty_model_is_written_as_an_empty_object() -> None:
    assert kitfile_json(Kitfile(manifest_version="1.0.0", model=Model())).endswith(b',"model":{}}')


def test_docs_path_is_written_even_when_empty() -> None:
    assert kitfile_json(Kitfile(docs=[Docs()])) == b'{"manifestVersion":"","package":{},"docs":[{"path":""}]}'


def test_go_float_and_string_forms() -> None:
    kf = Kitfile(
        model=Model(
            parameters={
                "f": [1200.0, 12.0, -0.0, 1e-6, 1e-7, 123456789012345680000.0, 1e21, 0.1],
                "s": "\b\f\n\r\t\x01\x7f\u2029</",
            }
        )
    )
    assert kitfile_json(kf) == (
        b'{"manifestVersion":"","package":{},"model":{"parameters":{'
        b'"f":[1200,12,-0,0.000001,1e-7,123456789012345680000,1e+21,0.1],'
        b'"s":"\\b\\f\\n\\r\\t\\u0001\x7f\\u2029\\u003c/"}}}'
    )


def test_non_finite_parameters_cannot_be_written() -> None:
    with pytest.raises(KitfileError, match="cannot be written as JSON"):
        kitfile_json(Kitfile(model=Model(parameters={"x": math.inf})))


# --- reading config blobs back ----------------------------------------------------------------------------


def test_config_json_reads_back_to_the_same_bytes() -> None:
    kf = load_kitfile(RICH_KITFILE)
    entries = kf.layer_entries()
    config = kitfile_json(kf.with_layer_info([(D1, D2)] * len(entries)))
    back = kitfile_from_config_json(config)
    assert kitfile_json(back) == config
    assert back.layer_info() == [(D1, D2)] * len(entries)
    assert back.package == Package(
        "demo-kit", "1.10", 'Tags <b> & "q" \u2028 é', "Apache-2.0", ["Ana <ana@example.org>", "Bo & Co"]
    )


def test_config_json_keeps_number_forms() -> None:
    config = (
        b'{"manifestVersion":"1.0.0","package":{},"model":{"parameters":[9007199254740993,-0,1e+21,0.5]}}'
    )
    back = kitfile_from_config_json(config)
    assert back.model is not None
    assert back.model.parameters == [9007199254740993, 0.0, 1e21, 0.5]
    assert kitfile_json(back) == config


def test_config_json_read_back_dumps_to_an_equivalent_kitfile() -> None:
    config = kitfile_json(load_kitfile(RICH_KITFILE))
    back = kitfile_from_config_json(config)
    assert kitfile_json(load_kitfile(dump_kitfile(back))) == config


def test_config_json_ignores_unknown_keys_and_matches_case_insensitively_like_go() -> None:
    back = kitfile_from_config_json(
        b'{"manifestVersion":"1.0.0","future":{"x":1},"Package":{"Name":"p"},'
        b'"code":[{"path":"src","extra":true}],"docs":null}'
    )
    assert back == Kitfile(manifest_version="1.0.0", package=Package(name="p"), code=back.code)
    assert back.code[0].path == "src"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "'config' must be an object"),
        (b'{"manifestVersion": 1}', "'manifestVersion' must be a string, got a number"),
        (b'{"package": {"authors": "Ann"}}', "'package.authors' must be an array of strings"),
        (
            b'{"model": {"parts": [{"path": ["x"]}]}}',
            r"'model.parts\[0\].path' must be a string, got an array",
        ),
        (b'{"code": {"path": "x"}}', "'code' must be an array, got an object"),
        (b'{"model": {"parameters": NaN}}', "not valid JSON"),
        (b'{"model": {"parameters": 1e999}}', "out of range"),
        (b'{"docs": [7]}', r"'docs\[0\]' must be an object"),
    ],
)
def test_config_json_junk_is_a_kitfile_error(data: bytes, message: str) -> None:
    with pytest.raises(KitfileError, match=message):
        kitfile_from_config_json(data)
