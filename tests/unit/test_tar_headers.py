"""Tar header bytes: Go archive/tar's choices for kit's entries, field by field and byte for byte.

The sha256 values below are of header bytes that were produced by this module and compared with
what Go 1.19's ``archive/tar`` Writer emits for the same kit-style header (uid 1000, gid 0, empty
names, zero mtime), so they pin the Go behaviour, not just this implementation.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from kitbridge.oci.tar import BLOCK, END, entry_header, pad


def field(block: bytes, off: int, width: int) -> bytes:
    return block[off : off + width]


def checksum_ok(block: bytes) -> bool:
    expect = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return field(block, 148, 8) == b"%06o\0 " % expect


def parse_pax(records: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    while records:
        length = int(records.split(b" ", 1)[0])
        rec, records = records[:length], records[length:]
        key, _, value = rec.split(b" ", 1)[1].rstrip(b"\n").partition(b"=")
        out[key.decode()] = value.decode()
    return out


# (name, mode, size, is_dir) -> sha256 of the header bytes Go 1.19 archive/tar writes for it.
GO_HEADERS: dict[str, tuple[tuple[str, int, int, bool], str]] = {
    "file": (
        ("model/w.bin", 0o644, 1000, False),
        "7ffc026647eec37f646f88e1bbd0d9fc827b4b76e95d62c9b5b5983007ea7a4c",
    ),
    "dir": (("model", 0o755, 0, True), "cf0b6bf87d4abc7e678fdd6418f34523ce7fac0ca1691289ece9a8db2419fbb1"),
    "name-100": (
        ("d/" + "n" * 98, 0o644, 5, False),
        "0dce8ea29b562b4af8835d89fc91ebfccc71810d8bbc4d96e5111b7e7f33df60",
    ),
    "name-101-split": (
        ("d/" + "n" * 99, 0o644, 5, False),
        "7b11d76338ab43bc80193363cbd132d1429872baa0e2306cf9b0f68641be9f23",
    ),
    "name-256-split": (
        ("p" * 155 + "/" + "f" * 100, 0o600, 1, False),
        "b6d7f6dffda5c17d1dc32dd81c8f29b2f08c84a371978632609ecf7903c9c0c3",
    ),
    "name-257-pax": (
        ("p" * 155 + "/" + "f" * 101, 0o600, 1, False),
        "6b1aa4ba2045352dfdc840c940437f3b9656a1a4538ced1ce2db86d3a99741d0",
    ),
    "non-ascii": (
        ("model/ü", 0o644, 3, False),
        "e1a7ef3fd8fa71c2db3a791464f2a506458849d5efb620f58a89fc33b6b6028d",
    ),
    "size-9GiB": (
        ("big.bin", 0o644, 9 * 2**30, False),
        "0e4af1529535d86397189681aafc37c1bbd0f618616a11afd2a16b911bc25f77",
    ),
    "size-8GiB-1": (
        ("big.bin", 0o644, 8 * 2**30 - 1, False),
        "36491f7044c6dbeca5d4efbbdb9164e32c74092d71dde363f9da379139d3c376",
    ),
    "special-bits": (
        ("s", 0o7755, 0, True),
        "d05b2b91ebd87e21659f1a7cb96529ebbbfe7c67b9c80d42bfa76e3635aeac8f",
    ),
    "ascii-part-100": (
        ("a" * 99 + "/" + "é" * 10, 0o644, 0, False),
        "34f65227dedfeab36ca0bddd65f4042db4a167b4e8be81e744bc608ea5dd5169",
    ),
    "ascii-part-cut-at-slash": (
        ("a" * 99 + "/" + "b" * 10 + "é", 0o644, 0, False),
        "de92f9388c84050edabfbb64ed01a436a9f2e6c91bd91a587d9f5397601c7744",
    ),
}


@pytest.mark.parametrize("case", sorted(GO_HEADERS))
def test_header_bytes_equal_go_archive_tar(case: str) -> None:
    args, sha256 = GO_HEADERS[case]
    assert hashlib.sha256(entry_header(*args)).hexdigest() == sha256


def test_ustar_file_header_fields() -> None:
    h = entry_header("model/w.bin", 0o644, 1000, False)
    assert len(h) == BLOCK
    assert field(h, 0, 100) == b"model/w.bin".ljust(100, b"\0")
    assert field(h, 100, 8) == b"0000644\0"
    assert field(h, 108, 8) == b"0001750\0"  # uid 1000
    assert field(h, 116, 8) == b"0000000\0"  # gid 0
    assert field(h, 124, 12) == b"00000001750\0"  # 1000 bytes
    assert field(h, 136, 12) == b"00000000000\0"  # mtime 0
    assert field(h, 156, 1) == b"0"
    assert field(h, 157, 100) == b"\0" * 100  # no linkname
    assert field(h, 257, 8) == b"ustar\x0000"
    assert field(h, 265, 64) == b"\0" * 64  # empty uname and gname
    assert field(h, 329, 16) == b"0000000\x000000000\0"  # devmajor, devminor
    assert field(h, 345, 155) == b"\0" * 155
    assert checksum_ok(h)
    assert field(h, 148, 8)[6:] == b"\0 "


def test_directory_has_no_trailing_slash_and_type_5() -> None:
    h = entry_header("model/sub", 0o750, 123, True)
    assert field(h, 0, 100) == b"model/sub".ljust(100, b"\0")
    assert field(h, 156, 1) == b"5"
    assert field(h, 124, 12) == b"00000000000\0"  # size is forced to 0
    assert field(h, 100, 8) == b"0000750\0"


def test_special_mode_bits_are_kept_and_type_bits_dropped() -> None:
    assert field(entry_header("x", 0o104755, 0, False), 100, 8) == b"0004755\0"
    assert field(entry_header("d", 0o43775, 0, True), 100, 8) == b"0003775\0"


def test_name_of_exactly_100_bytes_fills_the_field_without_nul() -> None:
    name = "d/" + "n" * 98
    h = entry_header(name, 0o644, 5, False)
    assert len(h) == BLOCK
    assert field(h, 0, 100) == name.encode()
    assert field(h, 345, 155) == b"\0" * 155


def test_101_byte_name_is_split_into_prefix_and_name() -> None:
    h = entry_header("d/" + "n" * 99, 0o644, 5, False)
    assert len(h) == BLOCK
    assert field(h, 0, 100) == b"n" * 99 + b"\0"
    assert field(h, 345, 155) == b"d".ljust(155, b"\0")


def test_256_byte_name_is_the_longest_ustar_split() -> None:
    name = "p" * 155 + "/" + "f" * 100
    h = entry_header(name, 0o600, 1, False)
    assert len(h) == BLOCK
    assert field(h, 0, 100) == b"f" * 100
    assert field(h, 345, 155) == b"p" * 155


def test_257_byte_name_gets_a_pax_path_record() -> None:
    name = "p" * 155 + "/" + "f" * 101
    h = entry_header(name, 0o600, 1, False)
    assert len(h) == 3 * BLOCK
    xblock, data, main = h[:BLOCK], h[BLOCK : 2 * BLOCK], h[2 * BLOCK :]
    assert field(xblock, 156, 1) == b"x"
    # path.Join(dir, "PaxHeaders.0", base) cut to 100 bytes
    assert field(xblock, 0, 100) == ("p" * 155 + "/PaxHeaders.0/" + "f" * 101).encode()[:100]
    for off in (100, 108, 116):
        assert field(xblock, off, 8) == b"0000000\0"
    assert field(xblock, 329, 16) == b"\0" * 16  # writeRawFile leaves devmajor/devminor NUL
    records = data[: int(field(xblock, 124, 12)[:11], 8)]
    assert records == b"267 path=" + name.encode() + b"\n"
    assert data[len(records) :] == b"\0" * (BLOCK - len(records))
    assert field(main, 0, 100) == b"p" * 100  # the name cut to 100 bytes, no prefix
    assert field(main, 345, 155) == b"\0" * 155
    assert checksum_ok(xblock) and checksum_ok(main)


def test_unsplittable_name_gets_pax_even_when_short_enough_to_split() -> None:
    name = "d/" + "t" * 120  # the last component alone is over 100 bytes
    h = entry_header(name, 0o644, 0, False)
    assert len(h) == 3 * BLOCK
    assert parse_pax(h[BLOCK : 2 * BLOCK].rstrip(b"\0")) == {"path": name}


def test_non_ascii_name_gets_pax_and_ascii_only_ustar_name() -> None:
    h = entry_header("model/ü", 0o644, 3, False)
    assert len(h) == 3 * BLOCK
    assert field(h, 0, 100) == b"model/PaxHeaders.0".ljust(100, b"\0")  # trailing '/' trimmed
    assert parse_pax(h[BLOCK : 2 * BLOCK].rstrip(b"\0")) == {"path": "model/ü"}
    assert field(h[2 * BLOCK :], 0, 100) == b"model/".ljust(100, b"\0")  # toASCII drops the ü


def test_cut_name_ending_in_slash_is_nul_padded() -> None:
    # ASCII part "a"*99 + "/" + "b"*10 is cut to 100 bytes, ending in "/": Go writes NUL there
    main = entry_header("a" * 99 + "/" + "b" * 10 + "é", 0o644, 0, False)[2 * BLOCK :]
    assert field(main, 0, 100) == b"a" * 99 + b"\0"
    # an ASCII part of exactly 100 bytes is not cut, so its trailing "/" stays
    main = entry_header("a" * 99 + "/" + "é" * 10, 0o644, 0, False)[2 * BLOCK :]
    assert field(main, 0, 100) == b"a" * 99 + b"/"


def test_size_from_8_gib_needs_pax_size_record_and_zero_size_field() -> None:
    size = 9 * 2**30
    h = entry_header("big.bin", 0o644, size, False)
    assert len(h) == 3 * BLOCK
    assert parse_pax(h[BLOCK : 2 * BLOCK].rstrip(b"\0")) == {"size": str(size)}
    assert field(h, 0, 100) == b"PaxHeaders.0/big.bin".ljust(100, b"\0")
    assert field(h[2 * BLOCK :], 124, 12) == b"00000000000\0"
    # one byte less still fits the 11 octal digits: plain USTAR
    small = entry_header("big.bin", 0o644, 8 * 2**30 - 1, False)
    assert len(small) == BLOCK and field(small, 124, 12) == b"77777777777\0"


def test_pax_records_are_sorted_path_before_size() -> None:
    name = "x" * 150
    h = entry_header(name, 0o644, 2**33, False)
    data = h[BLOCK : 2 * BLOCK].rstrip(b"\0")
    assert data == b"160 path=" + name.encode() + b"\n19 size=8589934592\n"


def test_pad_and_end_marker() -> None:
    assert pad(0) == b"" and pad(512) == b"" and pad(1) == b"\0" * 511 and pad(513) == b"\0" * 511
    assert END == b"\0" * 1024


def test_python_tarfile_reads_the_headers_back() -> None:
    names = ["a", "d/" + "n" * 99, "p" * 155 + "/" + "f" * 101, "model/ü"]
    raw = b"".join(entry_header(n, 0o640, 3, False) + b"abc" + pad(3) for n in names) + END
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == names
        assert all((m.uid, m.gid, m.mtime, m.mode, m.uname) == (1000, 0, 0, 0o640, "") for m in members)
        assert all(tf.extractfile(m).read() == b"abc" for m in members)  # type: ignore[union-attr]
