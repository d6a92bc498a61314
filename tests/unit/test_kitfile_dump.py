"""Writing Kitfiles as YAML in kit's (yaml.v3) style, and reading them back unchanged."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kitbridge.kitfile import (
    Code,
    DataSet,
    Docs,
    Kitfile,
    McpServer,
    Model,
    ModelPart,
    Package,
    Prompt,
    dump_kitfile,
    kitfile_json,
    load_kitfile,
)
from kitbridge.kitfile.dump import format_float, sorted_keys


def test_dump_writes_kits_layout_order_and_quoting() -> None:
    kf = Kitfile(
        manifest_version="1.0.0",
        package=Package(name="demo", version="1.0", authors=["Ana", "Bo, Jr."]),
        model=Model(
            name="m",
            path="weights/",
            version="2024-01-02",
            description="line one\nline two\n",
            parts=[ModelPart(name="lora", path="lora", type="lora")],
            parameters={
                "when": datetime(2024, 1, 2, tzinfo=timezone.utc),
                "b": [1, "yes", 2.5],
                "nested": {"k": ""},
                "a10": True,
                "a9": None,
            },
        ),
        code=[Code(path="src", description="a: b")],
        datasets=[DataSet(name="d", path="data", parameters=[])],
        docs=[Docs(path=""), Docs(path="README.md", description="#1 doc")],
        prompts=[Prompt(path="p.md", description=" lead")],
        mcp_servers=[McpServer(name="fs", path="fs.mcpb", description="tab\there")],
    )
    assert dump_kitfile(kf) == (
        "manifestVersion: 1.0.0\n"
        "package:\n"
        "  name: demo\n"
        '  version: "1.0"\n'
        "  authors: [Ana, 'Bo, Jr.']\n"
        "model:\n"
        "  name: m\n"
        "  path: weights/\n"
        '  version: "2024-01-02"\n'
        "  description: |\n"
        "    line one\n"
        "    line two\n"
        "  parts:\n"
        "    - name: lora\n"
        "      path: lora\n"
        "      type: lora\n"
        "  parameters:\n"
        "    a9: null\n"
        "    a10: true\n"
        "    b:\n"
        "      - 1\n"
        '      - "yes"\n'
        "      - 2.5\n"
        "    nested:\n"
        '      k: ""\n'
        "    when: 2024-01-02T00:00:00Z\n"
        "code:\n"
        "  - path: src\n"
        "    description: 'a: b'\n"
        "datasets:\n"
        "  - name: d\n"
        "    path: data\n"
        "    parameters: []\n"
        "docs:\n"
        '  - path: ""\n'
        "  - path: README.md\n"
        "    description: '#1 doc'\n"
        "prompts:\n"
        "  - path: p.md\n"
        "    description: ' lead'\n"
        "mcpServers:\n"
        "  - name: fs\n"
        "    path: fs.mcpb\n"
        '    description: "tab\\there"\n'
    )


def test_dump_of_an_empty_kitfile_keeps_only_the_version() -> None:
    assert dump_kitfile(Kitfile()) == 'manifestVersion: ""\n'
    assert (
        dump_kitfile(Kitfile(manifest_version="1.0.0", model=Model()))
        == "manifestVersion: 1.0.0\nmodel: {}\n"
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("1.0", '"1.0"'),
        ("1.10", '"1.10"'),
        ("yes", '"yes"'),
        ("Off", '"Off"'),
        ("y", '"y"'),
        ("true", '"true"'),
        ("0xFF", '"0xFF"'),
        ("0777", '"0777"'),
        ("1_000", '"1_000"'),
        ("12e3", '"12e3"'),
        (".inf", '".inf"'),
        ("2024-01-02", '"2024-01-02"'),
        ("1:20", '"1:20"'),
        ("~", '"~"'),
        ("null", '"null"'),
        ("<<", '"<<"'),
        ("- x", "'- x'"),
        ("-x", "-x"),
        ("x #y", "'x #y'"),
        ("x#y", "x#y"),
        ("end:", "'end:'"),
        ("a:b", "a:b"),
        ("---x", "'---x'"),
        ("@home", "'@home'"),
        ("it's", "it's"),
        ("'q'", "'''q'''"),
        ("a\tb", '"a\\tb"'),
        ("\x7f", '"\\x7F"'),
        ("nul\x00", '"nul\\0"'),
        ("\ufeffbom", '"\\uFEFFbom"'),
        ("\u2028", '"\\L"'),
        ("r\rn", '"r\\rn"'),
        ("🚀", '"\\U0001F680"'),
        ("é ü 模型", "é ü 模型"),
        ("a \nb", '"a \\nb"'),
        ("a\r\nb", '"a\\r\\nb"'),
    ],
)
def test_strings_are_quoted_when_they_would_read_back_differently(value: str, written: str) -> None:
    text = dump_kitfile(Kitfile(package=Package(name=value)))
    assert text == f'manifestVersion: ""\npackage:\n  name: {written}\n'
    assert load_kitfile(text).package.name == value


@pytest.mark.parametrize(
    ("value", "block"),
    [
        ("a\nb", "|-\n    a\n    b\n"),
        ("a\nb\n", "|\n    a\n    b\n"),
        ("a\n\n", "|+\n    a\n\n"),
        ("\n", "|2+\n\n"),
        (" a\nb", "|2-\n     a\n    b\n"),
        ("\nx", "|2-\n\n    x\n"),
        ("a\n\n  b\n", "|\n    a\n\n      b\n"),
    ],
)
def test_multiline_strings_are_literal_blocks(value: str, block: str) -> None:
    text = dump_kitfile(Kitfile(package=Package(description=value)))
    assert text == f'manifestVersion: ""\npackage:\n  description: {block}'
    assert load_kitfile(text).package.description == value


def test_authors_use_flow_style_and_quote_flow_indicators() -> None:
    text = dump_kitfile(Kitfile(package=Package(authors=["A <a@x.org>", "B & Co", "x:y", "", "two\nlines"])))
    assert (
        text
        == 'manifestVersion: ""\npackage:\n  authors: [A <a@x.org>, B & Co, \'x:y\', "", "two\\nlines"]\n'
    )
    assert load_kitfile(text).package.authors == ["A <a@x.org>", "B & Co", "x:y", "", "two\nlines"]


def test_map_keys_use_yaml_v3_natural_order() -> None:
    assert sorted_keys(["b", "a10", "a9", "A", "_x", "10", "9", "é"]) == [
        "_x",
        "9",
        "10",
        "A",
        "a9",
        "a10",
        "b",
        "é",
    ]


def test_long_and_multiline_keys_use_explicit_key_syntax() -> None:
    long_key = "k" * 129
    kf = Kitfile(model=Model(parameters={long_key: 1, "two\nlines": {"x": 1}}))
    text = dump_kitfile(kf)
    assert f'  parameters:\n    ? "{long_key}"\n    : 1\n' in text
    assert '    ? "two\\nlines"\n    :\n      x: 1\n' in text
    assert load_kitfile(text) == kf


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (1200.0, "1200"),
        (12.0, "12"),
        (0.1, "0.1"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
        (-0.0, "-0.0"),
        (float("inf"), ".inf"),
        (float("-inf"), "-.inf"),
    ],
)
def test_floats_are_written_like_go_strconv_g(value: float, written: str) -> None:
    assert format_float(value) == written


def test_nan_is_written_as_dot_nan() -> None:
    assert format_float(float("nan")) == ".nan"


def test_times_are_written_as_rfc3339_and_read_back_with_their_offset() -> None:
    t = datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=timezone(timedelta(hours=-5)))
    kf = Kitfile(model=Model(parameters={"t": t}))
    text = dump_kitfile(kf)
    assert "    t: 2001-12-14T21:59:43.1-05:00\n" in text
    back = load_kitfile(text).model
    assert back is not None and back.parameters["t"].utcoffset() == timedelta(hours=-5)


# Shapes of real Kitfiles (kit's own testdata uses these), with our own values.
SHAPES = [
    "manifestVersion: 1.0.0\npackage: {name: shape-a}\nmodel: {name: m, path: model}\n"
    "datasets: [{name: train, path: data/train}]\ndocs: [{path: README.md}]\n"
    "code: [{path: ., description: everything else}]\n",
    "manifestVersion: 1.0.0\npackage: {name: shape-b, license: MIT}\n"
    "model:\n  name: base\n  path: model\n  license: MIT\n  parts:\n"
    "    - {name: lora, path: model/adapters/lora, type: lora-adapter, license: CC-BY-4.0}\n"
    "    - {name: tokenizer, path: tokenizer.json, type: tokenizer}\n    - {path: weights/extra/p3.bin}\n"
    "docs:\n  - {path: README.md, description: Readme}\n  - {path: LICENSE, description: License}\n"
    "  - {path: docs}\n",
    "manifestVersion: 1.0.0\npackage:\n  name: shape-c\n  version: 1.0.0\n  description: One file\n"
    "  authors: [Golden Tester]\nmodel: {name: tiny, path: model.gguf, framework: llama.cpp, format: gguf}\n",
    "manifestVersion: 1.0.0\npackage: {name: shape-d}\nmodel: {name: pf, path: ./model//weights/../}\n"
    "docs: [{path: ./README.md}]\n",
    "manifestVersion: 1.0.0\npackage: {name: 'données'}\nmodel: {name: uni, path: model}\n"
    "datasets: [{name: données, path: données}]\n",
    "manifestVersion: 1.0.0\npackage:\n  name: shape-e\n  version: '2.0'\n"
    '  description: "Escapes: <t> & \\"q\\" \\u2014 \\u2028 end"\n  authors: [A <a@b.c>, "B & C"]\n'
    "model:\n  path: m.bin\n  version: '1.0'\n  parameters:\n    zeta: z\n    Alpha: a\n    '10': ten\n"
    "    ints: {hex: 0xFF, big: 9007199254740993, neg: -17}\n"
    "    floats: {e: 1.2e+3, tiny: 1e-7, huge: 1e21, whole: 12.0, nz: -0.0, v: 1.10}\n"
    "    bools: {t: true, y: yes, o: on, q: 'true'}\n    nulls: {a: ~, b: null, c: }\n"
    '    strings: {d: 2024-01-02, dt: 2001-12-14T21:59:43.10-05:00, lit: "a\\nb\\n", c: "\\x01\\x7f"}\n'
    "    lists: [1, two, 3.5, [n, l], {k: v}, [], {}]\n"
    "datasets:\n  - {name: p, path: data.csv, parameters: {split: [0.8, 0.1, 0.1], shuffle: true}}\n",
    "manifestVersion: 1.0.0\nprompts: [{path: CLAUDE.md}, {name: s, path: prompts-dir/, description: d}]\n"
    "mcpServers: [{name: fs, path: fs.mcpb}]\n"
    "datasets: [{path: d, remotePath: 's3://b/k', remoteHash: h}, {path: e, remotePath: 'r.io/o/d:1'}]\n",
]


@pytest.mark.parametrize("text", SHAPES)
def test_real_kitfile_shapes_round_trip(text: str) -> None:
    kf = load_kitfile(text)
    again = load_kitfile(dump_kitfile(kf))
    assert again == kf
    assert kitfile_json(again) == kitfile_json(kf)
    assert dump_kitfile(again) == dump_kitfile(kf)


# --- round-trip property over generated Kitfiles -----------------------------------------------------------

_PIECES = [
    *" :#-?'\"\\\n\t\r\x00\x7f\x85\u2028\u2029é🚀\ufeff[]{},&*!|>%@`0123456789.ex_~ynoTZ+<=",
    "a",
    "yes",
    "null",
    "0x",
    "1.0",
    "- ",
    ": ",
    " #",
    "---",
    "<<",
    "\n\n",
    "  ",
    "2024-01-02",
]


def _text(r: random.Random) -> str:
    return "".join(r.choice(_PIECES) for _ in range(r.randint(0, 8)))


def _scalar(r: random.Random) -> Any:
    c = r.randint(0, 9)
    if c == 0:
        return None
    if c == 1:
        return r.choice([True, False])
    if c == 2:
        return r.randint(-(2**63), 2**64 - 1)
    if c == 3:
        return r.choice(
            [0.0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 12.0, 0.1, 1234567.0, r.random()]
        )
    if c == 4:
        tz = r.choice([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(minutes=-330))])
        return datetime(
            r.randint(1000, 9999), r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), tzinfo=tz
        )
    return _text(r)


def _value(r: random.Random, depth: int = 0) -> Any:
    c = r.randint(0, 5) if depth < 3 else 5
    if c == 0:
        return [_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    if c == 1:
        return {
            _text(r) if r.random() < 0.9 else "k" * r.randint(120, 140): _value(r, depth + 1)
            for _ in range(4)
        }
    return _scalar(r)


def _kitfile(r: random.Random) -> Kitfile:
    def s() -> str:
        return _text(r) if r.random() < 0.7 else ""

    def n(most: int) -> range:
        return range(r.randint(0, most))

    model = None
    if r.random() < 0.7:
        model = Model(
            name=s(),
            path=s(),
            license=s(),
            framework=s(),
            format=s(),
            version=s(),
            description=s(),
            parts=[ModelPart(s(), s(), s(), s()) for _ in n(2)],
            parameters=_value(r) if r.random() < 0.7 else None,
        )
    return Kitfile(
        manifest_version=s(),
        package=Package(s(), s(), s(), s(), [_text(r) for _ in n(3)]),
        model=model,
        code=[Code(s(), s(), s()) for _ in n(2)],
        datasets=[
            DataSet(s(), s(), s(), s(), s(), s(), parameters=_value(r) if r.random() < 0.5 else None)
            for _ in n(2)
        ],
        docs=[Docs(s(), s()) for _ in n(2)],
        prompts=[Prompt(s(), s(), s()) for _ in n(2)],
        mcp_servers=[McpServer(s(), s(), s()) for _ in n(2)],
    )


@pytest.mark.parametrize("seed", range(0, 400, 40))
def test_dump_then_load_gives_back_the_same_kitfile(seed: int) -> None:
    for s in range(seed, seed + 40):
        kf = _kitfile(random.Random(s))
        text = dump_kitfile(kf)
        back = load_kitfile(text)
        assert back == kf, f"seed {s}:\n{text}"
        assert kitfile_json(back) == kitfile_json(kf), f"seed {s}:\n{text}"
