"""Read an ONNX model's description (opsets, inputs, outputs, initializer shapes) without loading its weights.

An ``.onnx`` file is one serialized ``ModelProto``. This is a small streaming protobuf wire-format reader:
it walks the fields it knows (ModelProto, GraphProto, ValueInfoProto, TensorProto headers) and seeks past
every other length-delimited field (nodes, ``raw_data``, functions) without reading it, so a 2 GB model
costs a few thousand small reads. Field numbers are those of onnx/onnx.proto.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kitbridge.errors import FormatError
from kitbridge.profile.params import param_size, precision_mix

MAX_STRING = 1024 * 1024  # longer strings (a huge doc_string) are stepped over and reported as None

# TensorProto.DataType -> (name, bits per element; 0 for STRING, whose size is not fixed).
ONNX_TYPES: Mapping[int, tuple[str, int]] = {
    1: ("FLOAT", 32),
    2: ("UINT8", 8),
    3: ("INT8", 8),
    4: ("UINT16", 16),
    5: ("INT16", 16),
    6: ("INT32", 32),
    7: ("INT64", 64),
    8: ("STRING", 0),
    9: ("BOOL", 8),
    10: ("FLOAT16", 16),
    11: ("DOUBLE", 64),
    12: ("UINT32", 32),
    13: ("UINT64", 64),
    14: ("COMPLEX64", 64),
    15: ("COMPLEX128", 128),
    16: ("BFLOAT16", 16),
    17: ("FLOAT8E4M3FN", 8),
    18: ("FLOAT8E4M3FNUZ", 8),
    19: ("FLOAT8E5M2", 8),
    20: ("FLOAT8E5M2FNUZ", 8),
    21: ("UINT4", 4),
    22: ("INT4", 4),
    23: ("FLOAT4E2M1", 4),
    24: ("FLOAT8E8M0", 8),
}
# Initializers of these types are index/shape/mask constants, not trained weights: counted apart.
_CONSTANT_TYPES = frozenset({7, 8, 9})

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


Shape = tuple[int | str | None, ...]


@dataclass(frozen=True)
class OnnxValue:
    """A graph input or output (ValueInfoProto)."""

    name: str  # the value's name
    kind: str  # "tensor", "sparse_tensor", "sequence", "map", "optional", or "unknown"
    elem_type: int | None  # TensorProto.DataType of a (sparse) tensor, None if unset
    elem_type_name: str | None  # its name (FLOAT, INT64 …), "type<N>" when unknown
    shape: Shape | None  # dims (int size, str symbol like "batch", None unknown); None: rank unknown


@dataclass(frozen=True)
class OnnxInfo:
    """What an ONNX model file says about itself."""

    path: Path  # the file read
    ir_version: int  # ModelProto.ir_version
    producer_name: str | None  # exporter (pytorch, tf2onnx …)
    producer_version: str | None  # exporter version
    domain: str | None  # model namespace (reverse-DNS)
    model_version: int | None  # ModelProto.model_version
    doc_string: str | None  # model documentation (None when absent or over MAX_STRING)
    graph_name: str | None  # GraphProto.name
    opsets: Mapping[str, int]  # operator set domain -> version; the default domain is "ai.onnx"
    metadata: Mapping[str, str]  # metadata_props
    inputs: tuple[OnnxValue, ...]  # graph inputs, minus those that are initializers (IR < 4 lists both)
    outputs: tuple[OnnxValue, ...]  # graph outputs
    initializer_count: int  # number of initializers (weights and constants)
    parameters: int  # elements in weight initializers (float, int8 … anything but int64/bool/string)
    constants: int  # elements in int64/bool/string initializers (shapes, indices, masks)
    parameters_by_type: Mapping[str, int]  # weight elements per ONNX type name
    bytes_by_type: Mapping[str, int]  # weight bytes per ONNX type name
    external_data: tuple[
        str, ...
    ]  # files external-data initializers name (checked relative, no ".."), sorted
    file_size: int  # size of the .onnx file

    @property
    def opset(self) -> int | None:
        """Version of the default ("ai.onnx") operator set."""
        return self.opsets.get("ai.onnx")

    @property
    def param_size(self) -> str:
        """``parameters`` as model-spec paramSize ("22.7M")."""
        return param_size(self.parameters)

    @property
    def precision(self) -> str:
        """Model-spec precision of the weights, most bytes first ("float32", "int8,float32")."""
        return precision_mix(self.bytes_by_type)


def onnx_type_name(elem_type: int) -> str:
    """The name of an ONNX TensorProto.DataType (1 -> "FLOAT", 7 -> "INT64"); "type<N>" when unknown."""
    known = ONNX_TYPES.get(elem_type)
    return known[0] if known else f"type{elem_type}"


def read_onnx(path: str | os.PathLike[str]) -> OnnxInfo:
    """Read an ONNX ModelProto's header fields and graph signature; FormatError if it is not ONNX."""
    p = Path(path)
    try:
        with open(p, "rb", buffering=256 * 1024) as f:
            size = os.fstat(f.fileno()).st_size
            return _Model(_Wire(p, f, size)).read()
    except OSError as e:
        raise FormatError(f"{p}: cannot read: {e.strerror or e}", "check the path and permissions") from e


