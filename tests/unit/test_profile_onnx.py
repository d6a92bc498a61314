"""ONNX ModelProto reading (profile/onnx.py) on models serialized here with a tiny protobuf writer."""

from __future__ import annotations

import contextlib
import tracemalloc
from pathlib import Path

import pytest
from mutations import mutations

from kitbridge.errors import FormatError
from kitbridge.profile.onnx import OnnxValue, onnx_type_name, read_onnx

FLOAT, INT64, FLOAT16, INT8 = 1, 7, 10, 3


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values take ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def ld(field: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def fixed32(field: int, value: int) -> bytes:
    return varint(field << 3 | 5) + value.to_bytes(4, "little")


def value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(ld(1, vint(1, d) if isinstance(d, int) else ld(2, d)) for d in dims)
    tensor_type = vint(1, elem_type) + ld(2, shape)
    return ld(1, name) + ld(2, ld(1, tensor_type))


def tensor(
    name: str, data_type: int, dims: list[int], raw: bytes | None = None, *, packed: bool = False
) -> bytes:
    head = ld(1, b"".join(varint(d) for d in dims)) if packed else b"".join(vint(1, d) for d in dims)
    out = head + vint(2, data_type) + ld(8, name)
    if raw is not None:
        out += ld(9, raw)
    return out


def model(graph: bytes, *, opsets: tuple[tuple[str, int], ...] = (("", 17),), extra: bytes = b"") -> bytes:
    out = vint(1, 8) + ld(2, "pytorch") + ld(3, "2.1.0") + ld(4, "org.example") + vint(5, 3)
    out += ld(6, "a tiny encoder")
    out += ld(7, graph)
    out += b"".join(ld(8, (ld(1, d) if d else b"") + vint(2, v)) for d, v in opsets)
    out += ld(14, ld(1, "license") + ld(2, "apache-2.0"))
    return out + extra


def _graph(raw_size: int = 4 * 384 * 4) -> bytes:
    node = ld(1, "input_ids") + ld(2, "hidden") + ld(3, "Gather_0") + ld(4, "Gather")
    return (
        ld(1, node)
        + ld(2, "main_graph")
        + ld(5, tensor("embeddings.weight", FLOAT, [4, 384], b"\0" * raw_size))
        + ld(5, tensor("pooler.bias", FLOAT, [384], b"\0" * 384 * 4, packed=True))
        + ld(11, value_info("input_ids", INT64, ["batch", "seq"]))
        + ld(12, value_info("sentence_embedding", FLOAT, ["batch", 384]))
        + ld(13, value_info("hidden", FLOAT, ["batch", "seq", 384]))  # value_info: skipped
    )


def _write(tmp_path: Path, data: bytes, name: str = "model.onnx") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_reads_model_header_signature_and_parameter_count(tmp_path: Path) -> None:
    info = read_onnx(_write(tmp_path, model(_graph(), opsets=(("", 17), ("com.microsoft", 1)))))
    assert info.ir_version == 8
    assert (info.producer_name, info.producer_version, info.domain) == ("pytorch", "2.1.0", "org.example")
    assert info.model_version == 3 and info.doc_string == "a tiny encoder"
    assert info.graph_name == "main_graph"
    assert dict(info.opsets) == {"ai.onnx": 17, "com.microsoft": 1}
    assert info.opset == 17
    assert dict(info.metadata) == {"license": "apache-2.0"}
    assert info.inputs == (OnnxValue("input_ids", "tensor", INT64, "INT64", ("batch", "seq")),)
    assert info.outputs == (OnnxValue("sentence_embedding", "tensor", FLOAT, "FLOAT", ("batch", 384)),)
    assert info.initializer_count == 2
    assert info.parameters == 4 * 384 + 384
    assert info.param_size == "1.9K"
    assert info.precision == "float32"
    assert dict(info.bytes_by_type) == {"FLOAT": (4 * 384 + 384) * 4}
    assert info.external_data == ()


def test_raw_data_is_stepped_over_not_read(tmp_path: Path) -> None:
    # dims say 4x384 but the payload is 1000 times bigger: raw_data is never looked at, so nobody notices.
    p = _write(tmp_path, model(_graph(raw_size=4 * 384 * 4 * 1000)))
    tracemalloc.start()
    try:
        info = read_onnx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.parameters == 4 * 384 + 384
    assert peak < 1024 * 1024  # the 6 MB payload was never read into memory


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path) -> None:
    graph = _graph() + ld(11, value_info("pooler.bias", FLOAT, [384]))  # IR < 4 style
    info = read_onnx(_write(tmp_path, model(graph)))
    assert [v.name for v in info.inputs] == ["input_ids"]


