"""Unpacking layer blobs: verify first, refuse anything unsafe with nothing written, roll back on failure."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from kitbridge.errors import DigestMismatchError, UnpackError, UnsafeArchiveError
from kitbridge.layers.extract import LayerPlan, Unpacker, extract_layer, layer_encoding, scan_layer

TAR = "application/vnd.kitops.modelkit.model.v1.tar"
TGZ = "application/vnd.kitops.modelkit.model.v1.tar+gzip"
TZST = "application/vnd.kitops.modelkit.model.v1.tar+zstd"
RAW = "application/vnd.cncf.model.weight.v1.raw"


# ---- building layers ----------------------------------------------------------------------------


def f(name: str, data: bytes = b"data", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    info.pax_headers = {"kitbridge.test.data": data.hex()}  # tar_bytes takes the content from here
    return info


def d(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def tar_bytes(*members: tarfile.TarInfo, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for m in members:
            data = bytes.fromhex(m.pax_headers.get("kitbridge.test.data", ""))
            m = copy.copy(m)
            m.pax_headers = {}
            tf.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return buf.getvalue()


@dataclass
class Layer:
    path: Path
    media_type: str
    digest: str
    filepath: str | None = None
    mode: int | None = None


def blob(tmp_path: Path, data: bytes, media_type: str = TAR, **kw: object) -> Layer:
    if media_type == TGZ:
        data = gzip.compress(data)
    elif media_type == TZST:
        data = zstandard.ZstdCompressor().compress(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / "blobs" / digest.split(":")[1]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return Layer(path, media_type, digest, **kw)  # type: ignore[arg-type]


def unpack(
    dest: Path, *layers: Layer, overwrite: bool = False, ignore_existing: bool = False
) -> list[LayerPlan]:
    """What kitbridge's unpack does: scan every layer, then extract every layer."""
    with Unpacker(dest, overwrite=overwrite, ignore_existing=ignore_existing) as u:
        plans = []
        for layer in layers:
            with open(layer.path, "rb") as fh:
                plans.append(
                    u.scan(fh, layer.media_type, layer.digest, filepath=layer.filepath, mode=layer.mode)
                )
        for layer, plan in zip(layers, plans, strict=True):
            with open(layer.path, "rb") as fh:
                u.extract(fh, plan)
    return plans


