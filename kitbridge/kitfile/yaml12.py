"""YAML reading with the scalar rules of Go's ``gopkg.in/yaml.v3`` 3.0.1, the library kit reads Kitfiles with.

PyYAML parses (and keeps line numbers), but its resolvers follow YAML 1.1 (``yes`` is a bool, ``1e21`` a
string), so we compose nodes with every implicit resolver switched off and resolve plain scalars ourselves,
the way yaml.v3's ``resolve()`` does: Go ``strconv`` integers (``0xFF``, ``0o17``, legacy ``0777``), YAML 1.2
floats, only ``true``/``false`` (three spellings each) as bools, and timestamps parsed with Go ``time.Parse``
layouts. The same resolver decides, when dumping, which strings must be quoted.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kitbridge.errors import KitfileError

# Untagged plain scalars get this tag at compose time; everything else keeps the tag the parser gives it.
PLAIN_TAG = "tag:kitbridge.local,2026:plain"
_LONG_PREFIX = "tag:yaml.org,2002:"
_STR_LONG = _LONG_PREFIX + "str"
_SEQ_LONG = _LONG_PREFIX + "seq"
_MAP_LONG = _LONG_PREFIX + "map"

NULL, BOOL, STR, INT, FLOAT, TIMESTAMP, BINARY, MERGE = (
    "!!null",
    "!!bool",
    "!!str",
    "!!int",
    "!!float",
    "!!timestamp",
    "!!binary",
    "!!merge",
)
_RESOLVABLE = frozenset({"", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP})

# yaml.v3 refuses documents that expand aliases without bound; so do we.
_MAX_NODES = 1_000_000


class _Loader(yaml.SafeLoader):
    """A composer whose only resolution is "plain and untagged" versus "anything else"."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return PLAIN_TAG if implicit[0] else _STR_LONG
        return _SEQ_LONG if kind is SequenceNode else _MAP_LONG


def compose(text: str | bytes, source: str) -> Node | None:
    """Compose the first YAML document of ``text`` (like yaml.v3's ``Decoder.Decode``); None when empty."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        if not loader.check_node():
            return None
        node = loader.get_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        message = f"{where}: invalid YAML: {e.problem or e.context}"
        if e.problem and e.context:
            at = f" at line {e.context_mark.line + 1}" if e.context_mark is not None else ""
            message += f" ({e.context}{at})"
        raise KitfileError(message, "fix the YAML syntax") from None
    except yaml.YAMLError as e:  # reader errors: bad encoding, control characters
        raise KitfileError(f"{source}: invalid YAML: {e}", "fix the YAML syntax") from None
    finally:
        if loader is not None:
            loader.dispose()
    return node


def line_of(node: Node) -> int:
    """1-based line of a node."""
    return int(node.start_mark.line) + 1


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:int`` -> ``!!int`` (yaml.v3's shortTag)."""
    if tag.startswith(_LONG_PREFIX):
        return "!!" + tag[len(_LONG_PREFIX) :]
    return tag


# --- Go strconv -------------------------------------------------------------------------------------------

_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


def _digit_value(c: str) -> int:
    if "0" <= c <= "9":
        return ord(c) - 48
    if "a" <= c.lower() <= "z":
        return ord(c.lower()) - 87
    return 99


def _parse_uint(s: str) -> int | None:
    """strconv.ParseUint(s, 0, 64) without underscores; None on a syntax or range error."""
    if not s:
        return None
    base = 10
    if s[0] == "0":
        prefix = s[1:2].lower()
        if len(s) >= 3 and prefix == "b":
            base, s = 2, s[2:]
        elif len(s) >= 3 and prefix == "o":
            base, s = 8, s[2:]
        elif len(s) >= 3 and prefix == "x":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    n = 0
    for c in s:
        d = _digit_value(c)
        if d >= base:
            return None
        n = n * base + d
    return n if n <= _UINT64_MAX else None


def go_parse_int(s: str) -> int | None:
    """strconv.ParseInt(s, 0, 64) for strings without underscores; None on error."""
    neg = False
    body = s
    if body[:1] in ("+", "-"):
        neg = body[0] == "-"
        body = body[1:]
    un = _parse_uint(body)
    if un is None:
        return None
    if neg:
        return -un if un <= _INT64_MAX + 1 else None
    return un if un <= _INT64_MAX else None


