"""Convert benchmark: a KitOps ModelKit already in a registry becomes a ModelPack artifact in that registry.

The conversion writes a new config and manifest over the same layer blobs, so what crosses the wire
must be tiny whatever the model size. Measured in a fresh process (its own time and peak RSS), from
an empty local store, against a local ``docker-registry``: seconds, and the bytes uploaded as the
registry's own storage sees them (new blobs, manifests included).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import make_synthetic_model, parse_size, run_child, write_results
from benchmarks.transfer_bench import LocalRegistry

CONVERT_CHILD = """
import os
os.environ["KITBRIDGE_HOME"] = ARGS["home"]
from kitbridge.convert import convert
from kitbridge.transfer import RegistryOptions
t = time.perf_counter()
r = convert(ARGS["src"], ARGS["dst"], to="modelpack", options=RegistryOptions(plain_http=True))
report(time.perf_counter() - t, uploaded=r.bytes_uploaded, layers=r.layers_reused)
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="total model size (1GiB)")
    ap.add_argument("--shards", type=int, default=4, help="number of weight files (4)")
    ap.add_argument("--repeat", type=int, default=3, help="conversions to time (3)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the model and registry")


def _blob_bytes(data: Path) -> dict[str, int]:
    base = data / "docker/registry/v2/blobs/sha256"
    return {p.parent.name: p.stat().st_size for p in base.glob("*/*/data")} if base.is_dir() else {}


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="kb-convert-bench-", dir=args.workdir))
    try:
        model = work / "model"
        files = make_synthetic_model(model, args.size, args.shards)
        kitfile = ["manifestVersion: 1.0.0", "package:", "  name: bench", "model:", "  name: bench"]
        kitfile += [f"  path: {files[0].name}", "  parts:"] + [f"    - path: {f.name}" for f in files[1:]]
        (model / "Kitfile").write_text("\n".join(kitfile) + "\n")
        with LocalRegistry(work / "registry") as reg:
            src = f"{reg.host}/bench/model:kit"
            env_home = str(work / "pack-home")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kitbridge",
                    "pack",
                    str(model),
                    "-t",
                    src,
                    "--push",
                    "--plain-http",
                    "-q",
                ],
                check=True,
                env={"KITBRIDGE_HOME": env_home, "PATH": "/usr/bin:/bin"},
            )
            seconds, uploaded, registry_new, rss = [], [], [], 0
            for i in range(args.repeat):
                before = _blob_bytes(reg.root / "data")
                home = work / f"convert-home-{i}"
                r = run_child(
                    CONVERT_CHILD, {"home": str(home), "src": src, "dst": f"{reg.host}/bench/model:mp{i}"}
                )
                after = _blob_bytes(reg.root / "data")
                seconds.append(r.seconds)
                uploaded.append(int(r.output["uploaded"]))  # type: ignore[call-overload]
                registry_new.append(sum(n for d, n in after.items() if d not in before))
                rss = max(rss, r.max_rss_bytes)
                shutil.rmtree(home, ignore_errors=True)
        med = statistics.median(seconds)
        worst_upload = max(max(uploaded), max(registry_new))
        ok = med < 2.0 and worst_upload < 64 * 1024
        gib = sum(f.stat().st_size for f in files) / 2**30
        md = "\n".join(
            [
                f"# convert benchmark ({gib:.2f} GiB, KitOps -> ModelPack in a registry, {args.repeat} runs)",
                "",
                "| measure | value | target |",
                "|---|---|---|",
                f"| seconds (median) | {med:.2f} | < 2 |",
                f"| bytes uploaded (client count, max) | {max(uploaded)} | < 65536 |",
                f"| new bytes in registry storage (max) | {max(registry_new)} | < 65536 |",
                f"| peak RSS MiB | {rss / 2**20:.0f} | - |",
                "",
            ]
        )
        jpath, mpath = write_results(
            "convert",
            {
                "seconds": seconds,
                "uploaded": uploaded,
                "registry_new_bytes": registry_new,
                "peak_rss_bytes": rss,
                "meets_targets": ok,
            },
            md,
        )
        print(md)
        print(f"results: {jpath} {mpath}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
