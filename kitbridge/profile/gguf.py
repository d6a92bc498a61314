"""Read a GGUF file's header, metadata and tensor table (never the tensor data): what llama.cpp model it is.

Layout (v2/v3): magic ``GGUF``, u32 version, u64 tensor count, u64 metadata count, the metadata key/values,
the tensor infos (name, n_dims, u64 dims, ggml type, u64 offset), padding to ``general.alignment``, data.
Huge metadata arrays (``tokenizer.ggml.tokens`` holds 100k+ strings) are stepped over, keeping a count and
the first few items; every length read from the file is checked against what is left of it first.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kitbridge.errors import FormatError
from kitbridge.profile.params import param_size, precision_mix

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS; llama.cpp refuses more
MAX_KEY_LENGTH = 65_535  # the spec caps keys at 2^16 - 1 bytes
MAX_STRING_VALUE = 1024 * 1024  # longer string values are stepped over and left out of ``metadata``
ARRAY_HEAD = 16  # items of an array kept as a sample
MAX_ARRAY_DEPTH = 8

# llama.cpp ``enum llama_ftype`` (stored as ``general.file_type``) -> the quantization's usual name.
LLAMA_FTYPES: Mapping[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    5: "Q4_2",
    6: "Q4_3",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    33: "Q4_0_4_4",
    34: "Q4_0_4_8",
    35: "Q4_0_8_8",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
    41: "Q2_0",
}
_FTYPE_GUESSED = 1024  # flag llama.cpp ORs in when it guessed the file type

# ggml ``enum ggml_type`` -> (name, elements per block, bytes per block), as in gguf-py GGML_QUANT_SIZES.
_QK_K = 256
GGML_TYPES: Mapping[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: ("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", _QK_K, 2 + 4 * 13),
    35: ("TQ2_0", _QK_K, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
    40: ("NVFP4", 64, 4 + 32),
    41: ("Q1_0", 128, 2 + 16),
    42: ("Q2_0", 64, 2 + 16),
}

# GGUF metadata value types: id -> (name, struct format or None for string/array).
_VALUE_TYPES: Mapping[int, tuple[str, str | None]] = {
    0: ("uint8", "B"),
    1: ("int8", "b"),
    2: ("uint16", "H"),
    3: ("int16", "h"),
    4: ("uint32", "I"),
    5: ("int32", "i"),
    6: ("float32", "f"),
    7: ("bool", "?"),
    8: ("string", None),
    9: ("array", None),
    10: ("uint64", "Q"),
    11: ("int64", "q"),
    12: ("float64", "d"),
}
_STRING, _ARRAY, _BOOL = 8, 9, 7


@dataclass(frozen=True)
class GgufArray:
    """A metadata array, kept as its item type, its length and its first items (never all of a huge one)."""

    item_type: str  # GGUF value type of the items (string, uint32, array …)
    count: int  # number of items in the file
    head: tuple[GgufValue, ...]  # the first ARRAY_HEAD items (fewer if the array is shorter)


GgufValue = bool | int | float | str | GgufArray


@dataclass(frozen=True)
class GgufTensor:
    """One entry of the tensor table."""

    name: str  # tensor name (blk.0.attn_q.weight …)
    shape: tuple[int, ...]  # dimensions as GGUF stores them (innermost first)
    ggml_type: int  # ggml_type id
    type_name: str  # ggml type name (Q4_K, F32 …), "type<N>" when unknown
    offset: int  # data offset relative to the start of the data section
    nbytes: int | None  # bytes of data, None for a ggml type this reader does not know

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file says about itself."""

    path: Path  # the file read
    version: int  # GGUF version (2 or 3)
    byte_order: str  # "little" (almost always) or "big"
    tensor_count: int  # tensors in the tensor table
    kv_count: int  # metadata key/value pairs
    metadata: Mapping[str, GgufValue]  # every key; arrays as GgufArray samples, huge strings left out
    architecture: str | None  # general.architecture (llama, qwen2, bert …)
    name: str | None  # general.name
    license: str | None  # general.license
    file_type: int | None  # general.file_type (llama_ftype), without the "guessed" flag
    quantization: str | None  # file_type's name (Q4_K_M, F16 …), "ftype<N>" when unknown
    context_length: int | None  # <arch>.context_length
    embedding_length: int | None  # <arch>.embedding_length
    block_count: int | None  # <arch>.block_count
    alignment: int  # general.alignment, default 32
    tensors: tuple[GgufTensor, ...]  # the tensor table in file order
    parameters: int  # elements over all tensors
    parameters_by_type: Mapping[str, int]  # elements per ggml type name
    bytes_by_type: Mapping[str, int]  # data bytes per ggml type name (known types only)
    data_offset: int  # absolute offset of the data section
    file_size: int  # size of the file in bytes

    @property
    def param_size(self) -> str:
        """``parameters`` as model-spec paramSize ("6.7B")."""
        return param_size(self.parameters)

    @property
    def precision(self) -> str:
        """Model-spec precision of the tensors, most bytes first ("int4,int6,float32")."""
        return precision_mix(self.bytes_by_type)