def go_parse_uint(s: str) -> int | None:
    """strconv.ParseUint(s, 0, 64); None on error."""
    return _parse_uint(s)


_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")


def _finite_float(s: str) -> float | None:
    f = float(s)
    # Go's ParseFloat reports overflow as an error; yaml.v3 then keeps the text as a string.
    return f if math.isfinite(f) else None


# --- Go time.Parse with yaml.v3's four layouts ------------------------------------------------------------


def _isdigit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _getnum(s: str, fixed: bool) -> tuple[int, str] | None:
    if not _isdigit(s, 0):
        return None
    if not _isdigit(s, 1):
        return None if fixed else (ord(s[0]) - 48, s[1:])
    return (ord(s[0]) - 48) * 10 + ord(s[1]) - 48, s[2:]


def _skip_space(s: str) -> str | None:
    # A space in a Go layout matches any run of spaces (or nothing at the end of the input).
    if s and s[0] != " ":
        return None
    return s.lstrip(" ")


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse_layout(s: str, sep: str | None, zone: bool) -> tuple[int, ...] | None:
    """Parse ``2006-1-2`` [``<sep>15:4:5.999999999`` [``Z07:00``]]; return the fields or None."""
    year, rest = int(s[:4]), s[4:]
    if not rest.startswith("-"):
        return None
    got = _getnum(rest[1:], False)
    if got is None or not 1 <= got[0] <= 12:
        return None
    month, rest = got
    if not rest.startswith("-"):
        return None
    got = _getnum(rest[1:], False)
    if got is None or got[0] > 31:
        return None
    day, rest = got
    hour = minute = second = nanos = 0
    offset: int | None = None  # seconds east of UTC; None = UTC
    if sep is not None:
        if sep == " ":
            skipped = _skip_space(rest)
            if skipped is None:
                return None
            rest = skipped
        elif rest.startswith(sep):
            rest = rest[1:]
        else:
            return None
        parts: list[int] = []
        for i, limit in enumerate((24, 60, 60)):
            if i and not rest.startswith(":"):
                return None
            got = _getnum(rest[1:] if i else rest, False)
            if got is None or got[0] >= limit:
                return None
            parts.append(got[0])
            rest = got[1]
        hour, minute, second = parts
        if len(rest) >= 2 and rest[0] in ".," and _isdigit(rest, 1):
            n = 1
            while _isdigit(rest, n):
                n += 1
            frac = rest[1:n][:9]
            nanos = int(frac) * 10 ** (9 - len(frac))
            rest = rest[n:]
        if zone:
            if rest.startswith("Z"):
                rest = rest[1:]
            else:
                if len(rest) < 6 or rest[3] != ":" or rest[0] not in "+-":
                    return None
                hh, mm = _getnum(rest[1:3], True), _getnum(rest[4:6], True)
                if hh is None or mm is None or hh[0] > 24 or mm[0] > 60:
                    return None
                offset = (hh[0] * 60 + mm[0]) * 60 * (-1 if rest[0] == "-" else 1)
                rest = rest[6:]
    if rest:
        return None
    if day < 1 or day > _days_in(month, year):
        return None
    return year, month, day, hour, minute, second, nanos, (0 if offset is None else offset)


