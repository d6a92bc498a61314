"""A JSON encoder that writes exactly what Go's ``encoding/json`` (Go >= 1.22) ``Marshal`` writes.

Digests of configs and manifests depend on every byte, so we cannot use ``json.dumps``:
Go escapes ``<``, ``>``, ``&``, U+2028 and U+2029, prints floats in its own shortest form
(``1200``, ``1e+21``, ``1e-7``), sorts map keys bytewise, and keeps struct fields in
declaration order.

Convention: a :class:`Struct` keeps its insertion order (a Go struct); every other mapping is a
Go map and is written with its keys sorted by their UTF-8 bytes. ``datetime`` values are written
as Go's ``time.Time`` (RFC 3339 with trailing zeros of the fraction trimmed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any


class Struct(dict[str, Any]):
    """A dict written in insertion order, like the fields of a Go struct."""


_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _escape_char(c: str) -> str:
    if c in _SHORT:
        return _SHORT[c]
    if c in _HTML:
        return _HTML[c]
    if c < " ":
        return f"\\u{ord(c):04x}"
    return c


_ESCAPES = {chr(i): _escape_char(chr(i)) for i in range(0x20)} | _SHORT | _HTML


def _string(s: str) -> str:
    # Fast path: most strings (paths, digests, media types) need no escaping at all.
    if not any(c in _ESCAPES for c in s):
        return f'"{s}"'
    # Go writes invalid UTF-8 as U+FFFD; Python str cannot hold it except as surrogates.
    return '"' + "".join(_ESCAPES.get(c, c) for c in s.encode("utf-8", "replace").decode("utf-8")) + '"'


def format_float(f: float) -> str:
    """Go's ``encoding/json`` float64 formatting (strconv 'f' or 'e', shortest round-trip digits)."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    # repr() gives the shortest digits that round-trip, like strconv with precision -1.
    _, digit_tuple, exp = Decimal(repr(abs(f))).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exp  # value == 0.<digits> * 10**point
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        e = point - 1
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if e < 0 else '+'}{abs(e)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_time(t: datetime) -> str:
    """Go's ``time.Time.MarshalJSON``: RFC 3339, fraction without trailing zeros, ``Z`` for UTC."""
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += ("." + f"{t.microsecond:06d}").rstrip("0")
    off = t.utcoffset()
    if off is None or off == timedelta(0):
        return base + "Z"
    total = int(off.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{base}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def _encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(format_float(v))
    elif isinstance(v, datetime):
        out.append(_string(format_time(v if v.tzinfo else v.replace(tzinfo=timezone.utc))))
    elif isinstance(v, Struct):
        _pairs(v.items(), out)
    elif isinstance(v, Mapping):
        _pairs(sorted(((str(k), x) for k, x in v.items()), key=lambda kv: kv[0].encode()), out)
    elif isinstance(v, (bytes, bytearray)):
        raise TypeError("json: []byte values are not used in kitbridge documents")
    elif isinstance(v, Sequence):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _encode(x, out)
        out.append("]")
    else:
        raise TypeError(f"json: unsupported type {type(v).__name__}")


def _pairs(items: Any, out: list[str]) -> None:
    out.append("{")
    first = True
    for k, x in items:
        if not first:
            out.append(",")
        first = False
        out.append(_string(k))
        out.append(":")
        _encode(x, out)
    out.append("}")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact JSON bytes, byte-identical to Go's ``json.Marshal``."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
