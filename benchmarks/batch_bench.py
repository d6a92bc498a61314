"""Batch benchmark: 20 KitOps -> ModelPack conversions in one registry, as a batch and one by one.

Twenty ModelKits of ``--size`` (50 MiB) of random bytes each, alternately with a tar and a raw layer, are
packed and pushed to a local ``docker-registry``; then a job file of 20 ``convert`` jobs (each ModelKit
to ModelPack, into another repository of the same registry) is timed, as a user runs it (the CLI in a
fresh process with an empty ``KITBRIDGE_HOME``, wall clock, interpreter start-up included):

- ``batch-j4``: ``kitbridge batch FILE --jobs 4``;
- ``sequential``: the same 20 conversions as 20 ``kitbridge convert`` commands, one after the other;
- ``up-to-date``: ``batch-j4``'s job file again, when every target is in place (all skipped);
- ``batch-j1``: ``kitbridge batch FILE --jobs 1`` (for context: the batch without parallelism);
- ``start-up``: ``kitbridge --version`` (for context: what each of the sequential commands pays first).

Every measured run writes into repositories of its own (``bench-mp-<run>-<contender>/mNN``), so none
finds a config blob or a mounted layer that an earlier one left: each does the full work. The bytes the
registry's storage gained are counted too (a conversion uploads a config and a manifest, no layer).
Targets: ``batch-j4 / sequential <= 0.4``, ``up-to-date < 5 s``. The command exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import parse_size, run_child, write_results
from benchmarks.convert_bench import _blob_bytes
from benchmarks.transfer_bench import LocalRegistry

RATIO_TARGET = 0.4
UP_TO_DATE_TARGET_S = 5.0

PACK_CHILD = """
import os, pathlib
os.environ["KITBRIDGE_HOME"] = ARGS["home"]
from kitbridge.pack import pack
from kitbridge.transfer import RegistryOptions, push
t = time.perf_counter()
for root, ref, layer_format in ARGS["kits"]:
    pack(root, ref, layer_format=layer_format)
    push(ref, options=RegistryOptions(plain_http=True))
report(time.perf_counter() - t)
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--kits", type=int, default=20, help="number of ModelKits and conversions (20)")
    ap.add_argument("--size", type=parse_size, default=parse_size("50MiB"), help="size of each (50MiB)")
    ap.add_argument("--runs", type=int, default=1, help="rounds of every contender (1)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the models and registry")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITBRIDGE_")}
    env.update(KITBRIDGE_HOME=str(home), DOCKER_CONFIG=str(home / "docker-config"), NO_COLOR="1")
    env.pop("SOURCE_DATE_EPOCH", None)
    return env