class _Wire:
    """Protobuf wire-format reads over a file; every length is checked against its enclosing message."""

    def __init__(self, p: Path, f: BinaryIO, size: int) -> None:
        self.p, self.f, self.size, self.pos = p, f, size, 0

    def bad(self, what: str) -> FormatError:
        return FormatError(
            f"{self.p}: not a valid ONNX model: {what} (at byte {self.pos})",
            "the file is truncated or not an ONNX ModelProto",
        )

    def varint(self, end: int) -> int:
        result = shift = 0
        while True:
            if self.pos >= end:
                raise self.bad("a varint runs past the end of its message")
            byte = self.f.read(1)
            if not byte:
                raise self.bad("the file ended inside a varint")
            self.pos += 1
            result |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise self.bad("a varint is longer than 10 bytes")

    def int64(self, end: int) -> int:
        value = self.varint(end)
        return value - (1 << 64) if value >= 1 << 63 else value

    def fields(self, end: int) -> Iterator[tuple[int, int]]:
        """Yield (field number, wire type) for each field up to ``end``; the caller reads or skips it."""
        while self.pos < end:
            key = self.varint(end)
            number, wire = key >> 3, key & 7
            if number == 0 or wire not in (_VARINT, _FIXED64, _LEN, _FIXED32):
                raise self.bad(f"field key {key} (field {number}, wire type {wire}) is not valid here")
            yield number, wire
        if self.pos != end:
            raise self.bad("a field runs past the end of its message")

    def length(self, end: int) -> int:
        """Read a length prefix; return the end offset of the value it announces."""
        n = self.varint(end)
        if n > end - self.pos:
            raise self.bad(f"a field of {n} bytes runs past the end of its message")
        return self.pos + n

    def skip(self, wire: int, end: int) -> None:
        if wire == _VARINT:
            self.varint(end)
            return
        n = {_FIXED64: 8, _FIXED32: 4}.get(wire)
        stop = self.length(end) if n is None else self.pos + n
        if stop > end:
            raise self.bad("a fixed-size field runs past the end of its message")
        self.f.seek(stop - self.pos, os.SEEK_CUR)
        self.pos = stop

    def string(self, end: int) -> str | None:
        stop = self.length(end)
        n = stop - self.pos
        if n > MAX_STRING:
            self.f.seek(n, os.SEEK_CUR)
            self.pos = stop
            return None
        data = self.f.read(n)
        if len(data) != n:
            raise self.bad("the file ended inside a string")
        self.pos = stop
        return data.decode("utf-8", errors="replace")

    def expect(self, wire: int, want: int, what: str) -> None:
        if wire != want:
            raise self.bad(f"{what} has wire type {wire}, expected {want}")


