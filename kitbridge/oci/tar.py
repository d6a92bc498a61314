"""Tar header bytes exactly as Go's ``archive/tar`` Writer writes them for kit's layer entries.

Only headers: walking directories and streaming file data live in ``kitbridge.layers``. Kit clears
every field that is not reproducible, so a header depends on (name, mode, size, type) alone:
uid 1000, gid 0, empty uname/gname, mtime 0, no linkname. Go picks USTAR whenever the entry fits
(ASCII name <= 100 bytes or splittable into prefix <= 155 + name <= 100, size < 8 GiB) and PAX
otherwise; the PAX path mirrors ``Writer.writePAXHeader`` / ``writeRawFile`` byte for byte.
"""

from __future__ import annotations

import os

BLOCK = 512
END = b"\0" * (2 * BLOCK)
"""The end-of-archive marker: two zero blocks; Go writes no padding to a 10240-byte record."""

_NAME_SIZE = 100
_PREFIX_SIZE = 155
_UID = 1000
_GID = 0
_MAX_OCTAL_SIZE = 8**11 - 1  # the 12-byte size field holds 11 octal digits
_PAX_MAX = 1 << 20  # Go's maxSpecialFileSize for PAX record data

_TYPE_REG = b"0"
_TYPE_DIR = b"5"
_TYPE_PAX = b"x"


def pad(size: int) -> bytes:
    """The zero bytes that pad ``size`` bytes of entry data to a whole 512-byte block."""
    return b"\0" * (-size % BLOCK)


def entry_header(name: str, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) Go's tar Writer emits for one kit layer entry (PAX ``x`` block first if needed).

    ``name`` is the slash-separated relative path without a trailing slash (kit's form for
    directories too); ``mode`` keeps the permission, setuid, setgid and sticky bits.
    """
    bname = os.fsencode(name)
    mode &= 0o7777
    if is_dir:
        size = 0
    if size < 0:
        raise ValueError(f"negative size {size} for tar entry {name!r}")
    typeflag = _TYPE_DIR if is_dir else _TYPE_REG
    if len(bname) <= _NAME_SIZE and size <= _MAX_OCTAL_SIZE and _is_ascii(bname):
        return _main_header(bname, b"", mode, size, typeflag)  # the common case: plain USTAR
    pax: dict[bytes, bytes] = {}
    ustar_ok = True
    if not _is_ascii(bname) or len(bname) > _NAME_SIZE:
        pax[b"path"] = bname
        if _split_ustar_path(bname) is None:
            ustar_ok = False
    if size > _MAX_OCTAL_SIZE:
        pax[b"size"] = str(size).encode()
        ustar_ok = False

    if ustar_ok:
        split = _split_ustar_path(bname)
        prefix, short = split if split is not None else (b"", bname)
        return _main_header(short, prefix, mode, size, typeflag)

    records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    if len(records) > _PAX_MAX:
        raise ValueError(f"PAX header for {name!r} is larger than 1 MiB")
    head, _, base = bname.rpartition(b"/")
    xname = _go_path_join(head, b"PaxHeaders.0", base)
    xname = _to_ascii(xname)[:_NAME_SIZE].rstrip(b"/")
    xblock = _raw_file_header(xname, len(records), _TYPE_PAX)
    main = _main_header(_to_ascii(bname), b"", mode, size, typeflag)
    return xblock + records + pad(len(records)) + main


def _template() -> bytes:
    """The fields every main header shares: uid 1000, gid 0, mtime 0, magic, devmajor/devminor 0."""
    blk = bytearray(BLOCK)
    blk[108:116] = b"%07o\0" % _UID
    blk[116:124] = b"%07o\0" % _GID
    blk[136:148] = b"%011o\0" % 0
    blk[148:156] = b" " * 8  # the checksum is computed over spaces in its own field
    blk[257:265] = b"ustar\x0000"
    blk[329:345] = b"0000000\x000000000\0"
    # linkname (157), uname (265), gname (297) stay NUL: kit leaves them empty.
    return bytes(blk)


_MAIN_TEMPLATE = _template()


def _main_header(name: bytes, prefix: bytes, mode: int, size: int, typeflag: bytes) -> bytes:
    """``templateV7Plus`` + ``setFormat(USTAR|PAX)``: the entry's own header block."""
    blk = bytearray(_MAIN_TEMPLATE)
    _put_string(blk, 0, 100, name)
    blk[100:108] = b"%07o\0" % mode
    blk[124:136] = b"%011o\0" % (size if size <= _MAX_OCTAL_SIZE else 0)  # Go writes 0 when it cannot
    blk[156:157] = typeflag
    if prefix:
        _put_string(blk, 345, 155, prefix)
    blk[148:156] = b"%06o\0 " % sum(blk)
    return bytes(blk)