def quantization_name(file_type: int) -> str:
    """The llama.cpp name of a ``general.file_type`` value (15 -> "Q4_K_M"); "ftype<N>" when unknown."""
    return LLAMA_FTYPES.get(file_type & ~_FTYPE_GUESSED, f"ftype{file_type}")


def read_gguf(path: str | os.PathLike[str]) -> GgufInfo:
    """Read a GGUF v2/v3 header, metadata and tensor table; FormatError if the file is not sound GGUF."""
    p = Path(path)
    try:
        with open(p, "rb", buffering=1024 * 1024) as f:
            return _read(p, f, os.fstat(f.fileno()).st_size)
    except OSError as e:
        raise FormatError(f"{p}: cannot read: {e.strerror or e}", "check the path and permissions") from e


class _Reader:
    """Bounded little/big-endian reads with a running position; every length is checked against the file."""

    def __init__(self, p: Path, f: BinaryIO, size: int) -> None:
        self.p, self.f, self.size, self.pos, self.endian = p, f, size, 0, "<"

    def bad(self, what: str) -> FormatError:
        return FormatError(
            f"{self.p}: not a valid GGUF file: {what} (at byte {self.pos})",
            "the file is truncated or not GGUF",
        )

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.size - self.pos:
            raise self.bad(f"{what} needs {n} bytes, only {self.size - self.pos} left")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise self.bad(f"{what}: the file ended early")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, os.SEEK_CUR)
        self.pos += n

    def scalar(self, fmt: str, what: str) -> int | float | bool:
        size = struct.calcsize(fmt)
        value: int | float | bool = struct.unpack(self.endian + fmt, self.read(size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("Q", what))

    def string(self, what: str, limit: int) -> str | None:
        """A GGUF string; None (stepped over) when longer than ``limit``."""
        n = self.u64(what)
        if n > limit:
            self.skip(n, what)
            return None
        return self.read(n, what).decode("utf-8", errors="replace")


def _read(p: Path, f: BinaryIO, size: int) -> GgufInfo:
    r = _Reader(p, f, size)
    if r.read(min(4, size), "magic") != MAGIC:
        raise r.bad("it does not start with 'GGUF'")
    raw_version = r.read(4, "version")
    version = struct.unpack("<I", raw_version)[0]
    if version not in (2, 3) and struct.unpack(">I", raw_version)[0] in (2, 3):
        r.endian, version = ">", struct.unpack(">I", raw_version)[0]
    if version == 1:
        raise FormatError(
            f"{p}: GGUF version 1 is not supported", "convert the model again with a current llama.cpp"
        )
    if version not in (2, 3):
        raise r.bad(f"unknown GGUF version {version}")
    tensor_count = r.u64("tensor count")
    kv_count = r.u64("metadata count")
    # Smallest possible entries: a KV is key length + type + 1 byte, a tensor info 8 + 4 + 4 + 8 bytes.
    if kv_count * 13 > size or tensor_count * 24 > size:
        raise r.bad(f"{kv_count} metadata entries and {tensor_count} tensors cannot fit in {size} bytes")

    metadata: dict[str, GgufValue] = {}
    seen_keys: set[str] = set()
    for _ in range(kv_count):
        key = r.string("metadata key", MAX_KEY_LENGTH)
        if key is None:
            raise r.bad(f"a metadata key is longer than {MAX_KEY_LENGTH} bytes")
        if key in seen_keys:
            raise r.bad(f"metadata key {key!r} appears twice")
        seen_keys.add(key)
        value = _value(r, r.u32(f"type of {key!r}"), key, 0)
        if value is not None:
            metadata[key] = value

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise r.bad(f"general.alignment {alignment!r} is not a power of two")

    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    names: set[str] = set()
    for i in range(tensor_count):
        name = r.string(f"tensor {i} name", MAX_KEY_LENGTH)
        if name is None:
            raise r.bad(f"tensor {i} has a name longer than {MAX_KEY_LENGTH} bytes")
        if name in names:
            raise r.bad(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = r.u32(f"tensor {name!r} n_dims")
        if n_dims > MAX_DIMS:
            raise r.bad(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = tuple(r.u64(f"tensor {name!r} dims") for _ in range(n_dims))
        if any(d >= 2**63 for d in shape):
            raise r.bad(f"tensor {name!r} has an impossible dimension {shape}")
        ggml_type = r.u32(f"tensor {name!r} type")
        offset = r.u64(f"tensor {name!r} offset")
        infos.append((name, shape, ggml_type, offset))

    data_offset = -(-r.pos // alignment) * alignment
    if data_offset > size:
        raise r.bad(f"the data section would start at {data_offset}, past the end of the file")
    data_size = size - data_offset
    tensors: list[GgufTensor] = []
    by_type: dict[str, int] = {}
    bytes_by: dict[str, int] = {}
    for name, shape, ggml_type, offset in infos:
        tensor = _tensor(r, name, shape, ggml_type, offset, alignment, data_size)
        tensors.append(tensor)
        by_type[tensor.type_name] = by_type.get(tensor.type_name, 0) + tensor.numel
        if tensor.nbytes is not None:
            bytes_by[tensor.type_name] = bytes_by.get(tensor.type_name, 0) + tensor.nbytes

    arch = _str(metadata.get("general.architecture"))
    file_type = metadata.get("general.file_type")
    ftype = (
        file_type & ~_FTYPE_GUESSED
        if isinstance(file_type, int) and not isinstance(file_type, bool)
        else None
    )
    return GgufInfo(
        path=p,
        version=version,
        byte_order="little" if r.endian == "<" else "big",
        tensor_count=tensor_count,
        kv_count=kv_count,
        metadata=metadata,
        architecture=arch,
        name=_str(metadata.get("general.name")),
        license=_str(metadata.get("general.license")),
        file_type=ftype,
        quantization=None if ftype is None else quantization_name(ftype),
        context_length=_arch_int(metadata, arch, "context_length"),
        embedding_length=_arch_int(metadata, arch, "embedding_length"),
        block_count=_arch_int(metadata, arch, "block_count"),
        alignment=alignment,
        tensors=tuple(tensors),
        parameters=sum(t.numel for t in tensors),
        parameters_by_type=by_type,
        bytes_by_type=bytes_by,
        data_offset=data_offset,
        file_size=size,
    )


def _value(r: _Reader, vtype: int, key: str, depth: int) -> GgufValue | None:
    """One metadata value of type ``vtype``; None for a string too long to keep (it is stepped over)."""
    if vtype not in _VALUE_TYPES:
        raise r.bad(f"metadata {key!r} has unknown value type {vtype}")
    if vtype == _STRING:
        return r.string(f"metadata {key!r}", MAX_STRING_VALUE)
    if vtype == _ARRAY:
        return _array(r, key, depth)
    fmt = _VALUE_TYPES[vtype][1]
    assert fmt is not None
    if vtype == _BOOL:
        byte = r.read(1, f"metadata {key!r}")[0]
        if byte > 1:
            raise r.bad(f"metadata {key!r} is a bool holding {byte}")
        return byte == 1
    return r.scalar(fmt, f"metadata {key!r}")


def _array(r: _Reader, key: str, depth: int) -> GgufArray:
    if depth >= MAX_ARRAY_DEPTH:
        raise r.bad(f"metadata {key!r} nests arrays more than {MAX_ARRAY_DEPTH} deep")
    item_type = r.u32(f"metadata {key!r} item type")
    count = r.u64(f"metadata {key!r} length")
    if item_type not in _VALUE_TYPES:
        raise r.bad(f"metadata {key!r} has unknown item type {item_type}")
    name, fmt = _VALUE_TYPES[item_type]
    head: list[GgufValue] = []
    if fmt is not None:
        # Fixed-size items: read the head, seek past the rest in one step.
        item_size = struct.calcsize(fmt)
        r.need(count * item_size, f"metadata {key!r} ({count} x {name})")
        for _ in range(min(count, ARRAY_HEAD)):
            value = _value(r, item_type, key, depth + 1)
            assert value is not None
            head.append(value)
        r.skip((count - len(head)) * item_size, f"metadata {key!r}")
    else:
        # Strings and nested arrays carry their own lengths: step over each one, keep only the head.
        if count > r.size - r.pos:
            raise r.bad(f"metadata {key!r} claims {count} items, more than the bytes left")
        for i in range(count):
            if i < ARRAY_HEAD:
                value = _value(r, item_type, key, depth + 1)
                head.append("" if value is None else value)
            elif item_type == _STRING:
                r.skip(r.u64(f"metadata {key!r} item"), f"metadata {key!r} item")
            else:
                _array(r, key, depth + 1)
    return GgufArray(item_type=name, count=count, head=tuple(head))


def _tensor(
    r: _Reader, name: str, shape: tuple[int, ...], ggml_type: int, offset: int, alignment: int, data_size: int
) -> GgufTensor:
    known = GGML_TYPES.get(ggml_type)
    numel = math.prod(shape)
    if numel >= 2**63:
        raise r.bad(f"tensor {name!r} has {numel} elements, more than any file can hold")
    nbytes: int | None = None
    if known is not None:
        type_name, block, type_size = known
        if shape and shape[0] % block:
            raise r.bad(f"tensor {name!r}: {type_name} needs rows in blocks of {block}, shape is {shape}")
        nbytes = numel // block * type_size
    else:
        type_name = f"type{ggml_type}"
    if offset % alignment:
        raise r.bad(f"tensor {name!r} data offset {offset} is not a multiple of the alignment {alignment}")
    end = offset + (nbytes or 0)
    if end > data_size:
        raise r.bad(f"tensor {name!r} data ends at {end}, past the {data_size}-byte data section")
    return GgufTensor(
        name=name, shape=shape, ggml_type=ggml_type, type_name=type_name, offset=offset, nbytes=nbytes
    )


def _str(value: GgufValue | None) -> str | None:
    return value if isinstance(value, str) else None


def _arch_int(metadata: Mapping[str, GgufValue], arch: str | None, field: str) -> int | None:
    if arch is None:
        return None
    value = metadata.get(f"{arch}.{field}")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
