"""HF import benchmark: ``kitbridge import hf://…`` against ``huggingface_hub.snapshot_download``.

A synthetic Hub repo (one ``model.safetensors`` of ``--size`` random bytes with a real header, plus
``config.json``, a ``README.md`` with YAML front matter and a small ``tokenizer.json``) is served by
the test Hub (``tests/hub_server.py``) in a **separate process**, so the server's streaming loop does
not share a GIL with anything timed. Then, in one run, on the same bytes, ``--runs`` rounds (the
order of the cold contenders is reversed every other round), each contender in a fresh process,
timed from the parent (interpreter start and imports included, for every contender):

- ``snapshot_download``: ``huggingface_hub.snapshot_download(repo, cache_dir=<empty>, endpoint=url)``
  (default ``max_workers``) — the reference;
- ``import-cold``: ``kitbridge import hf://bench/model --format modelpack -t bench:1`` with an empty
  ``HF_HOME`` and an empty ``KITBRIDGE_HOME`` (downloads into the HF cache, then raw layers are hard
  links of the cache blobs);
- ``import-kitops-cold``: the same with ``--format kitops`` (tar layers: every byte is read and written
  again; informational, no target);
- ``import-warm``: the repo already in the HF cache (the one ``snapshot_download`` filled this round),
  a new tag into an **empty** store — only metadata calls and hard links;
- ``import-warm-same-store``: the repo in the cache and its blobs in the store (``import-cold``'s
  home), a new tag.

``os.sync()`` runs before every timed run, so the previous run's dirty pages are not flushed on this
run's time. Ratios are medians over ``snapshot_download``'s median, and per round (same machine state).
Disk: after ``import-warm``, the store's allocated blocks (``st_blocks``) are summed over files whose
inode is not one of the HF cache's — what the store costs beyond the cache. Raw layers must add no
layer data (config, manifest and index files are reported; < 1 MiB passes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Timed, parse_size, write_results

REPO = "bench/model"
TESTS = Path(__file__).resolve().parent.parent / "tests"

SERVER_CHILD = """
import pathlib, signal, sys, threading
sys.path.insert(0, sys.argv[1])
from hub_server import serve_hub
root = pathlib.Path(sys.argv[2])
files = {p.name: p for p in sorted(root.iterdir()) if p.is_file()}
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
with serve_hub() as hub:
    hub.add_commit(sys.argv[3], files, message="synthetic benchmark repo")
    print(hub.url, flush=True)
    stop.wait()
"""

SNAPSHOT_CHILD = """
import json, sys, time
t = time.perf_counter()
from huggingface_hub import snapshot_download
t1 = time.perf_counter()
path = snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])
t2 = time.perf_counter()
print(json.dumps({"path": path, "import_seconds": t1 - t, "download_seconds": t2 - t1}))
"""

COLD = ("snapshot_download", "import-cold", "import-kitops-cold")
CONTENDERS = (*COLD, "import-warm", "import-warm-same-store")
TARGETS = {"import-cold": 1.25, "import-warm": 0.2}
EXTRA_DISK_LIMIT = 1 << 20


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--size", type=parse_size, default=parse_size("1GiB"), help="model.safetensors size (1GiB)"
    )
    ap.add_argument("--runs", type=int, default=3, help="rounds of each contender (3)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to put the repo, caches and stores")
    ap.add_argument(
        "--no-kitops", action="store_true", help="skip the informational kitops (tar) cold import"
    )


def make_repo(root: Path, size: int) -> int:
    """Write the synthetic repo's files into ``root``; returns the total byte count."""
    root.mkdir(parents=True, exist_ok=True)
    n = max(1, (size - 256) // 4)
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)
    with open(root / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        left = 4 * n
        while left:
            piece = os.urandom(min(left, 8 << 20))  # every piece different: nothing can deduplicate
            f.write(piece)
            left -= len(piece)
    (root / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, indent=2) + "\n"
    )
    (root / "README.md").write_text(
        "---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n\n"
        "# bench/model\n\nA synthetic repo for kitbridge's HF import benchmark.\n"
    )
    vocab = {f"tok{i}": i for i in range(2000)}
    (root / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}})
    )
    return sum(p.stat().st_size for p in root.iterdir())