def tree(root: Path) -> dict[str, str]:
    """Everything under root: relative path -> 'dir' / file content / 'link->target'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link->" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes().decode(errors="replace")
    return out


def mode_of(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


# ---- what gets written --------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [TAR, TGZ, TZST])
def test_extracts_files_and_dirs_with_their_modes(tmp_path: Path, media_type: str) -> None:
    layer = blob(
        tmp_path,
        tar_bytes(
            d("model", 0o750),
            f("model/w.bin", b"weights", 0o640),
            f("model/run.sh", b"#!/bin/sh", 0o755),
            f("./README.md", b"readme", 0o600),
            f("suid", b"s", 0o4755),
            d("ro", 0o555),
            f("ro/inside.txt", b"in a read-only dir", 0o444),
            f("implicit/parent/file.txt", b"deep"),
        ),
        media_type,
    )
    dest = tmp_path / "out"
    (plan,) = unpack(dest, layer)
    assert tree(dest) == {
        "model": "dir",
        "model/w.bin": "weights",
        "model/run.sh": "#!/bin/sh",
        "README.md": "readme",
        "suid": "s",
        "ro": "dir",
        "ro/inside.txt": "in a read-only dir",
        "implicit": "dir",
        "implicit/parent": "dir",
        "implicit/parent/file.txt": "deep",
    }
    assert mode_of(dest / "model") == 0o750
    assert mode_of(dest / "model/w.bin") == 0o640
    assert mode_of(dest / "model/run.sh") == 0o755
    assert mode_of(dest / "README.md") == 0o600
    assert mode_of(dest / "suid") == 0o755  # setuid dropped
    assert mode_of(dest / "ro") == 0o555
    assert mode_of(dest / "ro/inside.txt") == 0o444
    assert plan.size == len("weights#!/bin/shreadmesin a read-only dirdeep")
    assert plan.compression == {TAR: "none", TGZ: "gzip", TZST: "zstd"}[media_type]
    os.chmod(dest / "ro", 0o755)  # let pytest clean up


def test_long_names_from_pax_and_gnu_headers(tmp_path: Path) -> None:
    long = "dir-" + "x" * 120 + "/file-" + "y" * 110 + ".bin"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        dest = tmp_path / f"out-{fmt}"
        unpack(dest, blob(tmp_path, tar_bytes(f(long, b"long"), fmt=fmt)))
        assert (dest / long).read_bytes() == b"long"


def test_raw_layer_is_one_file_at_its_annotated_path(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    layer = blob(tmp_path, data, RAW, filepath="./model/w.safetensors", mode=0o600)
    dest = tmp_path / "out"
    (plan,) = unpack(dest, layer)
    assert (dest / "model/w.safetensors").read_bytes() == data
    assert mode_of(dest / "model/w.safetensors") == 0o600
    assert (plan.format, plan.size) == ("raw", len(data))
    assert (
        os.stat(dest / "model/w.safetensors").st_ino != os.stat(layer.path).st_ino
    )  # a copy, never the blob


def test_several_layers_merge_into_one_tree_without_temp_files(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    unpack(
        dest,
        blob(tmp_path, tar_bytes(d("model"), f("model/a.bin", b"a"))),
        blob(tmp_path, tar_bytes(d("model"), d("model/parts"), f("model/parts/b.bin", b"b"))),
        blob(tmp_path, b"raw", RAW, filepath="docs/c.md"),
    )
    assert tree(dest) == {
        "model": "dir",
        "model/a.bin": "a",
        "model/parts": "dir",
        "model/parts/b.bin": "b",
        "docs": "dir",
        "docs/c.md": "raw",
    }


def test_single_layer_helpers(tmp_path: Path) -> None:
    layer = blob(tmp_path, tar_bytes(f("x.txt", b"x")))
    dest = tmp_path / "out"
    with open(layer.path, "rb") as fh:
        plan = scan_layer(fh, layer.media_type, dest, digest=layer.digest)
    assert not dest.exists()
    with open(layer.path, "rb") as fh:
        extract_layer(fh, plan)
    assert tree(dest) == {"x.txt": "x"}


# ---- existing files -----------------------------------------------------------------------------


def test_an_existing_file_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "b.txt").write_bytes(b"mine")
    layer = blob(tmp_path, tar_bytes(f("a.txt", b"new a"), f("b.txt", b"new b")))
    with pytest.raises(UnpackError, match=r"'b\.txt' already exists") as info:
        unpack(dest, layer)
    assert (
        info.value.hint is not None
        and "--overwrite" in info.value.hint
        and "--ignore-existing" in info.value.hint
    )
    assert tree(dest) == {"b.txt": "mine"}


def test_overwrite_replaces_and_ignore_existing_keeps(tmp_path: Path) -> None:
    layer = blob(tmp_path, tar_bytes(f("a.txt", b"new a"), f("b.txt", b"new b", 0o600)))
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "b.txt").write_bytes(b"mine")
    unpack(kept, layer, ignore_existing=True)
    assert tree(kept) == {"a.txt": "new a", "b.txt": "mine"}
    replaced = tmp_path / "replaced"
    replaced.mkdir()
    (replaced / "b.txt").write_bytes(b"mine")
    unpack(replaced, layer, overwrite=True)
    assert tree(replaced) == {"a.txt": "new a", "b.txt": "new b"}
    assert mode_of(replaced / "b.txt") == 0o600
    with pytest.raises(UnpackError, match="exclude each other"):
        Unpacker(tmp_path, overwrite=True, ignore_existing=True)


def test_overwrite_replaces_a_symlink_itself_never_its_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "w.bin").symlink_to(outside)
    unpack(dest, blob(tmp_path, tar_bytes(f("w.bin", b"new"))), overwrite=True)
    assert outside.read_bytes() == b"precious"
    assert not (dest / "w.bin").is_symlink()
    assert (dest / "w.bin").read_bytes() == b"new"


def test_type_clashes_with_the_target_are_errors(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model").write_bytes(b"a file where a dir should be")
    (dest / "data").mkdir()
    for members, message in [
        ((f("model/w.bin"),), "is not a directory"),
        ((d("model"),), "is not a directory"),
        ((f("data"),), "as a directory"),
    ]:
        with pytest.raises(UnpackError, match=message):
            unpack(dest, blob(tmp_path, tar_bytes(*members)), overwrite=True)
    assert tree(dest) == {"model": "a file where a dir should be", "data": "dir"}
    target_file = tmp_path / "a-file"
    target_file.write_bytes(b"x")
    with pytest.raises(UnpackError, match="not a directory"):
        unpack(target_file, blob(tmp_path, tar_bytes(f("x"))))


def test_layers_that_contradict_each_other_are_refused_before_writing(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(UnpackError, match="more than once"):
        unpack(dest, blob(tmp_path, tar_bytes(f("a/x", b"1"))), blob(tmp_path, tar_bytes(f("a/x", b"2"))))
    with pytest.raises(UnpackError, match="which is a file"):
        unpack(dest, blob(tmp_path, tar_bytes(f("a", b"1"))), blob(tmp_path, tar_bytes(f("a/x", b"2"))))
    with pytest.raises(UnpackError, match="more than once"):
        unpack(dest, blob(tmp_path, tar_bytes(f("a/x", b"1"))), blob(tmp_path, tar_bytes(f("a", b"2"))))
    assert not dest.exists()


# ---- refusals -----------------------------------------------------------------------------------

MALICIOUS = {
    "absolute path": (f("/tmp/kitbridge-pwned"), "is an absolute path"),
    "parent dir": (f("../escape.txt"), "has a '..' component"),
    "parent dir after a dir": (f("a/../../escape.txt"), "has a '..' component"),
    "parent dir that stays inside": (f("a/../b.txt"), "has a '..' component"),
    "symlink": (special("link", tarfile.SYMTYPE, "/etc"), "is a symlink"),
    "relative symlink": (special("link", tarfile.SYMTYPE, "../.."), "is a symlink"),
    "hardlink": (special("hard", tarfile.LNKTYPE, "good.txt"), "is a hardlink"),
    "char device": (special("null", tarfile.CHRTYPE), "is a character device"),
    "block device": (special("sda", tarfile.BLKTYPE), "is a block device"),
    "fifo": (special("pipe", tarfile.FIFOTYPE), "is a FIFO"),
    "long pax name escaping": (f("a" * 120 + "/../../../escape.txt"), "has a '..' component"),
    "absolute long name": (f("/" + "b" * 150 + "/x"), "is an absolute path"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path: Path, case: str, fmt: int) -> None:
    member, message = MALICIOUS[case]
    good = blob(tmp_path, tar_bytes(d("model"), f("model/ok.bin", b"ok")))
    bad = blob(tmp_path, tar_bytes(f("good.txt", b"fine"), member, f("after.txt"), fmt=fmt))
    with tarfile.open(bad.path) as tf:  # the archive really holds the name as written
        assert member.name in tf.getnames()
    dest = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchiveError, match=message) as info:
        unpack(dest, good, bad)
    assert info.value.hint
    assert not (tmp_path / "work").exists()  # not even the target folder was created
    assert not Path("/tmp/kitbridge-pwned").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_a_symlink_in_the_target_cannot_carry_entries_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model").symlink_to(outside)
    (dest / "rel").symlink_to("../outside")
    for members in [(f("model/w.bin"),), (d("model"), f("model/w.bin")), (f("rel/x/y.bin"),)]:
        with pytest.raises(UnsafeArchiveError, match=r"outside .* through the symlink"):
            unpack(dest, blob(tmp_path, tar_bytes(f("first.txt"), *members)))
    assert list(outside.iterdir()) == []
    assert tree(dest) == {"model": f"link->{outside}", "rel": "link->../outside"}


def test_a_symlink_that_stays_inside_the_target_is_followed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "real").mkdir(parents=True)
    (dest / "model").symlink_to("real")
    unpack(dest, blob(tmp_path, tar_bytes(f("model/w.bin", b"w"))))
    assert (dest / "real" / "w.bin").read_bytes() == b"w"


def test_raw_layers_need_a_safe_filepath(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(UnpackError, match=r"no org\.cncf\.model\.filepath"):
        unpack(dest, blob(tmp_path, b"x", RAW))
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.'"):
        unpack(dest, blob(tmp_path, b"x", RAW, filepath="../x"))
    with pytest.raises(UnsafeArchiveError, match="absolute"):
        unpack(dest, blob(tmp_path, b"x", RAW, filepath="/etc/x"))
    with pytest.raises(UnpackError, match="unsupported layer media type"):
        unpack(dest, blob(tmp_path, b"x", "application/vnd.kitops.modelkit.model.v1.zip"))
    assert not dest.exists()


def test_layer_encoding_of_media_types() -> None:
    assert layer_encoding(TAR) == ("tar", "none")
    assert layer_encoding(TGZ) == ("tar", "gzip")
    assert layer_encoding(TZST) == ("tar", "zstd")
    assert layer_encoding(RAW) == ("raw", "none")
    assert layer_encoding("application/vnd.oci.image.layer.v1.tar+gzip") == ("tar", "gzip")
    assert layer_encoding("application/vnd.cnai.model.weight.v1.tar") == ("tar", "none")


# ---- digests and rollback -----------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [TAR, TGZ, TZST, RAW])
def test_a_corrupted_blob_is_refused_before_anything_is_written(tmp_path: Path, media_type: str) -> None:
    good = blob(tmp_path, tar_bytes(f("first.txt", b"first")))
    content = tar_bytes(f("a.txt", b"a" * 5000), f("b.txt", b"b" * 5000))
    bad = blob(tmp_path, content, media_type, filepath="w.bin")
    data = bytearray(bad.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: for gzip/zstd the stream may not even decode
    bad.path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError, match=bad.digest):
        unpack(dest, good, bad)
    assert not dest.exists()


def test_a_blob_that_changes_after_its_scan_is_rolled_back(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"original")
    first = blob(tmp_path, tar_bytes(d("model"), f("model/a.bin", b"a"), f("keep.txt", b"replacement")))
    second = blob(tmp_path, tar_bytes(d("data"), f("data/b.bin", b"bbbb")))
    with Unpacker(dest, overwrite=True) as u:
        plans = []
        for layer in (first, second):
            with open(layer.path, "rb") as fh:
                plans.append(u.scan(fh, layer.media_type, layer.digest))
    # Same entries, other bytes: a hardlinked blob edited in place between scan and extract.
    second.path.write_bytes(tar_bytes(d("data"), f("data/b.bin", b"BBBB")))
    with pytest.raises(DigestMismatchError), Unpacker(dest, overwrite=True) as u:
        for layer, plan in zip((first, second), plans, strict=True):
            with open(layer.path, "rb") as fh:
                u.extract(fh, plan)
    assert tree(dest) == {"keep.txt": "original"}  # new files and dirs gone, the replaced file restored


def test_a_blob_whose_entries_change_after_its_scan_is_rolled_back(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    layer = blob(tmp_path, tar_bytes(f("a.txt", b"a"), f("b.txt", b"b")))
    with open(layer.path, "rb") as fh:
        plan = scan_layer(fh, layer.media_type, dest, digest=layer.digest)
    layer.path.write_bytes(tar_bytes(f("a.txt", b"a"), f("evil.txt", b"b")))
    with pytest.raises(UnpackError, match="changed between scan and extract"), open(layer.path, "rb") as fh:
        extract_layer(fh, plan)
    assert not dest.exists()
