"""GGUF header, metadata and tensor-table reading (profile/gguf.py), on files written byte by byte here."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
from pathlib import Path

import pytest
from mutations import mutations

from kitbridge.errors import FormatError
from kitbridge.profile.gguf import GgufArray, quantization_name, read_gguf

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {
    U8: "B",
    I8: "b",
    U16: "H",
    I16: "h",
    U32: "I",
    I32: "i",
    F32: "f",
    BOOL: "?",
    U64: "Q",
    I64: "q",
    F64: "d",
}
# ggml types used below: (id, elements per block, bytes per block).
Q4_K, Q6_K, GF32 = (12, 256, 144), (14, 256, 210), (0, 1, 4)


class _Writer:
    """Just enough of a GGUF writer to make test files."""

    def __init__(self, endian: str = "<", version: int = 3) -> None:
        self.e, self.version = endian, version
        self.kvs: list[bytes] = []
        self.tensors: list[tuple[str, list[int], tuple[int, int, int]]] = []

    def s(self, text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return struct.pack(self.e + "Q", len(raw)) + raw

    def value(self, vtype: int, value: object) -> bytes:
        if vtype == STRING:
            assert isinstance(value, (str, bytes))
            return self.s(value)
        if vtype == ARRAY:
            assert isinstance(value, tuple)
            item_type, items = value
            out = struct.pack(self.e + "IQ", item_type, len(items))
            return out + b"".join(self.value(item_type, v) for v in items)
        return struct.pack(self.e + _FMT[vtype], value)

    def kv(self, key: str, vtype: int, value: object) -> _Writer:
        self.kvs.append(self.s(key) + struct.pack(self.e + "I", vtype) + self.value(vtype, value))
        return self

    def tensor(self, name: str, shape: list[int], ggml: tuple[int, int, int]) -> _Writer:
        self.tensors.append((name, shape, ggml))
        return self

    def build(self, *, offsets: list[int] | None = None, data_pad: int = 0) -> bytes:
        out = b"GGUF" + struct.pack(self.e + "IQQ", self.version, len(self.tensors), len(self.kvs))
        out += b"".join(self.kvs)
        offset, sizes = 0, []
        for i, (name, shape, (type_id, block, type_size)) in enumerate(self.tensors):
            n = 1
            for d in shape:
                n *= d
            size = n // block * type_size
            sizes.append(size)
            at = offsets[i] if offsets else offset
            out += self.s(name) + struct.pack(self.e + "I", len(shape))
            out += b"".join(struct.pack(self.e + "Q", d) for d in shape)
            out += struct.pack(self.e + "IQ", type_id, at)
            offset = -(-(offset + size) // 32) * 32
        out += b"\0" * (-len(out) % 32)
        return out + b"\x11" * (offset + data_pad)


def _tiny(endian: str = "<", tokens: int = 1000) -> bytes:
    w = _Writer(endian)
    w.kv("general.architecture", STRING, "llama").kv("general.name", STRING, "Tiny Llama")
    w.kv("general.file_type", U32, 15).kv("general.license", STRING, "apache-2.0")
    w.kv("general.alignment", U32, 32)
    w.kv("llama.context_length", U32, 2048).kv("llama.embedding_length", U64, 64)
    w.kv("llama.block_count", U32, 2).kv("llama.rope.freq_base", F32, 10000.0)
    w.kv("llama.use_parallel_residual", BOOL, True).kv("general.bias", I8, -3).kv("general.f64", F64, 0.5)
    w.kv("tokenizer.ggml.tokens", ARRAY, (STRING, [f"tok{i}" for i in range(tokens)]))
    w.kv("tokenizer.ggml.scores", ARRAY, (F32, [float(i) for i in range(tokens)]))
    w.kv("nested", ARRAY, (ARRAY, [(U8, [1, 2]), (U8, [3])]))
    w.tensor("token_embd.weight", [256, 10], Q4_K)
    w.tensor("blk.0.attn_norm.weight", [64], GF32)
    w.tensor("output.weight", [256, 4], Q6_K)
    return w.build()


def _write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_reads_header_metadata_and_tensor_table(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, _tiny()))
    assert (info.version, info.byte_order, info.tensor_count, info.kv_count) == (3, "little", 3, 15)
    assert info.architecture == "llama"
    assert info.name == "Tiny Llama"
    assert info.license == "apache-2.0"
    assert info.file_type == 15 and info.quantization == "Q4_K_M"
    assert (info.context_length, info.embedding_length, info.block_count) == (2048, 64, 2)
    assert info.parameters == 2560 + 64 + 1024
    assert info.param_size == "3.6K"
    assert dict(info.bytes_by_type) == {"Q4_K": 1440, "F32": 256, "Q6_K": 840}
    assert info.precision == "int4,int6,float32"
    assert [t.name for t in info.tensors] == ["token_embd.weight", "blk.0.attn_norm.weight", "output.weight"]
    assert info.tensors[2].offset == 1696 and info.tensors[2].type_name == "Q6_K"
    assert info.metadata["llama.rope.freq_base"] == 10000.0
    assert info.metadata["llama.use_parallel_residual"] is True
    assert info.metadata["general.bias"] == -3
    assert info.data_offset % 32 == 0


def test_huge_arrays_keep_a_count_and_a_sample(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, _tiny(tokens=200_000)))
    tokens = info.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GgufArray)
    assert tokens.item_type == "string" and tokens.count == 200_000
    assert tokens.head == tuple(f"tok{i}" for i in range(16))
    scores = info.metadata["tokenizer.ggml.scores"]
    assert isinstance(scores, GgufArray) and scores.count == 200_000 and len(scores.head) == 16
    nested = info.metadata["nested"]
    assert isinstance(nested, GgufArray) and nested.count == 2
    assert nested.head == (GgufArray("uint8", 2, (1, 2)), GgufArray("uint8", 1, (3,)))


def test_huge_arrays_are_not_materialised(tmp_path: Path) -> None:
    p = _write(tmp_path, _tiny(tokens=100_000))
    tracemalloc.start()
    try:
        read_gguf(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # 100k token strings as Python objects: about 6 MB; the read buffer: 1 MiB


def test_big_endian_files_are_read(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, _tiny(">")))
    assert info.byte_order == "big"
    assert info.quantization == "Q4_K_M" and info.parameters == 3648


def test_quantization_names_follow_llama_ftype() -> None:
    expected = {0: "F32", 1: "F16", 2: "Q4_0", 7: "Q8_0", 10: "Q2_K", 15: "Q4_K_M", 18: "Q6_K", 32: "BF16"}
    for ftype, name in expected.items():
        assert quantization_name(ftype) == name
    assert quantization_name(1024 | 17) == "Q5_K_M"  # the "guessed" flag
    assert quantization_name(999) == "ftype999"


def test_file_without_file_type_has_no_quantization(tmp_path: Path) -> None:
    w = _Writer().kv("general.architecture", STRING, "bert").tensor("w", [4], GF32)
    info = read_gguf(_write(tmp_path, w.build()))
    assert info.quantization is None and info.context_length is None and info.precision == "float32"


def _bad(tmp_path: Path, data: bytes, fragment: str) -> None:
    p = _write(tmp_path, data, "bad.gguf")
    with pytest.raises(FormatError, match=fragment) as e:
        read_gguf(p)
    assert e.value.hint


def test_wrong_magic_is_a_format_error(tmp_path: Path) -> None:
    _bad(tmp_path, b"GGML" + b"\0" * 60, "does not start with 'GGUF'")
    _bad(tmp_path, b"GG", "does not start with 'GGUF'")


def test_version_1_and_unknown_versions_are_format_errors(tmp_path: Path) -> None:
    _bad(tmp_path, _Writer(version=1).build(), "version 1 is not supported")
    _bad(tmp_path, _Writer(version=9).build(), "unknown GGUF version 9")


def test_truncated_files_are_format_errors(tmp_path: Path) -> None:
    data = _tiny()
    for cut in (10, 30, 200, 9000, len(data) - 100):
        _bad(tmp_path, data[:cut], "not a valid GGUF file")


def test_impossible_counts_are_format_errors(tmp_path: Path) -> None:
    _bad(tmp_path, b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0), "cannot fit")
    w = _Writer().kv("tokenizer.ggml.tokens", ARRAY, (STRING, []))
    data = bytearray(w.build())
    at = data.index(struct.pack("<IQ", STRING, 0))
    data[at + 4 : at + 12] = struct.pack("<Q", 2**40)
    _bad(tmp_path, bytes(data), "claims 1099511627776 items")


def test_unknown_value_type_is_a_format_error(tmp_path: Path) -> None:
    w = _Writer()
    w.kvs.append(w.s("k") + struct.pack("<I", 42))
    _bad(tmp_path, w.build(), "unknown value type 42")


def test_duplicate_keys_and_tensors_are_format_errors(tmp_path: Path) -> None:
    _bad(tmp_path, _Writer().kv("a", U8, 1).kv("a", U8, 2).build(), "'a' appears twice")
    _bad(tmp_path, _Writer().tensor("w", [4], GF32).tensor("w", [4], GF32).build(), "'w' appears twice")


def test_tensor_data_outside_the_file_is_a_format_error(tmp_path: Path) -> None:
    w = _Writer().tensor("a", [8], GF32).tensor("b", [8], GF32)
    _bad(tmp_path, w.build(offsets=[0, 4096]), "past the")
    _bad(tmp_path, w.build(offsets=[0, 8]), "not a multiple of the alignment")


def test_quantized_rows_must_fill_blocks(tmp_path: Path) -> None:
    _bad(tmp_path, _Writer().tensor("q", [100, 2], Q4_K).build(), "blocks of 256")


def test_bad_alignment_is_a_format_error(tmp_path: Path) -> None:
    _bad(tmp_path, _Writer().kv("general.alignment", U32, 24).build(), "not a power of two")


def test_unknown_ggml_type_is_counted_but_not_sized(tmp_path: Path) -> None:
    info = read_gguf(_write(tmp_path, _Writer().tensor("x", [64], (77, 1, 1)).build()))
    assert info.parameters == 64
    assert info.tensors[0].type_name == "type77" and info.tensors[0].nbytes is None


def test_corrupted_files_raise_only_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "fuzzed"
    for data in mutations(_tiny(tokens=20), 400, seed=7):
        p.write_bytes(data)
        with contextlib.suppress(FormatError):
            read_gguf(p)