def test_int64_constants_are_counted_apart_and_external_data_is_named(tmp_path: Path) -> None:
    external = ld(13, ld(1, "location") + ld(2, "model.onnx_data")) + ld(13, ld(1, "offset") + ld(2, "0"))
    int8 = tensor("q.weight", INT8, [16, 16]) + external + vint(14, 1)
    half = tensor("h.weight", FLOAT16, [8]) + external + vint(14, 1)
    graph = (
        ld(5, int8)
        + ld(5, half)
        + ld(5, tensor("shape_const", INT64, [2], b"\0" * 16))
        + ld(11, value_info("x", FLOAT, [1, 16]))
        + ld(12, value_info("y", FLOAT, [1, 16]))
    )
    info = read_onnx(_write(tmp_path, model(graph)))
    assert info.parameters == 256 + 8
    assert info.constants == 2
    assert dict(info.parameters_by_type) == {"INT8": 256, "FLOAT16": 8}
    assert info.precision == "int8,float16"
    assert info.external_data == ("model.onnx_data",)


def test_unknown_dims_and_unknown_fields_are_tolerated(tmp_path: Path) -> None:
    no_shape = ld(1, "mask") + ld(2, ld(1, vint(1, 9)))  # a bool tensor of unknown rank
    odd_dim = ld(1, "x") + ld(2, ld(1, vint(1, FLOAT) + ld(2, ld(1, ld(3, "denotation")))))
    seq = ld(1, "seq") + ld(2, ld(4, ld(1, ld(1, vint(1, FLOAT)))))
    graph = ld(11, no_shape) + ld(11, odd_dim) + ld(12, seq) + fixed32(99, 7) + vint(98, 1)
    info = read_onnx(_write(tmp_path, model(graph, extra=ld(20, b"training info") + fixed32(77, 1))))
    assert info.inputs[0] == OnnxValue("mask", "tensor", 9, "BOOL", None)
    assert info.inputs[1].shape == (None,)
    assert info.outputs[0].kind == "sequence" and info.outputs[0].elem_type is None
    assert info.parameters == 0 and info.param_size == "0K"


def test_type_names() -> None:
    assert onnx_type_name(1) == "FLOAT"
    assert onnx_type_name(16) == "BFLOAT16"
    assert onnx_type_name(7) == "INT64"
    assert onnx_type_name(10) == "FLOAT16"
    assert onnx_type_name(3) == "INT8"
    assert onnx_type_name(500) == "type500"


def _bad(tmp_path: Path, data: bytes, fragment: str) -> None:
    p = _write(tmp_path, data, "bad.onnx")
    with pytest.raises(FormatError, match=fragment) as e:
        read_onnx(p)
    assert e.value.hint


def test_truncated_model_is_a_format_error(tmp_path: Path) -> None:
    data = model(_graph())
    for cut in (3, 40, len(data) // 2, len(data) - 5):
        _bad(tmp_path, data[:cut], "not a valid ONNX model")


def test_junk_is_a_format_error(tmp_path: Path) -> None:
    _bad(tmp_path, b"PK\x03\x04 this is a zip, not a model" * 4, "not a valid ONNX model")
    _bad(tmp_path, b"\xff" * 11, "longer than 10 bytes")
    _bad(tmp_path, b"\x0b\x00", "not valid here")  # wire type 3 (groups) are not ONNX
    _bad(tmp_path, b"", "no ir_version or no graph")


def test_model_without_graph_is_a_format_error(tmp_path: Path) -> None:
    _bad(tmp_path, vint(1, 8) + ld(2, "pytorch"), "no ir_version or no graph")


def test_wrong_wire_type_for_a_known_field_is_a_format_error(tmp_path: Path) -> None:
    _bad(tmp_path, ld(1, "eight") + ld(7, b""), "ir_version has wire type 2")


def test_length_past_the_enclosing_message_is_a_format_error(tmp_path: Path) -> None:
    inner = ld(2, "main_graph")
    # The graph claims 2 bytes fewer than its name field needs.
    broken = varint(7 << 3 | 2) + varint(len(inner) - 2) + inner
    _bad(tmp_path, vint(1, 8) + broken, "runs past the end of its message")


@pytest.mark.parametrize("location", ["../secrets.bin", "/etc/passwd", "a/../../b", "C:\\\\w.bin", ""])
def test_external_data_outside_the_model_folder_is_a_format_error(tmp_path: Path, location: str) -> None:
    external = ld(13, ld(1, "location") + ld(2, location))
    graph = ld(5, tensor("w", FLOAT, [4]) + external + vint(14, 1))
    _bad(tmp_path, model(graph), "outside the model folder")


def test_corrupted_files_raise_only_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "fuzzed"
    for data in mutations(model(_graph(raw_size=64 * 4)), 400, seed=7):
        p.write_bytes(data)
        with contextlib.suppress(FormatError):
            read_onnx(p)
