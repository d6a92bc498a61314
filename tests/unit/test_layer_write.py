"""Layer writers: kit-identical tar bytes, compressed variants, raw blobs, and files that change."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gzip
import hashlib
import io
import mmap
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from conftest import require_tool

from kitbridge.errors import PackError
from kitbridge.layers.ignore import IgnoreMatcher
from kitbridge.layers.walk import WalkEntry, walk_layer
from kitbridge.layers.write import LayerDigests, write_raw_layer, write_tar_layer
from kitbridge.oci import writeback
from kitbridge.oci.store import Store
from kitbridge.oci.tar import END, entry_header, pad
from kitbridge.pack import _LayerSink
from kitbridge.progress import NoProgress

pack_module = sys.modules["kitbridge.pack"]  # ``kitbridge.pack`` the attribute is the function

# Layer digests of the trees below. Each was produced by this writer and compared byte for byte with
# the output of a Go program that packs the same tree with archive/tar, filepath.Walk and
# moby/patternmatcher following kit's algorithm (the one the kit-golden vectors pin down).
MODEL_LAYER = "sha256:4a3fc3958f9acb1783941db867e70c6b84a68aca933b1d151b3f034b1cf0d170"
CATCHALL_LAYERS = {
    "model": "sha256:066fb6353f95b4f12c51e196041a360cc27e11378785db7c0961980d86a1518a",
    ".": "sha256:2d2a615c53fe0fa63a633fe73e96b8367fe9ff6aa502f63fba996149eb87466c",
    "data/train": "sha256:3c5e1d4f93a259377a6b0c82636a4177b2a2e5049c7e77bded827d1b70bdf561",
    "README.md": "sha256:8976556749c3f1e40113a07bf15337a20205e1ffa9dfa91df25ea9379e6f4be6",
}


def put(root: Path, rel: str, data: bytes | None, mode: int) -> None:
    """Create a file (bytes) or directory (None) with an explicit mode; new parents get 0755."""
    p = root / rel
    for parent in reversed(p.parents):
        if not parent.exists():
            parent.mkdir()
            os.chmod(parent, 0o755)
    if data is None:
        p.mkdir()
    else:
        p.write_bytes(data)
    os.chmod(p, mode)


def build_model_tree(root: Path) -> Path:
    """Nested dirs, odd names and sizes, special mode bits, PAX names: one 'model' layer."""
    put(root, "model", None, 0o755)
    put(root, "model/w.bin", bytes(range(256)) * 40, 0o644)
    put(root, "model/b512", b"b" * 512, 0o644)
    put(root, "model/b513", b"c" * 513, 0o600)
    put(root, "model/empty.txt", b"", 0o444)
    put(root, "model/run.sh", b"#!/bin/sh\necho hi\n", 0o4755)
    put(root, "model/shared", None, 0o2775)
    put(root, "model/shared/tokenizer.json", b'{"a": 1}\n', 0o664)
    put(root, "model/empty-dir", None, 0o700)
    put(root, "model/données/é.txt", "é\n".encode(), 0o644)
    put(root, "model/" + "n" * 94, b"100-byte name\n", 0o644)
    put(root, "model/" + "d" * 100 + "/" + "f" * 100, b"split\n", 0o644)
    put(root, "model/" + "p" * 200 + "/x", b"pax\n", 0o644)
    put(root, "model/a b #(1).txt", b"spaces\n", 0o644)
    put(root, "model/.hidden", b"dot\n", 0o644)
    put(root, "Kitfile", b"manifestVersion: 1.0.0\n", 0o644)
    put(root, "other.txt", b"not in the layer\n", 0o644)
    return root


def build_catchall_tree(root: Path) -> Path:
    """A catch-all '.' code layer beside model, dataset and docs layers, with a .kitignore."""
    put(root, "Kitfile", b"manifestVersion: 1.0.0\n", 0o644)
    put(root, ".kitignore", b"# scratch\n*.tmp\n**/__pycache__\ncache\n!cache/keep.txt\n", 0o644)
    put(root, "README.md", b"# readme\n", 0o644)
    put(root, "model/w.bin", b"w" * 3000, 0o644)
    put(root, "model/notes.tmp", b"kept: *.tmp is anchored at the root\n", 0o644)
    put(root, "data/train/a.csv", b"a,b\n1,2\n", 0o640)
    put(root, "data/test/b.csv", b"c,d\n", 0o640)
    put(root, "src/main.py", b"print('x')\n", 0o755)
    put(root, "src/__pycache__/main.pyc", b"\0\1", 0o644)
    put(root, "scratch.tmp", b"ignored\n", 0o644)
    put(root, "cache/big.bin", b"ignored", 0o644)
    put(root, "cache/keep.txt", b"re-included\n", 0o644)
    put(root, "sub/Kitfile", b"only the root Kitfile is ignored\n", 0o644)
    return root


def pack(
    ctx: Path, layer: str, others: list[str] | None = None, compression: str = "none"
) -> tuple[bytes, LayerDigests]:
    sink = io.BytesIO()
    entries = walk_layer(ctx, layer, others or [], IgnoreMatcher.from_context(ctx), lambda _m: None)
    digests = write_tar_layer(entries, sink, compression)  # type: ignore[arg-type]
    return sink.getvalue(), digests


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_model_layer_matches_go_archive_tar_bytes(tmp_path: Path) -> None:
    data, d = pack(build_model_tree(tmp_path / "ctx"), "model")
    assert d.digest == d.diff_id == sha(data) == MODEL_LAYER
    assert d.size == len(data)
    assert data.endswith(END) and len(data) % 512 == 0  # two zero blocks, no record padding


@pytest.mark.parametrize("layer", sorted(CATCHALL_LAYERS))
def test_catchall_layers_match_go_archive_tar_bytes(tmp_path: Path, layer: str) -> None:
    ctx = build_catchall_tree(tmp_path / "ctx")
    _, d = pack(ctx, layer, [p for p in CATCHALL_LAYERS if p != layer])
    assert d.digest == CATCHALL_LAYERS[layer]


def test_catchall_layer_content(tmp_path: Path) -> None:
    ctx = build_catchall_tree(tmp_path / "ctx")
    data, _ = pack(ctx, ".", [p for p in CATCHALL_LAYERS if p != "."])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert names == [
        "cache/keep.txt",  # re-included, without a "cache" directory entry
        "data",
        "data/test",
        "data/test/b.csv",
        "src",
        "src/main.py",
        "sub",
        "sub/Kitfile",
    ]


def test_python_tarfile_and_gnu_tar_read_the_layer(tmp_path: Path) -> None:
    ctx = build_model_tree(tmp_path / "ctx")
    data, _ = pack(ctx, "model")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        for m in members:
            src = ctx / m.name
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (1000, 0, "", "", 0)
            assert m.mode == src.stat().st_mode & 0o7777
            if m.isfile():
                assert tf.extractfile(m).read() == src.read_bytes()  # type: ignore[union-attr]
            else:
                assert m.isdir() and src.is_dir()
        assert len(members) == sum(1 for _ in (ctx / "model").rglob("*")) + 1
    tar = require_tool("tar")
    layer = tmp_path / "layer.tar"
    layer.write_bytes(data)
    out = subprocess.run(
        [tar, "--numeric-owner", "-tvf", str(layer)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == len(members)
    assert all(" 1000/0 " in line and "1970-01-01" in line for line in out)


def test_symlink_inside_context_packs_like_a_copy_of_its_target(tmp_path: Path) -> None:
    linked = build_model_tree(tmp_path / "linked")
    os.rename(linked / "model/w.bin", linked / "w-real.bin")
    os.symlink("../w-real.bin", linked / "model/w.bin")
    _, d = pack(linked, "model")
    assert d.digest == MODEL_LAYER  # same bytes as the tree with the regular file


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layer_decompresses_to_the_uncompressed_tar(tmp_path: Path, compression: str) -> None:
    ctx = build_model_tree(tmp_path / "ctx")
    plain, plain_d = pack(ctx, "model")
    blob, d = pack(ctx, "model", compression=compression)
    if compression == "gzip":
        assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # mtime 0, no name
        raw = gzip.decompress(blob)
    else:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    assert raw == plain
    assert d.diff_id == plain_d.digest == sha(plain)
    assert d.digest == sha(blob) and d.size == len(blob) and d.digest != d.diff_id
    assert pack(ctx, "model", compression=compression)[0] == blob  # deterministic


def test_many_files_across_buffer_boundaries_match_a_sequential_writer(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    sizes = [0, 1, 511, 512, 513, 4095, 70_001, 2 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 7]
    put(ctx, "m", None, 0o755)
    for i in range(300):
        size = sizes[i % len(sizes)] if i % 37 == 0 else (i * 997) % 9000
        put(ctx, f"m/f{i:04d}", os.urandom(size), 0o644)
    os.chmod(ctx, 0o755)
    data, d = pack(ctx, "m")
    expect = io.BytesIO()
    for e in walk_layer(ctx, "m", [], IgnoreMatcher(), lambda _m: None):
        expect.write(entry_header(e.rel, e.mode, e.size, e.is_dir))
        if not e.is_dir:
            expect.write(e.abspath.read_bytes() + pad(e.size))
    expect.write(END)
    assert data == expect.getvalue() and d.digest == sha(data)


def test_empty_entry_list_is_just_the_end_marker() -> None:
    sink = io.BytesIO()
    d = write_tar_layer([], sink, "none")
    assert sink.getvalue() == b"\0" * 1024
    assert d == LayerDigests(sha(b"\0" * 1024), sha(b"\0" * 1024), 1024)


class _MutatingSink:
    """On the first write, changes the file being packed (the reader cannot be done with it yet)."""

    def __init__(self, path: Path, grow: bool) -> None:
        self.path, self.grow, self.done = path, grow, False

    def write(self, data: memoryview) -> int:
        if not self.done:
            self.done = True
            if self.grow:
                with open(self.path, "ab") as f:
                    f.write(b"more")
            else:
                os.truncate(self.path, 1024)
        return len(data)


@pytest.mark.parametrize("grow", [True, False])
def test_file_changing_size_while_packing_is_a_pack_error(tmp_path: Path, grow: bool) -> None:
    ctx = tmp_path / "ctx"
    put(ctx, "m/big.bin", b"x" * (24 * 1024 * 1024), 0o644)  # far more than the reader may run ahead
    threads = threading.active_count()
    entries = walk_layer(ctx, "m", [], IgnoreMatcher(), lambda _m: None)
    with pytest.raises(PackError, match=r"'m/big.bin' changed while packing \(it (grew|shrank)"):
        write_tar_layer(entries, _MutatingSink(ctx / "m/big.bin", grow), "none")  # type: ignore[arg-type]
    assert threading.active_count() == threads  # workers stopped


def test_file_changed_since_it_was_listed_is_a_pack_error(tmp_path: Path) -> None:
    put(tmp_path, "f", b"12345", 0o644)
    stale = WalkEntry("f", tmp_path / "f", False, 0o644, 4)
    with pytest.raises(PackError, match="changed while packing"):
        write_tar_layer([stale], io.BytesIO(), "none")


def test_sink_errors_propagate_and_stop_the_workers(tmp_path: Path) -> None:
    put(tmp_path, "m/a", b"a" * 10_000_000, 0o644)

    class Full:
        def write(self, data: memoryview) -> int:
            raise OSError(28, "No space left on device")

    threads = threading.active_count()
    for compression in ("none", "gzip", "zstd"):
        entries = walk_layer(tmp_path, "m", [], IgnoreMatcher(), lambda _m: None)
        with pytest.raises(OSError, match="No space left"):
            write_tar_layer(entries, Full(), compression)  # type: ignore[arg-type]
    assert threading.active_count() == threads


def test_walk_error_midway_stops_the_workers(tmp_path: Path) -> None:
    put(tmp_path, "m/a.bin", b"a" * 3_000_000, 0o644)
    put(tmp_path, "m/b.bin", b"b", 0o644)
    os.symlink("/etc/passwd", tmp_path / "m/c-leak")
    threads = threading.active_count()
    sink = io.BytesIO()
    with pytest.raises(PackError, match="outside the context"):
        write_tar_layer(walk_layer(tmp_path, "m", [], IgnoreMatcher(), lambda _m: None), sink, "zstd")
    assert threading.active_count() == threads


def test_short_writes_are_completed() -> None:
    class Trickle(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            return super().write(bytes(data)[:1000])

    sink = Trickle()
    d = write_tar_layer([], sink, "none")
    assert sink.getvalue() == END and d.size == 1024


def test_raw_layer_is_the_file_itself(tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 5)
    put(tmp_path, "w.safetensors", content, 0o644)
    sink = io.BytesIO()
    d = write_raw_layer(tmp_path / "w.safetensors", sink)
    assert sink.getvalue() == content
    assert d == LayerDigests(sha(content), sha(content), len(content))


def test_raw_layer_of_a_directory_is_a_pack_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not a regular file"):
        write_raw_layer(tmp_path, io.BytesIO())


# ---- the staging sink: direct I/O, its fallback, drop-behind ------------------------------------

RING = 2 * 1024 * 1024


def _expected_layer(ctx: Path, layer: str) -> bytes:
    out = io.BytesIO()
    for e in walk_layer(ctx, layer, [], IgnoreMatcher(), lambda _m: None):
        out.write(entry_header(e.rel, e.mode, e.size, e.is_dir))
        if not e.is_dir:
            out.write(e.abspath.read_bytes() + pad(e.size))
    out.write(END)
    return out.getvalue()


def _odd_tree(root: Path) -> Path:
    """Files whose tar stream crosses ring buffers and ends off a 4096-byte boundary."""
    put(root, "m", None, 0o755)
    put(root, "m/a.bin", os.urandom(5 * 1024 * 1024 + 3), 0o644)
    put(root, "m/b.bin", os.urandom(700), 0o644)
    put(root, "m/c.bin", os.urandom(RING - 1500), 0o644)
    return root


def _stage_layer(
    tmp_path: Path, ctx: Path, layer: str, compression: str = "none", *, direct: bool = True
) -> tuple[bytes, LayerDigests, list[bool]]:
    """Write a layer through the staging sink into a file; also return, per write, if it was direct."""
    path = tmp_path / "staged"
    modes: list[bool] = []

    class Spy(_LayerSink):
        def write(self, data: memoryview, /) -> int | None:
            modes.append(self.direct)
            return super().write(data)

    with open(path, "wb") as f:
        sink = Spy(f, NoProgress(), "t", direct=direct)
        entries = walk_layer(ctx, layer, [], IgnoreMatcher(), lambda _m: None)
        d = write_tar_layer(entries, sink, compression)  # type: ignore[arg-type]
        assert f.tell() == d.size  # commit() reads the size through the file object
    modes.append(sink.direct)
    assert modes == sorted(modes, reverse=True)  # once buffered, never direct again
    return path.read_bytes(), d, modes


def _direct_ok(where: Path) -> bool:
    """Whether this platform and the filesystem at ``where`` take O_DIRECT at all."""
    fd = os.open(where / "probe", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        return writeback.set_direct(fd, True)
    finally:
        os.close(fd)


def _refuses_unaligned(where: Path) -> bool:
    """Whether the filesystem at ``where`` refuses a 1-byte direct write (block devices do)."""
    fd = os.open(where / "probe-unaligned", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        return writeback.set_direct(fd, True) and writeback.write_direct(fd, memoryview(b"x")) is None
    finally:
        os.close(fd)


def test_uncompressed_chunks_are_page_aligned_ring_buffers(tmp_path: Path) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    seen: list[tuple[int, int]] = []

    class Record:
        def write(self, data: memoryview) -> int:
            seen.append((ctypes.addressof(ctypes.c_char.from_buffer(data)), len(data)))
            return len(data)

    entries = walk_layer(ctx, "m", [], IgnoreMatcher(), lambda _m: None)
    d = write_tar_layer(entries, Record(), "none")  # type: ignore[arg-type]
    assert all(addr % mmap.PAGESIZE == 0 for addr, _ in seen)
    assert [n for _, n in seen[:-1]] == [RING] * (len(seen) - 1)
    assert 0 < seen[-1][1] <= RING and seen[-1][1] % 512 == 0
    assert sum(n for _, n in seen) == d.size == len(_expected_layer(ctx, "m"))


def test_direct_sink_writes_the_exact_layer_bytes(tmp_path: Path) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    expect = _expected_layer(ctx, "m")
    assert len(expect) % 4096  # a tail that a 4096-byte-block device refuses to take directly
    data, d, modes = _stage_layer(tmp_path, ctx, "m")
    assert data == expect and d.digest == sha(data) and d.size == len(data)
    assert modes[0] == _direct_ok(tmp_path)
    if modes[0]:
        assert all(modes[:-2])  # every full ring buffer went straight to the disk


def test_refused_direct_write_falls_back_to_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    calls = []
    real = pack_module.write_direct

    def refuse_third(fd: int, data: memoryview) -> int | None:
        calls.append(len(data))
        return None if len(calls) == 3 else real(fd, data)

    monkeypatch.setattr(pack_module, "write_direct", refuse_third)
    # Direct mode even where the filesystem has none (writes there just go through the cache).
    monkeypatch.setattr(pack_module, "set_direct", lambda fd, on: writeback.set_direct(fd, on) or on)
    path = tmp_path / "staged"
    with open(path, "wb") as f:
        sink = _LayerSink(f, NoProgress(), "t", direct=True)
        assert sink.direct
        entries = walk_layer(ctx, "m", [], IgnoreMatcher(), lambda _m: None)
        d = write_tar_layer(entries, sink, "none")
        assert not sink.direct and len(calls) == 3  # never tried again once refused
        if writeback.O_DIRECT:
            assert not fcntl.fcntl(f.fileno(), fcntl.F_GETFL) & writeback.O_DIRECT
    data = path.read_bytes()
    assert data == _expected_layer(ctx, "m") and d.digest == sha(data)


def test_unaligned_writes_fall_back_and_keep_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "staged"
    with open(path, "wb") as f:
        sink = _LayerSink(f, NoProgress(), "t", direct=True)
        aligned = mmap.mmap(-1, 8192, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        aligned[:] = os.urandom(8192)
        parts = [memoryview(aligned), memoryview(b"tail that is not a block" * 3), memoryview(aligned)[:100]]
        for part in parts:
            assert sink.write(part) == len(part)
        # A block device refuses the odd-sized tail (tmpfs, say, takes anything "directly").
        assert sink.direct == (_direct_ok(tmp_path) and not _refuses_unaligned(tmp_path))
    assert path.read_bytes() == b"".join(bytes(p) for p in parts)


def test_buffered_sink_drops_written_windows_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    started: list[tuple[int, int]] = []
    dropped: list[tuple[int, int]] = []
    monkeypatch.setattr(writeback.WriteBehind, "WINDOW", 1024 * 1024)
    monkeypatch.setattr(writeback, "start_writeback", lambda fd, off, n: started.append((off, n)))
    real_drop = writeback.drop_behind

    def drop(fd: int, off: int, n: int) -> None:
        dropped.append((off, n))
        real_drop(fd, off, n)

    monkeypatch.setattr(writeback, "drop_behind", drop)
    data, d, modes = _stage_layer(tmp_path, ctx, "m", direct=False)
    assert not any(modes)
    assert data == _expected_layer(ctx, "m") and d.digest == sha(data)
    # Contiguous windows from 0; each dropped only after the next one's writeback started.
    assert [off for off, _ in started] == [sum(n for _, n in started[:i]) for i in range(len(started))]
    assert dropped == started[: len(dropped)] and len(dropped) == len(started) - 1 >= 2


def test_compressed_layer_through_the_buffered_sink(tmp_path: Path) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    blob, d, modes = _stage_layer(tmp_path, ctx, "m", "zstd", direct=False)
    assert not any(modes)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == _expected_layer(ctx, "m")
    assert d.digest == sha(blob)


def test_drop_behind_raises_writeback_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(err: int) -> Callable[[int, int, int, int], int]:
        def call(fd: int, off: int, n: int, flags: int) -> int:
            ctypes.set_errno(err)
            return -1

        return call

    monkeypatch.setattr(writeback, "_sync_file_range", failing(errno.EIO))
    with pytest.raises(OSError) as exc:  # the fsync after would no longer see it
        writeback.drop_behind(0, 0, 4096)
    assert exc.value.errno == errno.EIO
    monkeypatch.setattr(writeback, "_sync_file_range", failing(errno.ENOSYS))
    writeback.drop_behind(0, 0, 4096)  # not supported here: nothing to report


def test_pack_writes_uncompressed_layers_directly_and_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _odd_tree(tmp_path / "ctx")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: m\n")
    modes: list[bool] = []
    real_write = _LayerSink.write

    def spy(self: _LayerSink, data: memoryview, /) -> int | None:
        modes.append(self.direct)
        return real_write(self, data)

    monkeypatch.setattr(_LayerSink, "write", spy)
    store = Store(tmp_path / "store")
    layer = pack_module.pack(ctx, "t/m:1", store=store).layers[0]
    assert store.blob_path(layer.digest).read_bytes() == _expected_layer(ctx, "m")
    assert modes and modes[0] == _direct_ok(tmp_path)
    modes.clear()
    layer = pack_module.pack(ctx, "t/m:2", store=store, compression="zstd").layers[0]
    assert modes and not any(modes)  # compressed layers are written buffered
    blob = store.blob_path(layer.digest).read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == _expected_layer(ctx, "m")
