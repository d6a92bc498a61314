"""Pickle import scanning (profile/pickle_scan.py): real pickles are made here and never loaded."""

from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import io
import lzma
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from mutations import mutations

from kitbridge.errors import FormatError
from kitbridge.profile.pickle_scan import classify, scan_pickle


class _Evil:
    """Pickles into a call of os.system; loading it would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def _evil_bytes(tmp_path: Path, protocol: int = 4) -> bytes:
    # If anything ever loads this, the marker file appears and the test that made it fails.
    return pickle.dumps(
        {"weights": [1.0, 2.0], "hook": _Evil(f"touch {tmp_path / 'pwned'}")}, protocol=protocol
    )


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# Hand-assembled pickle opcodes (protocol 2-4), for shapes the pickle module would not write itself.
def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _u(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _int(n: int) -> bytes:
    return b"K" + bytes([n])  # BININT1


def _torch_data_pkl() -> bytes:
    """What torch.save writes as archive/data.pkl for {"weight": FloatTensor(2, 2)} (protocol 2)."""
    storage = b"(" + _u("storage") + _global("torch", "FloatStorage") + _u("0") + _u("cpu") + _int(4) + b"tQ"
    size = _int(2) + _int(2) + b"\x86"
    stride = _int(2) + _int(1) + b"\x86"
    hooks = _global("collections", "OrderedDict") + b")R"
    rebuild = _global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage + _int(0) + size + stride
    rebuild += b"\x89" + hooks + b"tR"
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")Rq\x00(" + _u("weight") + rebuild + b"u."


def _torch_zip(tmp_path: Path, data_pkl: bytes, name: str = "model.pt") -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", struct.pack("<4f", 1, 2, 3, 4))
        z.writestr("archive/version", "3\n")
    return p


def test_reduce_to_os_system_is_dangerous_in_every_protocol(tmp_path: Path) -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        scan = scan_pickle(_write(tmp_path, f"evil{protocol}.pkl", _evil_bytes(tmp_path, protocol)))
        assert scan.verdict == "dangerous", protocol
        assert [i.name for i in scan.dangerous] == ["system"], protocol
        assert scan.dangerous[0].module in ("posix", "nt", "os")
        assert scan.format == "raw" and scan.complete and scan.pickles == 1
    assert not (tmp_path / "pwned").exists()


def test_benign_containers_are_safe(tmp_path: Path) -> None:
    obj = collections.OrderedDict(
        a=1, b=[1.5, "x", None], c={1, 2}, d=frozenset({3}), e=slice(1, 2), f=b"\0" * 9
    )
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        scan = scan_pickle(_write(tmp_path, f"ok{protocol}.pkl", pickle.dumps(obj, protocol=protocol)))
        assert scan.verdict == "safe", (protocol, scan.imports)
        assert scan.dangerous == () and scan.unknown == () and scan.complete
    plain = scan_pickle(_write(tmp_path, "dict.pkl", pickle.dumps({"a": [1, 2]})))
    assert plain.imports == () and plain.verdict == "safe"


def test_torch_zip_checkpoint_is_scanned_member_by_member(tmp_path: Path) -> None:
    scan = scan_pickle(_torch_zip(tmp_path, _torch_data_pkl()))
    assert scan.format == "zip"
    assert scan.members == ("archive/data.pkl",)
    assert {i.qualname for i in scan.imports} == {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
    }
    assert scan.verdict == "safe" and scan.complete


def test_torch_zip_with_a_payload_is_dangerous(tmp_path: Path) -> None:
    scan = scan_pickle(_torch_zip(tmp_path, _evil_bytes(tmp_path, 2), "model.bin"))
    assert scan.format == "zip" and scan.verdict == "dangerous"
    assert not (tmp_path / "pwned").exists()


def test_legacy_torch_file_is_five_pickles_then_data(tmp_path: Path) -> None:
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        _evil_bytes(tmp_path, 2),
        pickle.dumps(["0"], protocol=2),
    ]
    # Raw storage bytes follow; they start with 0x80 here to show they are not taken for a sixth pickle.
    data = b"".join(parts) + struct.pack("<q", 4) + b"\x80\x02" + b"\xff" * 14
    scan = scan_pickle(_write(tmp_path, "old.pt", data))
    assert scan.format == "torch-legacy"
    assert scan.pickles == 5
    assert scan.verdict == "dangerous" and scan.complete


def test_legacy_torch_pickles_without_a_proto_header_are_still_scanned(tmp_path: Path) -> None:
    # torch's legacy loader reads five pickles whatever their protocol; a protocol 0 payload must not hide.
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"little_endian": True}, protocol=0),
        _evil_bytes(tmp_path, 0),
        pickle.dumps(["0"], protocol=1),
    ]
    scan = scan_pickle(_write(tmp_path, "old0.pt", b"".join(parts)))
    assert scan.format == "torch-legacy" and scan.pickles == 5
    assert scan.verdict == "dangerous"


def test_back_to_back_pickles_are_all_scanned(tmp_path: Path) -> None:
    data = pickle.dumps([1]) + pickle.dumps({"x": 2}) + _evil_bytes(tmp_path)
    scan = scan_pickle(_write(tmp_path, "many.pkl", data))
    assert scan.pickles == 3 and scan.verdict == "dangerous"


def test_stack_global_sees_through_decoy_strings(tmp_path: Path) -> None:
    # "os", "system" pushed, then decoys pushed and popped: STACK_GLOBAL takes os.system, not builtins.len.
    data = (
        b"\x80\x04" + _u("os") + _u("system") + _u("builtins") + _u("len") + b"00\x93" + _u("id") + b"\x85R."
    )
    scan = scan_pickle(_write(tmp_path, "decoy.pkl", data))
    assert [i.qualname for i in scan.imports] == ["os.system"]
    assert scan.verdict == "dangerous"


def test_stack_global_through_the_memo(tmp_path: Path) -> None:
    data = b"\x80\x04" + _u("subprocess") + b"\x94" + _u("Popen") + b"\x94" + b"00h\x00h\x01\x93" + b")R."
    scan = scan_pickle(_write(tmp_path, "memo.pkl", data))
    assert [i.qualname for i in scan.imports] == ["subprocess.Popen"]
    assert scan.verdict == "dangerous"


def test_stack_global_on_values_built_at_load_time_is_dangerous(tmp_path: Path) -> None:
    data = b"\x80\x04" + _global("builtins", "str") + _u("os") + b"\x85R" + _u("system") + b"\x93)R."
    scan = scan_pickle(_write(tmp_path, "dyn.pkl", data))
    assert scan.verdict == "dangerous"
    assert any(i.module == "?" for i in scan.dangerous)


def test_inst_and_dotted_attribute_walks_are_caught(tmp_path: Path) -> None:
    inst = b"(" + _u("ls") + b"isubprocess\ncall\n."
    assert scan_pickle(_write(tmp_path, "inst.pkl", inst)).verdict == "dangerous"
    walk = b"\x80\x04" + _u("collections") + _u("OrderedDict.__init__.__globals__") + b"\x93."
    assert scan_pickle(_write(tmp_path, "walk.pkl", walk)).verdict == "dangerous"


def test_model_classes_are_unknown(tmp_path: Path) -> None:
    data = b"\x80\x02" + _global("sklearn.linear_model._base", "LinearRegression") + b")\x81}b."
    scan = scan_pickle(_write(tmp_path, "model.joblib", data))
    assert scan.verdict == "unknown"
    assert [i.qualname for i in scan.unknown] == ["sklearn.linear_model._base.LinearRegression"]


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("gzip", gzip.compress),
        ("bz2", bz2.compress),
        ("xz", lzma.compress),
        ("lzma", lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE)),
        ("zlib", zlib.compress),
    ],
)
def test_compressed_joblib_pickles_are_scanned(tmp_path: Path, name: str, compress: object) -> None:
    assert callable(compress)
    scan = scan_pickle(_write(tmp_path, f"m.{name}.joblib", compress(_evil_bytes(tmp_path))))
    assert scan.compression == name
    assert scan.verdict == "dangerous" and scan.complete


def test_bytes_that_only_look_compressed_are_scanned_as_they_are(tmp_path: Path) -> None:
    # "BZh" is the bz2 magic, and also BINBYTES with a 4-byte length: the unpickler reads it as a pickle.
    length = int.from_bytes(b"Zh\0\0", "little")
    data = b"BZh\0\0" + b"\0" * length + b"0" + _global("os", "system") + _u("id") + b"\x85R."
    scan = scan_pickle(_write(tmp_path, "sneaky.pkl", data))
    assert scan.compression is None
    assert scan.verdict == "dangerous"


def test_truncated_compressed_stream_is_reported_incomplete(tmp_path: Path) -> None:
    data = gzip.compress(pickle.dumps({"a": 1}))[:-4]
    scan = scan_pickle(_write(tmp_path, "cut.joblib", data))
    assert scan.pickles == 1 and not scan.complete and scan.verdict == "unknown"


def test_large_byte_payloads_are_stepped_over_not_counted(tmp_path: Path) -> None:
    data = pickle.dumps({"blob": b"\0" * (8 * 1024 * 1024), "more": bytearray(5)}, protocol=5)
    scan = scan_pickle(_write(tmp_path, "blob.pkl", data), max_bytes=64 * 1024)
    assert scan.complete and not scan.capped and scan.verdict == "safe"
    assert scan.bytes_scanned < 1024


def test_scan_stops_at_the_byte_budget_and_says_so(tmp_path: Path) -> None:
    data = pickle.dumps([f"item{i}" for i in range(50_000)] + [_Evil("true")], protocol=4)
    scan = scan_pickle(_write(tmp_path, "big.pkl", data), max_bytes=10_000)
    assert scan.capped and not scan.complete
    assert scan.bytes_scanned <= 10_000
    assert scan.verdict == "unknown"
    assert "budget" in scan.problems[-1]


def test_truncated_pickle_still_reports_what_it_imported(tmp_path: Path) -> None:
    data = _evil_bytes(tmp_path)
    scan = scan_pickle(_write(tmp_path, "cut.pkl", data[:-3]))
    assert scan.verdict == "dangerous" and not scan.complete
    assert scan.pickles == 0 and "without a STOP" in scan.problems[0]


def test_garbage_after_a_joblib_array_wrapper_is_reported_incomplete(tmp_path: Path) -> None:
    wrapper = b"\x80\x04" + _global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81}b"
    scan = scan_pickle(_write(tmp_path, "arr.joblib", wrapper + b"\x00\x01\x02raw array bytes"))
    assert not scan.complete and scan.verdict == "unknown"
    assert "inline" in scan.problems[0]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02\x03 not a pickle",
        b'{"__metadata__": {}}',  # a safetensors header is not a pickle either
        b"\x80\x04\x95",  # PROTO then a FRAME cut short
    ],
)
def test_non_pickles_are_format_errors(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(FormatError, match="not a pickle") as e:
        scan_pickle(_write(tmp_path, "x.bin", data))
    assert e.value.hint


def test_zip_without_pickles_is_a_format_error(tmp_path: Path) -> None:
    p = tmp_path / "weights.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("w.npy", b"\x93NUMPY")
    with pytest.raises(FormatError, match=r"no \*\.pkl member"):
        scan_pickle(p)


def test_corrupt_zip_is_a_format_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", _torch_data_pkl())
    with pytest.raises(FormatError):
        scan_pickle(_write(tmp_path, "bad.pt", buf.getvalue()[:40]))


@pytest.mark.parametrize(
    ("module", "name", "verdict"),
    [
        ("torch._utils", "_rebuild_tensor_v2", "safe"),
        ("torch", "BFloat16Storage", "safe"),
        ("torch", "bfloat16", "safe"),
        ("numpy.core.multiarray", "_reconstruct", "safe"),
        ("numpy", "dtype", "safe"),
        ("_codecs", "encode", "safe"),
        ("__builtin__", "set", "safe"),
        ("builtins", "eval", "dangerous"),
        ("__builtin__", "getattr", "dangerous"),
        ("os", "system", "dangerous"),
        ("posix", "system", "dangerous"),
        ("subprocess", "check_output", "dangerous"),
        ("runpy", "run_path", "dangerous"),
        ("webbrowser", "open", "dangerous"),
        ("torch.storage", "_load_from_bytes", "dangerous"),
        ("sklearn.pipeline", "Pipeline", "unknown"),
        ("__main__", "MyModel", "unknown"),
    ],
)
def test_classification(module: str, name: str, verdict: str) -> None:
    assert classify(module, name) == verdict


def test_corrupted_files_raise_only_format_errors(tmp_path: Path) -> None:
    torch_zip = _torch_zip(tmp_path, _torch_data_pkl()).read_bytes()
    seeds = [
        _evil_bytes(tmp_path, 2),
        _evil_bytes(tmp_path, 0),
        torch_zip,
        gzip.compress(pickle.dumps([1, "a"])),
    ]
    p = tmp_path / "fuzzed"
    for i, seed in enumerate(seeds):
        for data in mutations(seed, 300, seed=i):
            p.write_bytes(data)
            with contextlib.suppress(FormatError):
                scan_pickle(p)
    assert not (tmp_path / "pwned").exists()
