"""Pack benchmark: kitbridge pack (tar and raw layers) against hashlib sha256 over the same bytes.

sha256 is the floor: a pack must read and hash every byte once. The ratios (pack / sha256) are the
figures that matter; absolute times on shared machines are noise. Each contender runs in a fresh
child process (so peak RSS is its own), interleaved, ``--repeat`` times; medians are reported.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import make_synthetic_model, parse_size, run_child, write_results

SHA_CHILD = """
import hashlib, pathlib
files = sorted(pathlib.Path(ARGS["root"]).glob("*.safetensors"))
buf = bytearray(4 * 1024 * 1024); view = memoryview(buf)
t = time.perf_counter()
for p in files:
    h = hashlib.sha256()
    with open(p, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
report(time.perf_counter() - t)
"""

PACK_CHILD = """
from kitbridge.pack import pack
from kitbridge.oci.store import Store
import pathlib
t = time.perf_counter()
store = Store(pathlib.Path(ARGS["home"]) / "store")
r = pack(ARGS["root"], "bench/model:1", layer_format=ARGS["layer_format"], store=store)
report(time.perf_counter() - t, digest=r.manifest.digest)
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"), help="total model size (2GiB)")
    ap.add_argument("--shards", type=int, default=4, help="number of weight files (4)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each contender (3)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the model (a temp dir)")


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="kb-bench-", dir=args.workdir))
    try:
        model = work / "model"
        files = make_synthetic_model(model, args.size, args.shards)
        total = sum(f.stat().st_size for f in files)
        kitfile = ["manifestVersion: 1.0.0", "package:", "  name: bench", "model:", "  name: bench"]
        kitfile += [f"  path: {files[0].name}", "  parts:"] + [f"    - path: {f.name}" for f in files[1:]]
        (model / "Kitfile").write_text("\n".join(kitfile) + "\n")
        times: dict[str, list[float]] = {"sha256": [], "pack-tar": [], "pack-raw": []}
        rss: dict[str, int] = dict.fromkeys(times, 0)
        run_child(SHA_CHILD, {"root": str(model)})  # warm the page cache: every contender reads it hot
        for i in range(args.repeat):
            for name in times:
                if name == "sha256":
                    r = run_child(SHA_CHILD, {"root": str(model)})
                else:
                    home = work / f"home-{name}-{i}"
                    fmt = name.split("-")[1]
                    r = run_child(PACK_CHILD, {"root": str(model), "layer_format": fmt, "home": str(home)})
                    shutil.rmtree(home, ignore_errors=True)
                times[name].append(r.seconds)
                rss[name] = max(rss[name], r.max_rss_bytes)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = {k: med[k] / med["sha256"] for k in ("pack-tar", "pack-raw")}
        targets = {"pack-tar": 1.5, "pack-raw": 1.2}
        rows = [
            f"| {k} | {med[k]:.2f} | {total / med[k] / 2**20:.0f} | "
            f"{(med[k] / med['sha256']):.2f} | {targets.get(k, '-')} | {rss[k] / 2**20:.0f} |"
            for k in times
        ]
        md = "\n".join(
            [
                f"# pack benchmark ({total / 2**30:.2f} GiB in {args.shards} files, median of {args.repeat})",
                "",
                "| contender | seconds | MiB/s | ratio to sha256 | target | peak RSS MiB |",
                "|---|---|---|---|---|---|",
                *rows,
                "",
            ]
        )
        ok = (
            all(ratios[k] <= targets[k] for k in ratios)
            and max(rss["pack-tar"], rss["pack-raw"]) < 100 * 2**20
        )
        jpath, mpath = write_results(
            "pack",
            {
                "bytes": total,
                "shards": args.shards,
                "repeat": args.repeat,
                "seconds": times,
                "median": med,
                "ratios": ratios,
                "targets": targets,
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