class _Model:
    """Walks ModelProto -> GraphProto and collects what OnnxInfo reports."""

    def __init__(self, w: _Wire) -> None:
        self.w = w
        self.inputs: list[OnnxValue] = []
        self.outputs: list[OnnxValue] = []
        self.initializer_names: set[str] = set()
        self.initializer_count = 0
        self.parameters = self.constants = 0
        self.by_type: dict[str, int] = {}
        self.bytes_by: dict[str, int] = {}
        self.external: set[str] = set()
        self.graph_name: str | None = None
        self.saw_graph = False

    def read(self) -> OnnxInfo:
        w, end = self.w, self.w.size
        ir_version: int | None = None
        strings: dict[int, str | None] = {}
        model_version: int | None = None
        opsets: dict[str, int] = {}
        metadata: dict[str, str] = {}
        for number, wire in w.fields(end):
            if number == 1:
                w.expect(wire, _VARINT, "ir_version")
                ir_version = w.int64(end)
            elif number in (2, 3, 4, 6):  # producer_name, producer_version, domain, doc_string
                w.expect(wire, _LEN, f"ModelProto field {number}")
                strings[number] = w.string(end)
            elif number == 5:
                w.expect(wire, _VARINT, "model_version")
                model_version = w.int64(end)
            elif number == 7:
                w.expect(wire, _LEN, "graph")
                self.graph(w.length(end))
            elif number == 8:
                w.expect(wire, _LEN, "opset_import")
                domain, version = self.opset(w.length(end))
                opsets[domain or "ai.onnx"] = version
            elif number == 14:
                w.expect(wire, _LEN, "metadata_props")
                key, value = self.entry(w.length(end))
                if key is not None and value is not None:
                    metadata[key] = value
            else:
                w.skip(wire, end)
        if ir_version is None or not self.saw_graph:
            raise w.bad("no ir_version or no graph: this is not an ONNX ModelProto")
        return OnnxInfo(
            path=w.p,
            ir_version=ir_version,
            producer_name=strings.get(2),
            producer_version=strings.get(3),
            domain=strings.get(4),
            model_version=model_version,
            doc_string=strings.get(6),
            graph_name=self.graph_name,
            opsets=opsets,
            metadata=metadata,
            inputs=tuple(v for v in self.inputs if v.name not in self.initializer_names),
            outputs=tuple(self.outputs),
            initializer_count=self.initializer_count,
            parameters=self.parameters,
            constants=self.constants,
            parameters_by_type=self.by_type,
            bytes_by_type=self.bytes_by,
            external_data=tuple(sorted(self.external)),
            file_size=w.size,
        )

    def graph(self, end: int) -> None:
        w = self.w
        self.saw_graph = True
        for number, wire in w.fields(end):
            if number == 2:
                w.expect(wire, _LEN, "graph name")
                self.graph_name = w.string(end)
            elif number == 5:
                w.expect(wire, _LEN, "initializer")
                self.initializer(w.length(end))
            elif number in (11, 12):
                w.expect(wire, _LEN, "graph input/output")
                value = self.value_info(w.length(end))
                (self.inputs if number == 11 else self.outputs).append(value)
            else:
                w.skip(wire, end)  # nodes, value_info, sparse initializers, doc_string …

    def opset(self, end: int) -> tuple[str, int]:
        w = self.w
        domain, version = "", 0
        for number, wire in w.fields(end):
            if number == 1 and wire == _LEN:
                domain = w.string(end) or ""
            elif number == 2 and wire == _VARINT:
                version = w.int64(end)
            else:
                w.skip(wire, end)
        return domain, version

    def entry(self, end: int) -> tuple[str | None, str | None]:
        w = self.w
        key = value = None
        for number, wire in w.fields(end):
            if number == 1 and wire == _LEN:
                key = w.string(end)
            elif number == 2 and wire == _LEN:
                value = w.string(end)
            else:
                w.skip(wire, end)
        return key, value

    def initializer(self, end: int) -> None:
        w = self.w
        dims: list[int] = []
        data_type = 0
        name: str | None = None
        for number, wire in w.fields(end):
            if number == 1 and wire == _VARINT:
                dims.append(w.int64(end))
            elif number == 1 and wire == _LEN:  # packed dims
                stop = w.length(end)
                while w.pos < stop:
                    dims.append(w.int64(stop))
            elif number == 2 and wire == _VARINT:
                data_type = w.int64(end)
            elif number == 8 and wire == _LEN:
                name = w.string(end)
            elif number == 13 and wire == _LEN:
                key, value = self.entry(w.length(end))
                if key == "location" and value is not None:
                    if not _is_plain_relative(value):
                        raise w.bad(
                            f"initializer {name!r} keeps its data at {value!r}, outside the model folder"
                        )
                    self.external.add(value)
            else:
                w.skip(wire, end)  # raw_data, float_data …, data_location, doc_string: never read
        if any(d < 0 for d in dims):
            raise w.bad(f"initializer {name!r} has a negative dimension {dims}")
        self.initializer_count += 1
        if name is not None:
            self.initializer_names.add(name)
        numel = math.prod(dims)
        if data_type in _CONSTANT_TYPES:
            self.constants += numel
            return
        type_name = onnx_type_name(data_type)
        self.parameters += numel
        self.by_type[type_name] = self.by_type.get(type_name, 0) + numel
        bits = ONNX_TYPES.get(data_type, ("", 0))[1]
        self.bytes_by[type_name] = self.bytes_by.get(type_name, 0) + (numel * bits + 7) // 8

    def value_info(self, end: int) -> OnnxValue:
        w = self.w
        name = ""
        kind, elem_type, shape = "unknown", None, None
        for number, wire in w.fields(end):
            if number == 1 and wire == _LEN:
                name = w.string(end) or ""
            elif number == 2 and wire == _LEN:
                kind, elem_type, shape = self.type_proto(w.length(end))
            else:
                w.skip(wire, end)
        return OnnxValue(
            name=name,
            kind=kind,
            elem_type=elem_type,
            elem_type_name=None if elem_type is None else onnx_type_name(elem_type),
            shape=shape,
        )

    def type_proto(self, end: int) -> tuple[str, int | None, Shape | None]:
        # TypeProto is a oneof: tensor_type 1, sequence_type 4, map_type 5, optional_type 9, sparse 8.
        w = self.w
        kind, elem_type, shape = "unknown", None, None
        kinds = {1: "tensor", 4: "sequence", 5: "map", 8: "sparse_tensor", 9: "optional"}
        for number, wire in w.fields(end):
            if number in (1, 8) and wire == _LEN:
                kind = kinds[number]
                elem_type, shape = self.tensor_type(w.length(end))
            elif number in kinds and wire == _LEN:
                kind = kinds[number]
                w.skip(wire, end)
            else:
                w.skip(wire, end)
        return kind, elem_type, shape

    def tensor_type(self, end: int) -> tuple[int | None, Shape | None]:
        w = self.w
        elem_type: int | None = None
        shape: Shape | None = None
        for number, wire in w.fields(end):
            if number == 1 and wire == _VARINT:
                elem_type = w.int64(end)
            elif number == 2 and wire == _LEN:
                shape = self.shape(w.length(end))
            else:
                w.skip(wire, end)
        return elem_type, shape

    def shape(self, end: int) -> Shape:
        w = self.w
        dims: list[int | str | None] = []
        for number, wire in w.fields(end):
            if number == 1 and wire == _LEN:
                dims.append(self.dim(w.length(end)))
            else:
                w.skip(wire, end)
        return tuple(dims)

    def dim(self, end: int) -> int | str | None:
        w = self.w
        value: int | str | None = None
        for number, wire in w.fields(end):
            if number == 1 and wire == _VARINT:
                value = w.int64(end)
            elif number == 2 and wire == _LEN:
                value = w.string(end)
            else:
                w.skip(wire, end)
        return value


def _is_plain_relative(location: str) -> bool:
    # ONNX external data lives beside the model; an absolute path or ".." would read any file on the host.
    if not location or location.startswith(("/", "\\")) or ":" in location:
        return False
    return all(part not in ("", ".", "..") for part in location.replace("\\", "/").split("/"))
