"""Read safetensors headers (never the tensor data) and say what a model holds: tensors, parameters, dtypes.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype,
shape and ``data_offsets`` (relative to the end of the header), then the tensor bytes. Only the header is
read; it is checked the way the ``safetensors`` library checks it (offsets contiguous from 0 to the end of
the file, dtype size x shape = byte span), so a file that passes here also loads there.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitbridge.errors import FormatError
from kitbridge.profile.params import param_size, precision_mix

# The safetensors library refuses headers above 100 MB; so do we, before allocating anything.
MAX_HEADER_SIZE = 100_000_000
# A sharded index is a small JSON map; anything this big is not one.
MAX_INDEX_SIZE = 64 * 1024 * 1024

# Bits per element. Sub-byte types (F4, F6) pack several elements per byte.
_DTYPE_BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
_DTYPE_RE = re.compile(r"^[A-Z0-9_]{1,32}$")

# Tensors that a checkpoint stores but that are not trained weights: registered buffers. Counting them as
# parameters is how a 22.7M model turns into "22.7M plus 512" or GPT-2 into 137M instead of 124M.
_BUFFER_SUFFIXES = (
    "position_ids",
    "token_type_ids",
    ".running_mean",
    ".running_var",
    ".num_batches_tracked",
    ".inv_freq",
    "._float_tensor",
)
# GPT-2 style causal masks share a name with linear biases; a bias is 1-D, the mask is not.
_MASK_SUFFIXES = (".attn.bias", ".attn.masked_bias")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor named in a safetensors header."""

    name: str  # the tensor's key in the header
    dtype: str  # safetensors dtype name as written (F32, BF16, I64 …)
    shape: tuple[int, ...]  # dimensions; () for a scalar
    begin: int  # first data byte, relative to the end of the header
    end: int  # one past the last data byte, relative to the end of the header
    file: Path  # the file that holds it
    is_buffer: bool  # a registered buffer (position_ids, running_mean …), not a trained parameter

    @property
    def numel(self) -> int:
        """Number of elements (1 for a scalar)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Byte span of its data."""
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsInfo:
    """What one safetensors file, or a set of shards summed together, holds."""

    files: tuple[Path, ...]  # the file(s) read, in the order given
    tensors: tuple[TensorInfo, ...]  # every tensor, buffers included, in header order per file
    tensor_count: int  # number of tensors, buffers included
    parameters: int  # elements in parameter tensors (buffers excluded)
    buffers: int  # elements in buffer tensors (position_ids, running_mean, inv_freq …)
    parameters_by_dtype: Mapping[str, int]  # parameter elements per safetensors dtype
    bytes_by_dtype: Mapping[str, int]  # parameter bytes per safetensors dtype
    dtypes: tuple[str, ...]  # dtypes of parameter tensors, most bytes first
    metadata: Mapping[str, str]  # the header's ``__metadata__`` (shards: merged, first file wins)
    header_size: int  # JSON header bytes (summed over shards)
    data_size: int  # tensor data bytes (summed over shards)

    @property
    def param_size(self) -> str:
        """``parameters`` as model-spec paramSize ("22.7M")."""
        return param_size(self.parameters)

    @property
    def precision(self) -> str:
        """Model-spec precision of the parameters, most bytes first ("float32", "bfloat16,float32")."""
        return precision_mix(self.bytes_by_dtype)


@dataclass(frozen=True)
class ShardedIndex:
    """A ``model.safetensors.index.json``: which shard holds which tensor."""

    path: Path  # the index file
    weight_map: Mapping[str, str]  # tensor name -> shard file name (relative to the index's directory)
    shards: tuple[str, ...]  # distinct shard file names, sorted
    total_size: int | None  # ``metadata.total_size`` (tensor data bytes), when given
    metadata: Mapping[str, str]  # string-valued ``metadata`` entries other than total_size


def is_buffer_name(name: str, ndim: int) -> bool:
    """True when a tensor named ``name`` with ``ndim`` dimensions is a registered buffer, not a parameter."""
    if name.endswith(_BUFFER_SUFFIXES):
        return True
    return name.endswith(_MASK_SUFFIXES) and ndim != 1