def _raw_file_header(name: bytes, size: int, typeflag: bytes) -> bytes:
    """``writeRawFile``: the PAX ``x`` block; mode/uid/gid/mtime are zero, devmajor/devminor NUL."""
    blk = bytearray(BLOCK)
    _put_string(blk, 0, 100, name)
    _put_octal(blk, 100, 8, 0)
    _put_octal(blk, 108, 8, 0)
    _put_octal(blk, 116, 8, 0)
    _put_octal(blk, 124, 12, size)
    _put_octal(blk, 136, 12, 0)
    blk[156:157] = typeflag
    return _finish(blk)


def _finish(blk: bytearray) -> bytes:
    """Set the ``ustar\\0`` magic, ``00`` version and the ``%06o\\0 `` checksum."""
    blk[257:263] = b"ustar\0"
    blk[263:265] = b"00"
    blk[148:156] = b" " * 8
    chksum = sum(blk)
    blk[148:156] = b"%06o\0 " % chksum
    return bytes(blk)


def _put_string(blk: bytearray, off: int, width: int, s: bytes) -> None:
    """Go ``formatter.formatString``: copy, NUL-terminate if shorter, clear trailing ``/`` of a cut name."""
    if len(s) <= width:
        blk[off : off + len(s)] = s  # the rest of the field is already NUL
        return
    blk[off : off + width] = s[:width]
    if s[width - 1 : width] == b"/":
        n = len(s[:width].rstrip(b"/"))
        blk[off + n : off + width] = b"\0" * (width - n)


def _put_octal(blk: bytearray, off: int, width: int, value: int) -> None:
    """Go ``formatter.formatOctal``: zero-padded octal leaving room for a trailing NUL."""
    _put_string(blk, off, width, b"%0*o" % (width - 1, value))


def _is_ascii(s: bytes) -> bool:
    return s.isascii() and b"\0" not in s


def _to_ascii(s: bytes) -> bytes:
    """Go ``toASCII``: drop every non-ASCII rune (all its bytes are >= 0x80) and NULs."""
    if _is_ascii(s):
        return s
    return bytes(c for c in s if 0 < c < 0x80)


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go ``splitUSTARPath``: (prefix, name) split at a ``/``, or None when it cannot be split."""
    length = len(name)
    if length <= _NAME_SIZE or not _is_ascii(name):
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > _NAME_SIZE or nlen == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1 :]


def _pax_record(key: bytes, value: bytes) -> bytes:
    """Go ``formatPAXRecord``: ``"%d %s=%s\\n"`` where the length counts itself."""
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = b"%d %s=%s\n" % (size, key, value)
    if len(record) != size:
        record = b"%d %s=%s\n" % (len(record), key, value)
    return record


def _go_path_join(*parts: bytes) -> bytes:
    """Go ``path.Join``: join the non-empty parts with ``/`` and clean the result."""
    joined = b"/".join(p for p in parts if p)
    return _go_clean(joined) if joined else b""


def _go_clean(p: bytes) -> bytes:
    """Go ``path.Clean`` on bytes (lexical: collapse ``//``, drop ``.``, resolve ``..``)."""
    if not p:
        return b"."
    rooted = p.startswith(b"/")
    out: list[bytes] = []
    for part in p.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if out and out[-1] != b"..":
                out.pop()
            elif not rooted:
                out.append(part)
            continue
        out.append(part)
    body = b"/".join(out)
    if rooted:
        return b"/" + body
    return body or b"."
