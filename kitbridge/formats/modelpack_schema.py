"""The ModelPack config JSON Schema (model-spec ``schema/config-schema.json``, draft 2020-12) by hand.

jsonschema is a development dependency only, so the schema's rules are written out here as data and
walked by a small checker. Formats are asserted (as model-spec's own Go test does), and patterns must
match the whole string like Go's ``regexp`` (``$`` never matches before a trailing newline).
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class _Rule:
    """One schema node: the subset of JSON Schema keywords the model-spec schema uses."""

    type: str  # object, array, string, boolean
    properties: dict[str, _Rule] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: _Rule | None = None
    min_items: int = 0
    min_length: int = 0
    enum: tuple[str, ...] = ()
    pattern: str = ""
    format: str = ""


_STRING = _Rule("string")
_STRINGS = _Rule("array", items=_STRING)
_BOOL = _Rule("boolean")
_MODALITY = _Rule("string", enum=("text", "image", "audio", "video", "embedding", "other"))

_CAPABILITIES = _Rule(
    "object",
    properties={
        "inputTypes": _Rule("array", items=_MODALITY),
        "outputTypes": _Rule("array", items=_MODALITY),
        "knowledgeCutoff": _Rule("string", format="date-time"),
        "reasoning": _BOOL,
        "toolUsage": _BOOL,
        "reward": _BOOL,
        "languages": _Rule("array", items=_Rule("string", pattern="[a-z]{2}")),
    },
)
_MODEL_CONFIG = _Rule(
    "object",
    properties={
        "architecture": _STRING,
        "format": _STRING,
        "paramSize": _STRING,
        "precision": _STRING,
        "quantization": _STRING,
        "capabilities": _CAPABILITIES,
    },
)
_DESCRIPTOR = _Rule(
    "object",
    properties={
        "createdAt": _Rule("string", format="date-time"),
        "authors": _STRINGS,
        "family": _STRING,
        "name": _Rule("string", min_length=1),
        "docURL": _STRING,
        "sourceURL": _STRING,
        "datasetsURL": _STRINGS,
        "version": _STRING,
        "revision": _STRING,
        "vendor": _STRING,
        "licenses": _STRINGS,
        "title": _STRING,
        "description": _STRING,
    },
)
_MODELFS = _Rule(
    "object",
    properties={
        "type": _Rule("string", enum=("layers",)),
        "diffIds": _Rule("array", items=_STRING, min_items=1),
    },
    required=("type", "diffIds"),
)
SCHEMA = _Rule(
    "object",
    properties={"descriptor": _DESCRIPTOR, "modelfs": _MODELFS, "config": _MODEL_CONFIG},
    required=("descriptor", "config", "modelfs"),
)
"""The whole config schema; every object has ``additionalProperties: false``."""


# RFC 3339 date-time as both validators of record accept it: upper-case T and Z, no leap seconds.
_DATE_TIME = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)


def is_date_time(s: str) -> bool:
    """True for an RFC 3339 ``date-time`` (e.g. ``2025-01-01T00:00:00Z``) naming a real calendar day."""
    m = _DATE_TIME.fullmatch(s)
    if m is None:
        return False
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return year > 0 and 1 <= day <= calendar.monthrange(year, month)[1]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_TYPE_CHECK = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
}


def _check(value: Any, rule: _Rule, where: str, out: list[str]) -> None:
    here = where or "config blob"
    if not _TYPE_CHECK[rule.type](value):
        article = "an" if rule.type[0] in "aeiou" else "a"
        out.append(f"{here}: must be {article} {rule.type}, got {_kind(value)}")
        return
    if rule.type == "object":
        for key in rule.required:
            if key not in value:
                out.append(f"{here}: '{key}' is required")
        for key, item in value.items():
            sub = rule.properties.get(key)
            path = f"{where}.{key}" if where else key
            if sub is None:
                out.append(f"{here}: unknown field '{key}' (known: {', '.join(rule.properties)})")
            else:
                _check(item, sub, path, out)
    elif rule.type == "array":
        if len(value) < rule.min_items:
            out.append(f"{here}: needs at least {rule.min_items} item(s), got {len(value)}")
        if rule.items is not None:
            for i, item in enumerate(value):
                _check(item, rule.items, f"{here}[{i}]", out)
    elif rule.type == "string":
        if len(value) < rule.min_length:
            out.append(f"{here}: must not be empty")
        if rule.enum and value not in rule.enum:
            out.append(f"{here}: {value!r} is not one of {', '.join(rule.enum)}")
        if rule.pattern and re.fullmatch(rule.pattern, value) is None:
            out.append(f"{here}: {value!r} does not match ^{rule.pattern}$")
        if rule.format == "date-time" and not is_date_time(value):
            out.append(f"{here}: {value!r} is not an RFC 3339 date-time (e.g. 2025-01-01T00:00:00Z)")


def validate_config(data: bytes | dict[str, Any]) -> list[str]:
    """Every way ``data`` breaks the ModelPack config schema, one line each; empty when it is valid."""
    if isinstance(data, (bytes, bytearray)):
        try:
            doc: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            return [f"config blob is not valid JSON: {e}"]
    else:
        doc = data
    out: list[str] = []
    _check(doc, SCHEMA, "", out)
    return out