def read_safetensors(path: str | os.PathLike[str]) -> SafetensorsInfo:
    """Read and check one safetensors file's header; FormatError if it is not a sound safetensors file."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise _bad(p, f"{file_size} bytes is too short for a header length")
            (header_size,) = struct.unpack("<Q", head)
            if header_size > MAX_HEADER_SIZE:
                raise _bad(p, f"header length {header_size} is over the {MAX_HEADER_SIZE}-byte limit")
            if 8 + header_size > file_size:
                raise _bad(p, f"header length {header_size} runs past the end of the {file_size}-byte file")
            raw = f.read(header_size)
    except OSError as e:
        raise FormatError(f"{p}: cannot read: {e.strerror or e}", "check the path and permissions") from e
    if len(raw) != header_size:
        raise _bad(p, "the file changed while it was read")
    header = _parse_header(p, raw)
    data_size = file_size - 8 - header_size
    tensors, metadata = _tensors_of(p, header, data_size)
    return _build((p,), tensors, metadata, header_size, data_size)


def read_sharded_index(path: str | os.PathLike[str]) -> ShardedIndex:
    """Read a ``*.safetensors.index.json``: its ``weight_map`` and ``metadata.total_size``."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_INDEX_SIZE + 1)
    except OSError as e:
        raise FormatError(f"{p}: cannot read: {e.strerror or e}", "check the path and permissions") from e
    if len(raw) > MAX_INDEX_SIZE:
        raise FormatError(
            f"{p}: over {MAX_INDEX_SIZE} bytes, too big for a safetensors index", "is this the right file?"
        )
    doc = _load_json(p, raw, "index")
    weight_map = doc.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise FormatError(
            f"{p}: no 'weight_map' object", "a sharded index maps each tensor name to its shard file"
        )
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not _is_plain_relative(shard):
            raise FormatError(
                f"{p}: weight_map[{name!r}] = {shard!r} is not a relative file name",
                "shard names must stay inside the model directory",
            )
    meta = doc.get("metadata", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FormatError(f"{p}: 'metadata' is not an object", "remove it or make it a JSON object")
    total = meta.get("total_size")
    if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float)) or total < 0):
        raise FormatError(f"{p}: metadata.total_size {total!r} is not a byte count", "fix or remove it")
    return ShardedIndex(
        path=p,
        weight_map=dict(weight_map),
        shards=tuple(sorted(set(weight_map.values()))),
        total_size=None if total is None else int(total),
        metadata={k: v for k, v in meta.items() if isinstance(v, str) and k != "total_size"},
    )


def profile_safetensors_set(paths: Iterable[str | os.PathLike[str]]) -> SafetensorsInfo:
    """Read several safetensors files (the shards of one model) and sum them into one SafetensorsInfo.

    A tensor name that appears in two files is a FormatError: shards of one model never repeat a tensor.
    """
    infos = [read_safetensors(p) for p in paths]
    if not infos:
        raise FormatError("no safetensors files given", "pass at least one .safetensors file")
    seen: dict[str, Path] = {}
    metadata: dict[str, str] = {}
    for info in infos:
        for t in info.tensors:
            if t.name in seen:
                raise FormatError(
                    f"tensor {t.name!r} is in both {seen[t.name]} and {t.file}",
                    "these files are not shards of one model",
                )
            seen[t.name] = t.file
        for k, v in info.metadata.items():
            metadata.setdefault(k, v)
    return _build(
        tuple(f for info in infos for f in info.files),
        [t for info in infos for t in info.tensors],
        metadata,
        sum(info.header_size for info in infos),
        sum(info.data_size for info in infos),
    )


def profile_sharded(index_path: str | os.PathLike[str]) -> SafetensorsInfo:
    """Read a sharded index and the shards it names (beside it); check each tensor is where it says."""
    index = read_sharded_index(index_path)
    base = index.path.parent
    info = profile_safetensors_set(base / shard for shard in index.shards)
    where = {t.name: t.file for t in info.tensors}
    for name, shard in index.weight_map.items():
        actual = where.get(name)
        if actual != base / shard:
            found = "missing" if actual is None else f"in {actual.name}"
            raise FormatError(
                f"{index.path}: tensor {name!r} should be in {shard} but is {found}",
                "the index and the shards do not belong together; fetch them again",
            )
    return info


