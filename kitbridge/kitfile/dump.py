"""Kitfile YAML in kit's style: what yaml.v3's ``Encoder`` with ``SetIndent(2)`` writes for kit's struct.

Struct field order, omitempty, sequences indented under their key, ``authors`` in flow style, strings
quoted when a YAML 1.2 reader (or an old YAML 1.1 one: ``yes``, ``on``, ``1:20``) would read them as
something else, multi-line strings as literal blocks, map keys in yaml.v3's "natural" order. Where
yaml.v3 would write something that does not read back as the same value (``-0.0``; line breaks other
than ``\\n`` inside a literal block; a line separator inside single quotes), we write a double-quoted
or ``-0.0`` form instead.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, is_dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import cmp_to_key
from typing import Any

from kitbridge.kitfile import yaml12
from kitbridge.kitfile.model import Docs, Kitfile, Package, kit_fields

_INDENT = 2
_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_BREAKS = "\r\n\x85\u2028\u2029"
_ESCAPES = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0A: "n",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x22: '"',
    0x5C: "\\",
    0x85: "N",
    0xA0: "_",
    0x2028: "L",
    0x2029: "P",
}


@dataclass(frozen=True)
class _Map:
    """A block mapping whose pairs are written in the given order (a Go struct, or a sorted Go map)."""

    pairs: list[tuple[str, Any]]


@dataclass(frozen=True)
class _Flow:
    """A flow-style sequence (``[a, b]``)."""

    items: list[Any]


# --- scalar analysis (yaml_emitter_analyze_scalar) ----------------------------------------------------------


def _printable(c: str) -> bool:
    o = ord(c)
    return o == 0x0A or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)


@dataclass(frozen=True)
class _Analysis:
    multiline: bool
    flow_plain: bool
    block_plain: bool
    single: bool
    block: bool


def _analyze(s: str) -> _Analysis:
    if not s:
        return _Analysis(False, False, True, True, False)
    block_ind = flow_ind = s.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_ws = True
    n = len(s)
    for i, c in enumerate(s):
        followed_by_ws = i + 1 >= n or s[i + 1] in " \t"
        if i == 0:
            if c in "#,[]{}&*!|>'\"%@`":
                flow_ind = block_ind = True
            elif c in "?:":
                flow_ind = True
                block_ind = block_ind or followed_by_ws
            elif c == "-" and followed_by_ws:
                flow_ind = block_ind = True
        elif c in ",?[]{}":
            flow_ind = True
        elif c == ":":
            flow_ind = True
            block_ind = block_ind or followed_by_ws
        elif c == "#" and preceded_by_ws:
            flow_ind = block_ind = True
        if c == "\t":
            tabs = True
        elif not _printable(c):
            special = True
        if c == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == n - 1
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif c in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == n - 1
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = c in " \t\0" or c in _BREAKS
    flow_plain = block_plain = single = block = True
    if leading_space or leading_break or trailing_space or trailing_break:
        flow_plain = block_plain = False
    if trailing_space:
        block = False
    if break_space:
        flow_plain = block_plain = single = False
    if space_break or tabs or special:
        flow_plain = block_plain = single = False
    if space_break or special:
        block = False
    if line_breaks:
        flow_plain = block_plain = False
    if flow_ind:
        flow_plain = False
    if block_ind:
        block_plain = False
    return _Analysis(line_breaks, flow_plain, block_plain, single, block)


def _can_use_plain(s: str) -> bool:
    # yaml.v3 stringv: plain only if the text resolves back to a string, and is no YAML 1.1 bool/base-60
    # float. "<<" would read back as a merge key.
    if s == "<<" or s in _OLD_BOOLS or not yaml12.is_plain_string(s):
        return False
    return not (s[:1] in "+-0123456789" and ":" in s and _BASE60.fullmatch(s))


def _string_style(s: str, flow: bool, key: bool) -> str:
    a = _analyze(s)
    if "\n" in s:
        style = "double" if flow else "literal"
    elif _can_use_plain(s):
        style = "plain"
    else:
        style = "double"
    if key and a.multiline:
        style = "double"
    if style == "plain":
        if not (a.flow_plain if flow else a.block_plain):
            style = "single"
        if not s and (flow or key):
            style = "single"
    if style == "single" and (not a.single or a.multiline):
        style = "double"
    if style == "literal" and (not a.block or flow or key or any(c in s for c in "\r\x85\u2028\u2029")):
        style = "double"
    return style


def _double_quoted(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if _printable(c) and c not in _BREAKS and c not in '"\\':
            out.append(c)
        elif o in _ESCAPES:
            out.append("\\" + _ESCAPES[o])
        elif o <= 0xFF:
            out.append(f"\\x{o:02X}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04X}")
        else:
            out.append(f"\\U{o:08X}")
    out.append('"')
    return "".join(out)


def _literal(s: str, indent: int) -> tuple[str, list[str]]:
    """The ``|`` header (with yaml.v3's indentation and chomping hints) and the content lines."""
    header = "|"
    if s[0] in " \n":
        header += str(_INDENT)
    if not s.endswith("\n"):
        header += "-"
    elif len(s) == 1 or s[-2] == "\n":
        header += "+"
    lines = s.split("\n")
    if s.endswith("\n"):
        lines.pop()
    return header, [" " * indent + line if line else "" for line in lines]


def _string(s: str, flow: bool = False, key: bool = False) -> str:
    style = _string_style(s, flow, key)
    if style == "plain":
        return s
    if style == "single":
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


def format_float(f: float) -> str:
    """Go ``strconv.FormatFloat(f, 'g', -1, 64)`` as yaml.v3 writes floats (``.inf``, ``.nan``)."""
    if math.isnan(f):
        return ".nan"
    if math.isinf(f):
        return ".inf" if f > 0 else "-.inf"
    if f == 0:
        # yaml.v3 writes "-0", which reads back as the integer 0; keep the sign.
        return "-0.0" if math.copysign(1.0, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(f))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    nd = len(digits)
    dp = nd + exponent  # value == 0.<digits> * 10**dp
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if nd > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return f"{sign}{digits}{'0' * (dp - nd)}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _scalar(value: Any, flow: bool = False) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, datetime):
        return yaml12.format_rfc3339nano(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return _string(str(value), flow=flow)


# --- map key order (yaml.v3 keyList.Less) -----------------------------------------------------------------


def _is_digit(c: str) -> bool:
    return unicodedata.category(c) == "Nd"


def _key_less(a: str, b: str) -> bool:
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            an = an * 10 + ord(a[ai]) - 48
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            bn = bn * 10 + ord(b[bi]) - 48
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _key_cmp(a: str, b: str) -> int:
    return -1 if _key_less(a, b) else (1 if _key_less(b, a) else 0)


def sorted_keys(keys: list[str]) -> list[str]:
    """Map keys in the order yaml.v3 writes them (numbers inside keys compare by value)."""
    return sorted(keys, key=cmp_to_key(_key_cmp))


# --- emitter ----------------------------------------------------------------------------------------------


def _tree(value: Any) -> Any:
    """Free-form values (parameters) -> emitter nodes: Go maps become sorted :class:`_Map`."""
    if isinstance(value, dict):
        items = {str(k): v for k, v in value.items()}
        return _Map([(k, _tree(items[k])) for k in sorted_keys(list(items))])
    if isinstance(value, (list, tuple)):
        return [_tree(v) for v in value]
    return value


def _emit(head: str, value: Any, indent: int, out: list[str], in_sequence: bool) -> None:
    """Write ``value`` after ``head`` (``key:`` or ``-``); nested block content goes at ``indent``."""
    if isinstance(value, _Flow):
        out.append(f"{head} [{', '.join(_scalar(v, flow=True) for v in value.items)}]")
        return
    if isinstance(value, (_Map, list)):
        empty = not (value.pairs if isinstance(value, _Map) else value)
        if empty:
            out.append(head + (" {}" if isinstance(value, _Map) else " []"))
            return
        lines: list[str] = []
        if isinstance(value, _Map):
            _emit_map(value, indent, lines)
        else:
            _emit_seq(value, indent, lines)
        if in_sequence:  # "- key: v" / "- - item": the first line shares the dash's line
            out.append(head + " " + lines[0][indent:])
            out.extend(lines[1:])
        else:
            out.append(head)
            out.extend(lines)
        return
    if isinstance(value, str) and _string_style(value, flow=False, key=False) == "literal":
        header, content = _literal(value, indent)
        out.append(f"{head} {header}")
        out.extend(content)
        return
    out.append(f"{head} {_scalar(value)}")


def _emit_map(m: _Map, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for key, value in m.pairs:
        if "\n" in key or any(c in key for c in _BREAKS) or len(key.encode("utf-8", "surrogatepass")) > 128:
            # Not a simple key: "? key" then ": value" on the next line.
            out.append(f"{pad}? {_double_quoted(key)}")
            _emit(pad + ":", value, indent + _INDENT, out, in_sequence=False)
        else:
            _emit(f"{pad}{_string(key, key=True)}:", value, indent + _INDENT, out, in_sequence=False)


def _emit_seq(items: list[Any], indent: int, out: list[str]) -> None:
    for item in items:
        _emit(" " * indent + "-", item, indent + _INDENT, out, in_sequence=True)


def _present(key: str, value: Any) -> bool:
    # omitempty: "" strings, empty lists and nil pointers are left out; "parameters" (an interface) only
    # when nil: an empty map or string in it is still written.
    return value is not None and (key == "parameters" or (value != "" and value != []))


def _yaml_struct(struct: Any) -> _Map:
    """A Kitfile struct as yaml.v3 encodes kit's struct: field order, omitempty, authors in flow style."""
    pairs: list[tuple[str, Any]] = []
    for key, value in kit_fields(struct):
        if key == "authors":
            value = _Flow(list(value)) if value else None
        elif key == "parameters":
            value = _tree(value)
        elif key == "package":
            # yaml.v3 omitempty drops an all-zero struct value; the model is a pointer: kept when set
            value = None if value == Package() else _yaml_struct(value)
        elif is_dataclass(value):
            value = _yaml_struct(value)
        elif isinstance(value, list):
            value = [_yaml_struct(v) if is_dataclass(v) else v for v in value]
        pairs.append((key, value))
    # manifestVersion and docs[].path have no omitempty: they are written even when empty.
    always = {"manifestVersion", "path"} if isinstance(struct, Docs) else {"manifestVersion"}
    return _Map([(k, v) for k, v in pairs if k in always or _present(k, v)])


def dump_kitfile(kf: Kitfile) -> str:
    """The Kitfile as YAML, the way kit writes one (``kit unpack``, ``kit init``)."""
    root = _yaml_struct(kf)
    out: list[str] = []
    _emit_map(root, 0, out)
    return "\n".join(out) + "\n"
