"""Shared wording for profiles: parameter counts as model-spec ``paramSize``, dtypes as precision words.

``paramSize`` follows ``^[0-9]+(\\.[0-9])?[KMBT]$`` (one decimal at most, a unit always). ``precision`` uses
lower-case words (``float32``, ``bfloat16``, ``int8`` …), comma-joined when a model mixes several.
"""

from __future__ import annotations

from collections.abc import Mapping

_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))

# One table for the three vocabularies the readers see: safetensors dtypes (F32, I64, F8_E4M3 …),
# GGML tensor types (F32, Q4_K, IQ2_XS …) and ONNX TensorProto.DataType names (FLOAT, INT64 …).
# GGML block-quantized types are named by their nominal bit width (int4 for Q4_K, float4 for MXFP4):
# the exact scheme belongs in ``quantization`` (e.g. Q4_K_M), not in ``precision``.
_PRECISION = {
    # safetensors (and the GGML plain types, which share these spellings)
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "C64": "complex64",
    "F8_E4M3": "float8_e4m3",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0",
    "F6_E2M3": "float6_e2m3",
    "F6_E3M2": "float6_e3m2",
    "F4": "float4",
    # GGML block-quantized types
    "Q4_0": "int4",
    "Q4_1": "int4",
    "Q5_0": "int5",
    "Q5_1": "int5",
    "Q8_0": "int8",
    "Q8_1": "int8",
    "Q2_K": "int2",
    "Q3_K": "int3",
    "Q4_K": "int4",
    "Q5_K": "int5",
    "Q6_K": "int6",
    "Q8_K": "int8",
    "IQ2_XXS": "int2",
    "IQ2_XS": "int2",
    "IQ2_S": "int2",
    "IQ3_XXS": "int3",
    "IQ3_S": "int3",
    "IQ1_S": "int1",
    "IQ1_M": "int1",
    "IQ4_NL": "int4",
    "IQ4_XS": "int4",
    "TQ1_0": "int1",
    "TQ2_0": "int2",
    "Q1_0": "int1",
    "Q2_0": "int2",
    "MXFP4": "float4",
    "NVFP4": "float4",
    # ONNX TensorProto.DataType names
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "FLOAT16": "float16",
    "BFLOAT16": "bfloat16",
    "INT64": "int64",
    "INT32": "int32",
    "INT16": "int16",
    "INT8": "int8",
    "INT4": "int4",
    "UINT64": "uint64",
    "UINT32": "uint32",
    "UINT16": "uint16",
    "UINT8": "uint8",
    "UINT4": "uint4",
    "STRING": "string",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "FLOAT8E4M3FN": "float8_e4m3",
    "FLOAT8E4M3FNUZ": "float8_e4m3fnuz",
    "FLOAT8E5M2": "float8_e5m2",
    "FLOAT8E5M2FNUZ": "float8_e5m2fnuz",
    "FLOAT8E8M0": "float8_e8m0",
    "FLOAT4E2M1": "float4",
}


def param_size(n: int) -> str:
    """A parameter count as model-spec ``paramSize``: 22713216 -> "22.7M", 6738415616 -> "6.7B", 1000 -> "1K".

    Rounds half up to one decimal and drops a trailing ".0". The pattern has no unit-less form, so counts
    under 1000 are given in K as well (999 -> "1K", 450 -> "0.5K"), and a positive count never reads as
    zero (1..149 -> "0.1K"); 0 -> "0K". Counts of 1000T and more stay in T ("1500T").
    """
    if n < 0:
        raise ValueError(f"a parameter count cannot be negative, got {n}")
    if n == 0:
        return "0K"
    for index, (unit, suffix) in enumerate(_UNITS):
        if n < unit and index < len(_UNITS) - 1:
            continue
        tenths = (n * 10 + unit // 2) // unit
        if tenths >= 10_000 and index > 0:
            # 999.96M rounds to 1000.0M: say 1B instead.
            bigger, bigger_suffix = _UNITS[index - 1]
            tenths, suffix = (n * 10 + bigger // 2) // bigger, bigger_suffix
        tenths = max(tenths, 1)
        whole, tenth = divmod(tenths, 10)
        return f"{whole}{suffix}" if tenth == 0 else f"{whole}.{tenth}{suffix}"
    raise AssertionError("unreachable: the K unit takes every count")  # pragma: no cover


def precision_name(dtype: str) -> str:
    """The model-spec precision word for one dtype name from safetensors, GGML or ONNX ("BF16" -> "bfloat16").

    Lookup is case-insensitive; a name that already is a precision word, or one no table knows, comes back
    lower-cased, so a new dtype still reads sensibly.
    """
    key = dtype.strip().upper()
    return _PRECISION.get(key, dtype.strip().lower())


def precision_mix(bytes_by_dtype: Mapping[str, int]) -> str:
    """A whole model's precision: each dtype's word, merged, sorted by bytes (most first), comma-joined.

    ``{"F32": 90_000_000, "I64": 4096}`` -> ``"float32,int64"``. Dtypes with the same word (F32 and FLOAT) are
    added together; ties sort by name. An empty mapping gives "".
    """
    merged: dict[str, int] = {}
    for dtype, size in bytes_by_dtype.items():
        word = precision_name(dtype)
        merged[word] = merged.get(word, 0) + size
    return ",".join(word for word, _ in sorted(merged.items(), key=lambda item: (-item[1], item[0])))