def _bad(p: Path, what: str) -> FormatError:
    return FormatError(f"{p}: not a valid safetensors file: {what}", "it is truncated or not safetensors")


def _load_json(p: Path, raw: bytes, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{p}: the {what} is not valid JSON: {e}", "it is truncated or corrupt") from e
    if not isinstance(doc, dict):
        raise FormatError(f"{p}: the {what} is not a JSON object", "the file is truncated or corrupt")
    return doc


def _parse_header(p: Path, raw: bytes) -> dict[str, Any]:
    if not raw.startswith(b"{"):
        raise _bad(p, "the header does not start with '{'")
    return _load_json(p, raw, "header")


def _is_plain_relative(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or ":" in name:
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", name))


def _tensors_of(p: Path, header: dict[str, Any], data_size: int) -> tuple[list[TensorInfo], dict[str, str]]:
    tensors: list[TensorInfo] = []
    metadata: dict[str, str] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            metadata = _metadata(p, entry)
        else:
            tensors.append(_tensor(p, name, entry))
    _check_layout(p, tensors, data_size)
    return tensors, metadata


def _metadata(p: Path, entry: object) -> dict[str, str]:
    if entry is None:
        return {}
    if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
        raise _bad(p, "__metadata__ must map strings to strings")
    return dict(entry)


def _tensor(p: Path, name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _bad(p, f"tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not _DTYPE_RE.match(dtype):
        raise _bad(p, f"tensor {name!r} has dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _bad(p, f"tensor {name!r} has shape {shape!r}, not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _bad(p, f"tensor {name!r} has data_offsets {offsets!r}")
    begin, end = offsets
    numel = math.prod(shape)
    bits = _DTYPE_BITS.get(dtype)
    # A dtype newer than this table is still counted; only its byte span cannot be checked.
    if bits is not None and ((numel * bits) % 8 or (numel * bits) // 8 != end - begin):
        raise _bad(
            p,
            f"tensor {name!r}: {dtype} x {shape} needs {numel * bits / 8:g} bytes "
            f"but its data_offsets span {end - begin}",
        )
    return TensorInfo(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        begin=begin,
        end=end,
        file=p,
        is_buffer=is_buffer_name(name, len(shape)),
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(p: Path, tensors: list[TensorInfo], data_size: int) -> None:
    # As the safetensors library does: sorted by offset, the tensors tile the data section exactly.
    position = 0
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if t.begin != position:
            what = "overlaps the tensor before it" if t.begin < position else "leaves a gap before it"
            raise _bad(p, f"tensor {t.name!r} at data offset {t.begin} {what} (expected {position})")
        position = t.end
    if position != data_size:
        raise _bad(p, f"the tensors cover {position} data bytes but {data_size} follow the header")


def _build(
    files: tuple[Path, ...],
    tensors: list[TensorInfo],
    metadata: dict[str, str],
    header_size: int,
    data_size: int,
) -> SafetensorsInfo:
    by_dtype: dict[str, int] = {}
    bytes_by: dict[str, int] = {}
    parameters = buffers = 0
    for t in tensors:
        if t.is_buffer:
            buffers += t.numel
            continue
        parameters += t.numel
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.numel
        bytes_by[t.dtype] = bytes_by.get(t.dtype, 0) + t.nbytes
    return SafetensorsInfo(
        files=files,
        tensors=tuple(tensors),
        tensor_count=len(tensors),
        parameters=parameters,
        buffers=buffers,
        parameters_by_dtype=by_dtype,
        bytes_by_dtype=bytes_by,
        dtypes=tuple(sorted(bytes_by, key=lambda d: (-bytes_by[d], d))),
        metadata=metadata,
        header_size=header_size,
        data_size=data_size,
    )