class HubProcess:
    """The test Hub in a child process serving ``repo_dir`` as ``REPO``; :attr:`url` once ready."""

    def __init__(self, repo_dir: Path, log: Path) -> None:
        self.repo_dir, self.log = repo_dir, log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> HubProcess:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER_CHILD, str(TESTS), str(self.repo_dir), REPO],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # after the server hashed the repo's files
        if not line.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"the Hub server did not start: {self.log.read_text()[-2000:]}")
        self.url = line
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_wait4(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Timed, str]:
    """Run ``cmd`` (stdout to a file), timing it and taking its own peak RSS from ``wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            msg = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {msg}")
        return Timed(seconds, usage.ru_maxrss * 1024, {}), out.read().decode()


def kitbridge_cmd(fmt: str, tag: str) -> list[str]:
    return [sys.executable, "-m", "kitbridge", "import", f"hf://{REPO}", "--format", fmt, "-t", tag]


def env_for(url: str, hf_home: Path, kb_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "KITBRIDGE_"))}
    env.update(
        HF_ENDPOINT=url,
        HF_HOME=str(hf_home),
        KITBRIDGE_HOME=str(kb_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    return env


def cache_inodes(cache: Path) -> set[tuple[int, int]]:
    out = set()
    for dirpath, _dirs, names in os.walk(cache):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            out.add((st.st_dev, st.st_ino))
    return out


def extra_disk(store: Path, cache: Path, tag: str) -> dict[str, Any]:
    """The store's allocated bytes not shared (by inode) with the HF cache, and how ``tag``'s layers are held.

    ``extra_layer_data_bytes`` is the size of the tag's layer blobs that are *not* hard links of cache
    blobs: raw layers must make it 0.
    """
    shared = cache_inodes(cache)
    extra, files, linked_bytes, extra_files = 0, 0, 0, []
    for dirpath, _dirs, names in os.walk(store):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            files += 1
            if (st.st_dev, st.st_ino) in shared:
                linked_bytes += st.st_size
                continue
            extra += st.st_blocks * 512
            extra_files.append((os.path.relpath(p, store), st.st_size))
    layers = manifest_layers(store, tag)
    unshared = 0
    for layer in layers:
        st = os.stat(store / "blobs/sha256" / str(layer["digest"]).split(":")[1])
        if (st.st_dev, st.st_ino) not in shared:
            unshared += st.st_size
    return {
        "extra_bytes": extra,
        "extra_files": len(extra_files),
        "largest_extra_files": sorted(extra_files, key=lambda x: -x[1])[:5],
        "layers": len(layers),
        "layer_bytes": sum(int(str(x["size"])) for x in layers),
        "extra_layer_data_bytes": unshared,
        "store_files": files,
        "bytes_shared_with_cache": linked_bytes,
    }


def manifest_layers(store: Path, tag: str) -> list[dict[str, object]]:
    index = json.loads((store / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name", "").endswith(tag):
            manifest = json.loads((store / "blobs/sha256" / m["digest"].split(":")[1]).read_text())
            return list(manifest["layers"])
    raise RuntimeError(f"{tag} is not in {store}")


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="kb-bench-hf-", dir=args.workdir))
    contenders = [c for c in CONTENDERS if not (args.no_kitops and c == "import-kitops-cold")]
    cold = [c for c in COLD if c in contenders]
    try:
        total = make_repo(work / "repo", args.size)
        times: dict[str, list[float]] = {c: [] for c in contenders}
        rss: dict[str, int] = dict.fromkeys(contenders, 0)
        inner: list[dict[str, float]] = []
        disk: list[dict[str, Any]] = []
        disk_cold: list[dict[str, Any]] = []
        with HubProcess(work / "repo", work / "hub.log") as hub:
            for i in range(args.runs):
                rnd = work / f"round-{i}"
                sd_cache = rnd / "sd-hf" / "hub"  # snapshot_download's cache, in HF_HOME layout
                order = cold if i % 2 == 0 else cold[::-1]  # no cold contender always goes first
                for name in [*order, "import-warm", "import-warm-same-store"]:
                    if name not in contenders:
                        continue
                    os.sync()
                    if name == "snapshot_download":
                        cmd = [sys.executable, "-c", SNAPSHOT_CHILD, REPO, str(sd_cache), hub.url]
                        r, out = run_wait4(cmd, env_for(hub.url, rnd / "sd-unused", rnd / "sd-unused"))
                        inner.append(json.loads(out.strip().splitlines()[-1]))
                    elif name == "import-cold":
                        r, _ = run_wait4(
                            kitbridge_cmd("modelpack", "bench:1"), env_for(hub.url, rnd / "kb-hf", rnd / "kb")
                        )
                        disk_cold.append(extra_disk(rnd / "kb" / "store", rnd / "kb-hf" / "hub", "bench:1"))
                    elif name == "import-kitops-cold":
                        env = env_for(hub.url, rnd / "kitops-hf", rnd / "kitops")
                        r, _ = run_wait4(kitbridge_cmd("kitops", "bench:1"), env)
                        shutil.rmtree(rnd / "kitops-hf", ignore_errors=True)
                        shutil.rmtree(rnd / "kitops", ignore_errors=True)
                    elif name == "import-warm":
                        env = env_for(hub.url, sd_cache.parent, rnd / "warm")
                        before = cache_inodes(sd_cache)
                        r, _ = run_wait4(kitbridge_cmd("modelpack", "bench:2"), env)
                        # Nothing was downloaded again: every blob snapshot_download wrote is still there.
                        assert before <= cache_inodes(sd_cache), "the warm import replaced cache files"
                        disk.append(extra_disk(rnd / "warm" / "store", sd_cache, "bench:2"))
                    else:  # import-warm-same-store: import-cold's cache and store, a new tag
                        env = env_for(hub.url, rnd / "kb-hf", rnd / "kb")
                        r, _ = run_wait4(kitbridge_cmd("modelpack", "bench:3"), env)
                    times[name].append(r.seconds)
                    rss[name] = max(rss[name], r.max_rss_bytes)
                    print(f"round {i + 1}/{args.runs} {name}: {r.seconds:.2f} s", file=sys.stderr, flush=True)
                shutil.rmtree(rnd, ignore_errors=True)
        return report(args, total, times, rss, inner, disk, disk_cold)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    total: int,
    times: dict[str, list[float]],
    rss: dict[str, int],
    inner: list[dict[str, float]],
    disk: list[dict[str, Any]],
    disk_cold: list[dict[str, Any]],
) -> int:
    ref = "snapshot_download"
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med[ref] for k in times if k != ref}
    per_round = {k: [a / b for a, b in zip(times[k], times[ref], strict=True)] for k in times if k != ref}
    worst_extra = max(int(d["extra_bytes"]) for d in disk)
    worst_layer_extra = max(int(d["extra_layer_data_bytes"]) for d in disk)
    checks = {
        "cold ratio <= 1.25": ratios["import-cold"] <= TARGETS["import-cold"],
        "warm ratio <= 0.2": ratios["import-warm"] <= TARGETS["import-warm"],
        "extra disk (raw) < 1 MiB, no layer data": worst_extra < EXTRA_DISK_LIMIT and worst_layer_extra == 0,
    }
    targets = {"import-cold": "≤ 1.25×", "import-warm": "≤ 0.2×"}
    rows = []
    for k in times:
        speed = f"{total / med[k] / 2**20:.0f}" if k in COLD else "-"
        ratio = "1.00" if k == ref else f"{ratios[k]:.2f}"
        rows.append(
            f"| {k} | {med[k]:.2f} | {speed} | {ratio} | {targets.get(k, '-')} | {rss[k] / 2**20:.0f} |"
        )
    d0 = disk[-1]
    status = [f"{'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()]
    sd_inner = statistics.median(x["download_seconds"] for x in inner)
    sd_import = statistics.median(x["import_seconds"] for x in inner)
    md = "\n".join(
        [
            f"# hf import benchmark ({total / 2**30:.2f} GiB repo: one safetensors file + 3 small files, "
            f"median of {args.runs}, test Hub in its own process over loopback)",
            "",
            "| contender | seconds | MiB/s | ratio to snapshot_download | target | peak RSS MiB |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Per-round ratios to snapshot_download: "
            + "; ".join(f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in per_round.items()),
            "",
            f"snapshot_download inside its process: {sd_import:.2f} s importing huggingface_hub, "
            f"{sd_inner:.2f} s in the call (medians).",
            "",
            f"Extra disk beyond the HF cache after `import-warm` (raw layers, empty store): "
            f"{worst_extra} bytes allocated in {d0['extra_files']} files not shared with the cache "
            f"(largest: {', '.join(f'{p} {n} B' for p, n in d0['largest_extra_files'])}); "
            f"layer data not shared: {worst_layer_extra} bytes; "
            f"{d0['bytes_shared_with_cache']} bytes of the store are hard links of cache blobs "
            f"({d0['layers']} layers, {d0['layer_bytes']} bytes). After `import-cold` (its own cache and "
            f"store): {max(int(d['extra_bytes']) for d in disk_cold)} bytes not shared, layer data not "
            f"shared: {max(int(d['extra_layer_data_bytes']) for d in disk_cold)} bytes.",
            "",
            *status,
            "",
        ]
    )
    missed = [k for k, ok in checks.items() if not ok]
    jpath, mpath = write_results(
        "hf_import",
        {
            "bytes": total,
            "runs": args.runs,
            "seconds": times,
            "median": med,
            "ratios": ratios,
            "per_round_ratios": per_round,
            "targets": TARGETS,
            "checks": checks,
            "peak_rss_bytes": rss,
            "snapshot_download_inner": inner,
            "extra_disk_warm": disk,
            "extra_disk_cold": disk_cold,
            "meets_targets": not missed,
        },
        md,
    )
    print(md)
    print(f"results: {jpath} {mpath}")
    return 0 if not missed else 1