def format_rfc3339nano(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` (what yaml.v3 writes for a time and json.Marshal puts in quotes)."""
    frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return _format_fields(t.year, t.month, t.day, t.hour, t.minute, t.second, frac, _offset_seconds(t))


def _offset_seconds(t: datetime) -> int:
    off = t.utcoffset()
    return 0 if off is None else int(off.total_seconds())


def _format_fields(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str, offset: int) -> str:
    base = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}"
    if offset == 0:
        return base + "Z"
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_timestamp(s: str) -> datetime | str | None:
    """yaml.v3's parseTimestamp; None when ``s`` is not a timestamp.

    The result is an aware datetime (UTC when no zone is given). A time Python cannot hold exactly
    (nanoseconds, years before 1000, offsets of 24 hours) comes back as the RFC 3339 text Go would
    marshal it to, so the JSON bytes stay right.
    """
    if len(s) < 5 or not all("0" <= c <= "9" for c in s[:4]) or s[4] != "-":
        return None
    for sep, zone in (("T", True), ("t", True), (" ", False), (None, False)):
        fields = _parse_layout(s, sep, zone)
        if fields is not None:
            break
    else:
        return None
    year, month, day, hour, minute, second, nanos, offset = fields
    if nanos % 1000 or year < 1000 or abs(offset) >= 86400:
        frac = f".{nanos:09d}".rstrip("0") if nanos else ""
        return _format_fields(year, month, day, hour, minute, second, frac, offset)
    tz = timezone.utc if offset == 0 else timezone(timedelta(seconds=offset))
    return datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=tz)


# --- yaml.v3 resolve() ------------------------------------------------------------------------------------

_HINTS = {c: "D" for c in "0123456789"} | {"+": "S", "-": "S", ".": "."} | {c: "M" for c in "yYnNtTfFoO~"}
_MAP: dict[str, tuple[str, Any]] = {}
for _tag, _value, _spellings in (
    (BOOL, True, ("true", "True", "TRUE")),
    (BOOL, False, ("false", "False", "FALSE")),
    (NULL, None, ("", "~", "null", "Null", "NULL")),
    (FLOAT, math.nan, (".nan", ".NaN", ".NAN")),
    (FLOAT, math.inf, (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
    (FLOAT, -math.inf, ("-.inf", "-.Inf", "-.INF")),
):
    for _s in _spellings:
        _MAP[_s] = (_tag, _value)


def _resolve_untyped(tag: str, s: str) -> tuple[str, Any]:
    hint = "N" if s == "" else _HINTS.get(s[0], "")
    if not hint or tag in (STR, BINARY):
        return STR, s
    if s in _MAP:
        return _MAP[s]
    if hint == ".":
        if _DOT_FLOAT.fullmatch(s):
            f = _finite_float(s)
            if f is not None:
                return FLOAT, f
    elif hint in "DS":
        if tag in ("", TIMESTAMP):
            t = parse_timestamp(s)
            if t is not None:
                return TIMESTAMP, t
        plain = s.replace("_", "")
        n = go_parse_int(plain)
        if n is None:
            n = go_parse_uint(plain)
        if n is not None:
            return INT, n
        if _YAML_FLOAT.fullmatch(plain):
            f = _finite_float(plain)
            if f is not None:
                return FLOAT, f
    return STR, s


def resolve(tag: str, s: str) -> tuple[str, Any]:
    """yaml.v3's ``resolve(tag, in)``: the resolved short tag and value; ValueError if the tag misfits."""
    if tag not in _RESOLVABLE:
        return tag, s
    rtag, out = _resolve_untyped(tag, s)
    if tag in ("", rtag, STR, BINARY):
        return rtag, out
    if tag == FLOAT and rtag == INT and -_INT64_MAX - 1 <= out <= _INT64_MAX:
        return FLOAT, float(out)
    raise ValueError(f"cannot decode {rtag} `{s}` as a {tag}")


def is_plain_string(s: str) -> bool:
    """True when ``s`` written unquoted reads back as the same string under yaml.v3's rules."""
    return resolve("", s)[0] == STR


# --- node -> Python -----------------------------------------------------------------------------------------


def _fail(source: str, node: Node, message: str, hint: str | None = None) -> KitfileError:
    return KitfileError(f"{source} line {line_of(node)}: {message}", hint)


def _go_string(data: bytes) -> str:
    # Go keeps the bytes and json.Marshal writes each invalid byte as U+FFFD; do that now.
    text = data.decode("utf-8", "surrogateescape")
    return re.sub("[\udc80-\udcff]", "\ufffd", text)


def _binary(source: str, node: ScalarNode) -> str:
    try:
        data = base64.b64decode(re.sub("[\r\n]", "", node.value), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(source, node, "!!binary value contains invalid base64 data") from None
    return _go_string(data)


def _is_merge_key(node: Node) -> bool:
    if not isinstance(node, ScalarNode) or node.value != "<<":
        return False
    return (node.tag == PLAIN_TAG and node.style is None) or short_tag(node.tag) == MERGE


def scalar_value(node: ScalarNode, source: str) -> Any:
    """The value yaml.v3 decodes a scalar to inside an ``interface{}``."""
    if node.tag == PLAIN_TAG:
        return resolve("", node.value)[1] if node.style is None else node.value
    tag = short_tag(node.tag)
    if tag == STR:
        return node.value
    if tag == BINARY:
        return _binary(source, node)
    try:
        return resolve(tag, node.value)[1]
    except ValueError as e:
        raise _fail(source, node, str(e)) from None


def is_null(node: Node) -> bool:
    """True for a scalar that yaml.v3 decodes as null (``~``, ``null``, empty, ``!!null``)."""
    if not isinstance(node, ScalarNode):
        return False
    if node.tag == PLAIN_TAG:
        return node.style is None and resolve("", node.value)[0] == NULL
    return short_tag(node.tag) == NULL and resolve(NULL, node.value)[0] == NULL


def kind_name(node: Node) -> str:
    """How an error message names a node's kind."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "a scalar"


def string_value(node: Node, source: str, what: str) -> str:
    """A typed Go ``string`` field: the scalar's literal text (``1.10`` stays "1.10"), null -> ""."""
    if not isinstance(node, ScalarNode):
        raise _fail(source, node, f"{what} must be a string, got {kind_name(node)}")
    if node.tag == PLAIN_TAG:
        if node.style is None and resolve("", node.value)[0] == NULL:
            return ""
        return str(node.value)
    tag = short_tag(node.tag)
    if tag == BINARY:
        return _binary(source, node)
    if tag != STR:
        try:
            if resolve(tag, node.value)[0] == NULL:
                return ""
        except ValueError as e:
            raise _fail(source, node, f"{what}: {e}") from None
    return str(node.value)


def mapping_key(node: Node, source: str) -> str:
    """A mapping key as a string, the way it was written; merge keys and complex keys are refused."""
    if _is_merge_key(node):
        raise _fail(source, node, "merge keys ('<<') are not supported", "write the keys out in full")
    if not isinstance(node, ScalarNode):
        raise _fail(source, node, f"a mapping key must be a scalar, got {kind_name(node)}")
    if short_tag(node.tag) == BINARY:
        return _binary(source, node)
    return str(node.value)


def check_unique_keys(node: MappingNode, source: str) -> None:
    """yaml.v3 refuses a mapping whose keys repeat (same kind and same text)."""
    seen: dict[tuple[type, str], Node] = {}
    for key, _ in node.value:
        ident = (type(key), str(key.value) if isinstance(key, ScalarNode) else "")
        first = seen.get(ident)
        if first is not None:
            raise _fail(
                source,
                key,
                f"mapping key {mapping_key(key, source)!r} already defined at line {line_of(first)}",
            )
        seen[ident] = key


class _Builder:
    """Turns nodes into plain Python values (dict, list, str, int, float, bool, None, datetime)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: Node) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _fail(self.source, node, "document contains excessive aliasing")
        if isinstance(node, ScalarNode):
            return scalar_value(node, self.source)
        if id(node) in self.active:
            raise _fail(self.source, node, "an alias refers to a node that contains it")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item) for item in node.value]
            assert isinstance(node, MappingNode)
            check_unique_keys(node, self.source)
            return {mapping_key(k, self.source): self.build(v) for k, v in node.value}
        finally:
            self.active.discard(id(node))


def build_value(node: Node, source: str) -> Any:
    """A free-form value (Kitfile ``parameters``) as yaml.v3 decodes it into ``interface{}``.

    Mapping keys that are not strings keep the text they were written with (Go would fail to
    marshal such a map to JSON).
    """
    return _Builder(source).build(node)


def load(text: str | bytes, source: str = "YAML") -> Any:
    """Load the first document of ``text`` into plain Python values (None for an empty document)."""
    node = compose(text, source)
    return None if node is None else build_value(node, source)