def _kitbridge(home: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the CLI in a fresh process; its wall-clock seconds (start-up included) and its result."""
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "kitbridge", *args],
        env=_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"kitbridge {' '.join(args)} exited {p.returncode}: {p.stderr[-3000:]}")
    return seconds, p


def _make_kits(work: Path, host: str, count: int, size: int) -> list[tuple[str, str, str]]:
    """``count`` model folders (one weight file of random bytes each); (folder, reference, layer format)."""
    kits = []
    block = os.urandom(8 * 1024 * 1024)
    for i in range(count):
        root = work / "kits" / f"m{i:02d}"
        root.mkdir(parents=True)
        with open(root / "weights.bin", "wb") as f:
            left = size
            while left:
                n = min(left, len(block))
                f.write(os.urandom(16) + block[16:n] if n > 16 else os.urandom(n))  # no two blocks alike
                left -= n
        (root / "Kitfile").write_text(
            f"manifestVersion: 1.0.0\npackage:\n  name: m{i:02d}\n"
            f"model:\n  name: m{i:02d}\n  path: weights.bin\n"
        )
        kits.append((str(root), f"{host}/bench/m{i:02d}:kit", "tar" if i % 2 == 0 else "raw"))
    return kits


def _job_file(path: Path, host: str, count: int, repo: str) -> Path:
    lines = ["defaults:", "  plain-http: true", "jobs:"]
    for i in range(count):
        lines += [
            f"  - convert: {host}/bench/m{i:02d}:kit",
            "    to: modelpack",
            f"    target: {host}/{repo}/m{i:02d}:mp",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _batch(work: Path, name: str, jobfile: Path, jobs: int, home: Path) -> dict[str, Any]:
    """One timed ``kitbridge batch``: seconds, statuses, and the per-job seconds of its report."""
    report = work / f"{name}.report.json"
    seconds, _ = _kitbridge(home, "batch", str(jobfile), "--jobs", str(jobs), "--report", str(report))
    doc = json.loads(report.read_text())
    return {
        "seconds": seconds,
        "counts": doc["counts"],
        "job_seconds": [row["seconds"] for row in doc["jobs"]],
    }


def _new_bytes(reg: LocalRegistry, before: dict[str, int]) -> int:
    return sum(n for d, n in _blob_bytes(reg.root / "data").items() if d not in before)


def run(args: argparse.Namespace) -> int:
    count = args.kits
    work = Path(tempfile.mkdtemp(prefix="kb-batch-bench-", dir=args.workdir))
    try:
        with LocalRegistry(work / "registry") as reg:
            kits = _make_kits(work, reg.host, count, args.size)
            packed = run_child(PACK_CHILD, {"home": str(work / "pack-home"), "kits": kits})
            shutil.rmtree(work / "kits", ignore_errors=True)
            print(f"packed and pushed {count} x {args.size / 2**20:.0f} MiB in {packed.seconds:.1f} s")
            rounds: list[dict[str, Any]] = []
            for run_no in range(args.runs):
                r: dict[str, Any] = {}
                before = _blob_bytes(reg.root / "data")
                # (a) the batch, 4 at a time, from an empty home.
                j4 = _job_file(work / f"j4-{run_no}.yaml", reg.host, count, f"bench-mp-{run_no}-j4")
                r["batch-j4"] = _batch(work, f"j4-{run_no}", j4, 4, work / f"home-j4-{run_no}")
                r["batch-j4"]["registry_new_bytes"] = _new_bytes(reg, before)
                # (b) the same conversions, one command each, one after the other.
                before = _blob_bytes(reg.root / "data")
                home = work / f"home-seq-{run_no}"
                each = []
                for i in range(count):
                    src = f"{reg.host}/bench/m{i:02d}:kit"
                    dst = f"{reg.host}/bench-mp-{run_no}-seq/m{i:02d}:mp"
                    s, _ = _kitbridge(home, "convert", src, dst, "--to", "modelpack", "--plain-http", "-q")
                    each.append(s)
                r["sequential"] = {
                    "seconds": sum(each),
                    "command_seconds": each,
                    "registry_new_bytes": _new_bytes(reg, before),
                }
                # (c) the batch of (a) again: every target is in place.
                before = _blob_bytes(reg.root / "data")
                r["up-to-date"] = _batch(work, f"again-{run_no}", j4, 4, work / f"home-again-{run_no}")
                r["up-to-date"]["registry_new_bytes"] = _new_bytes(reg, before)
                # (d) the batch without parallelism.
                before = _blob_bytes(reg.root / "data")
                j1 = _job_file(work / f"j1-{run_no}.yaml", reg.host, count, f"bench-mp-{run_no}-j1")
                r["batch-j1"] = _batch(work, f"j1-{run_no}", j1, 1, work / f"home-j1-{run_no}")
                r["batch-j1"]["registry_new_bytes"] = _new_bytes(reg, before)
                # For context: what one CLI process costs before it does anything.
                r["start-up"] = {"seconds": _kitbridge(work / "home-startup", "--version")[0]}
                rounds.append(r)
                print(
                    f"round {run_no + 1}: "
                    + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in r.items())
                    + f"; ratio {r['batch-j4']['seconds'] / r['sequential']['seconds']:.3f}"
                )
        return _report(args, count, packed.seconds, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(args: argparse.Namespace, count: int, pack_seconds: float, rounds: list[dict[str, Any]]) -> int:
    def med(name: str) -> float:
        return statistics.median(r[name]["seconds"] for r in rounds)

    ratios = [r["batch-j4"]["seconds"] / r["sequential"]["seconds"] for r in rounds]
    ratio = statistics.median(ratios)
    again = med("up-to-date")
    statuses_ok = all(
        r["batch-j4"]["counts"] == {"done": count}
        and r["batch-j1"]["counts"] == {"done": count}
        and r["up-to-date"]["counts"] == {"skipped": count}
        for r in rounds
    )
    ratio_ok, again_ok = ratio <= RATIO_TARGET, again < UP_TO_DATE_TARGET_S
    ok = ratio_ok and again_ok and statuses_ok
    mib = args.size / 2**20
    seq_cmd = statistics.median(s for r in rounds for s in r["sequential"]["command_seconds"])
    j4_job = statistics.median(s for r in rounds for s in r["batch-j4"]["job_seconds"])
    j1_job = statistics.median(s for r in rounds for s in r["batch-j1"]["job_seconds"])
    new_bytes = max(r[k].get("registry_new_bytes", 0) for r in rounds for k in r)
    lines = [
        f"# batch benchmark ({count} KitOps -> ModelPack conversions of {mib:.0f} MiB ModelKits,"
        f" one registry, {args.runs} run{'s' if args.runs != 1 else ''})",
        "",
        "| contender | seconds | per conversion | target |",
        "|---|---|---|---|",
        f"| (a) `batch --jobs 4` | {med('batch-j4'):.2f} | {j4_job:.3f} s in the batch |"
        f" (a)/(b) <= {RATIO_TARGET} |",
        f"| (b) `convert` x{count}, sequential | {med('sequential'):.2f} | {seq_cmd:.3f} s a command | - |",
        f"| (c) `batch --jobs 4`, all up to date | {again:.2f} | - | < {UP_TO_DATE_TARGET_S:.0f} s |",
        f"| (d) `batch --jobs 1` | {med('batch-j1'):.2f} | {j1_job:.3f} s in the batch | - |",
        f"| start-up: `kitbridge --version` | {med('start-up'):.2f} | - | - |",
        "",
        f"- ratio (a)/(b): {ratio:.3f} (per round: {', '.join(f'{x:.3f}' for x in ratios)})",
        f"- ratio (d)/(b): {med('batch-j1') / med('sequential'):.3f}",
        f"- new bytes in registry storage per contender (max): {new_bytes}",
        f"- setup: packed and pushed {count} x {mib:.0f} MiB (tar and raw layers alternately)"
        f" in {pack_seconds:.1f} s",
        "",
        f"{'PASS' if ratio_ok else 'FAIL'} batch --jobs 4 / sequential = {ratio:.3f}"
        f" (target <= {RATIO_TARGET})",
        f"{'PASS' if again_ok else 'FAIL'} up-to-date rerun {again:.2f} s"
        f" (target < {UP_TO_DATE_TARGET_S:.0f} s)",
        f"{'PASS' if statuses_ok else 'FAIL'} statuses: every conversion done, every rerun job skipped",
        "",
    ]
    md = "\n".join(lines)
    jpath, mpath = write_results(
        "batch",
        {
            "kits": count,
            "size_bytes": args.size,
            "runs": args.runs,
            "pack_seconds": pack_seconds,
            "rounds": rounds,
            "ratio_j4_to_sequential": ratio,
            "up_to_date_seconds": again,
            "targets": {"ratio_max": RATIO_TARGET, "up_to_date_max_seconds": UP_TO_DATE_TARGET_S},
            "meets_targets": ok,
        },
        md,
    )
    print(md)
    print(f"results: {jpath} {mpath}")
    return 0 if ok else 1
