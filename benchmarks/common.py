"""Shared benchmark plumbing: sizes, synthetic models, timed child processes, result files."""

from __future__ import annotations

import json
import os
import platform
import re
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_UNITS = {"": 1, "B": 1, "K": 1024, "KIB": 1024, "M": 1024**2, "MIB": 1024**2, "G": 1024**3, "GIB": 1024**3}


def parse_size(text: str) -> int:
    """``2GiB``, ``512MiB``, ``100M`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise argparse_error(f"bad size {text!r} (use e.g. 2GiB, 512MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def argparse_error(msg: str) -> Exception:
    import argparse

    return argparse.ArgumentTypeError(msg)


def make_synthetic_model(root: Path, total: int, shards: int = 4) -> list[Path]:
    """Write ``shards`` safetensors-like files (valid header, random payload) totalling ~``total`` bytes."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    per = total // shards
    block = os.urandom(8 * 1024 * 1024)
    for i in range(shards):
        n = per // 4
        header = json.dumps(
            {
                "__metadata__": {"format": "pt"},
                "w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]},
            },
            separators=(",", ":"),
        ).encode()
        header += b" " * (-len(header) % 8)
        path = root / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header)
            left = n * 4
            while left:
                # Vary each block so no layer of the storage stack can deduplicate it.
                chunk = block[: min(left, len(block))]
                f.write((struct.pack("<Q", left) + chunk[8:])[: len(chunk)])
                left -= len(chunk)
        files.append(path)
    return files


@dataclass
class Timed:
    """One timed run of a child process."""

    seconds: float
    max_rss_bytes: int
    output: dict[str, object]


def run_child(code: str, args: dict[str, object]) -> Timed:
    """Run Python ``code`` in a fresh interpreter (``ARGS`` = ``args``); it prints its own timing and RSS."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + code, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Timed(float(data["seconds"]), int(data["max_rss_bytes"]), data)


CHILD_PRELUDE = """
import json, resource, time, sys
ARGS = json.loads(sys.argv[1])
def report(seconds, **extra):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "max_rss_bytes": rss, **extra}))
"""


def machine() -> dict[str, object]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_results(name: str, data: dict[str, object], markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (the last run wins; git keeps history)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    j, m = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    j.write_text(json.dumps(data, indent=2) + "\n")
    m.write_text(markdown)
    return j, m
