"""Transfer benchmark: kitbridge push/pull against skopeo copy and oras-py, through one local registry.

A synthetic model is packed once into a store; then, in one run, with the same ``docker-registry``
binary and configuration (plain HTTP on loopback), interleaved, ``--repeat`` times, each in a fresh
process:

- ``push``: ``kitbridge.transfer.push`` (a fresh home, so no mount hints);
- ``skopeo-push``: ``skopeo copy oci:<store>:<ref> docker://<registry>/<repo>:1``;
- ``oras-push``: oras-py's default ``push`` of the same layer files (it reads each blob into memory);
- ``pull``: ``kitbridge.transfer.pull`` from the shared registry into an empty store;
- ``skopeo-pull``: ``skopeo copy docker://… oci:<empty dir>:x`` from the same repository;
- ``re-push``: push of the unchanged ModelKit to that repository (must send 0 blob bytes).

Every push goes to an empty registry started for it: skopeo keeps a blob-info cache across runs
and would otherwise mount the blobs from an earlier run's repository instead of sending them.

Our times include importing kitbridge (what a CLI user pays, as skopeo's include its start-up).
Peak RSS is each process's own (``ru_maxrss``). The ratios to skopeo are the figures that matter.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import Timed, make_synthetic_model, parse_size, run_child, write_results

PUSH_CHILD = """
import os
os.environ["KITBRIDGE_HOME"] = ARGS["home"]
t = time.perf_counter()
from kitbridge.oci.store import Store
from kitbridge.transfer import RegistryOptions, push
r = push(ARGS["ref"], ARGS["dest"], options=RegistryOptions(plain_http=True), store=Store(ARGS["store"]))
report(time.perf_counter() - t, bytes_sent=r.bytes_sent, blobs_sent=r.blobs_sent, digest=r.manifest.digest)
"""

PULL_CHILD = """
import os
os.environ["KITBRIDGE_HOME"] = ARGS["home"]
t = time.perf_counter()
from kitbridge.oci.store import Store
from kitbridge.transfer import RegistryOptions, pull
r = pull(ARGS["ref"], options=RegistryOptions(plain_http=True), store=Store(ARGS["store"]))
report(time.perf_counter() - t, bytes_sent=r.bytes_sent, blobs_sent=r.blobs_sent, digest=r.manifest.digest)
"""

ORAS_CHILD = """
import logging
t = time.perf_counter()
import oras.client
logging.getLogger("oras").setLevel(logging.ERROR)
c = oras.client.OrasClient(hostname=ARGS["host"], insecure=True)
c.push(files=ARGS["files"], target=ARGS["target"], disable_path_validation=True, quiet=True)
report(time.perf_counter() - t)
"""

PACK_CHILD = """
import os, pathlib
os.environ["KITBRIDGE_HOME"] = ARGS["home"]
from kitbridge.oci.store import Store
from kitbridge.pack import pack
r = pack(ARGS["root"], ARGS["ref"], store=Store(pathlib.Path(ARGS["home"]) / "store"))
report(0.0, digest=r.manifest.digest)
"""


class LocalRegistry:
    """A throwaway plain-HTTP ``docker-registry`` on a free loopback port (storage in ``root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalRegistry:
        if shutil.which("docker-registry") is None:
            raise SystemExit("docker-registry is not installed; run ./dev/setup.sh")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.json"  # JSON is YAML: no yaml import needed
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "error", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}},
                    "http": {"addr": self.host, "secret": "kitbridge-bench"},
                }
            )
        )
        with open(self.root / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("docker-registry did not become ready within 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_tool(cmd: list[str]) -> Timed:
    """Run an external tool, timing it and taking its own peak RSS from ``wait4``."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return Timed(seconds, usage.ru_maxrss * 1024, {})


def push_once(
    name: str,
    i: int,
    host: str,
    skopeo: str,
    scratch: Path,
    store: Path,
    oci_ref: str,
    layer_files: list[str],
) -> Timed:
    """One timed push by ``name`` (push, skopeo-push, oras-push) to a fresh repository on ``host``."""
    if name == "push":
        args = {"home": str(scratch / "home"), "store": str(store), "ref": "bench/model:1"}
        return run_child(PUSH_CHILD, {**args, "dest": f"{host}/bench/ours-{i}:1"})
    if name == "skopeo-push":
        dest = f"docker://{host}/bench/skopeo-{i}:1"
        return run_tool([skopeo, "copy", "--dest-tls-verify=false", f"oci:{store}:{oci_ref}", dest])
    return run_child(ORAS_CHILD, {"host": host, "files": layer_files, "target": f"{host}/bench/oras-{i}:1"})


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="total model size (1GiB)")
    ap.add_argument("--shards", type=int, default=4, help="number of weight files (4)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each contender (3)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to put model, stores, registry")
    ap.add_argument("--no-oras", action="store_true", help="skip oras-py (it needs ~1x the blob size in RAM)")


CONTENDERS = ("push", "skopeo-push", "oras-push", "pull", "skopeo-pull", "re-push")


def run(args: argparse.Namespace) -> int:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is not installed; run ./dev/setup.sh")
    work = Path(tempfile.mkdtemp(prefix="kb-bench-transfer-", dir=args.workdir))
    try:
        model = work / "model"
        files = make_synthetic_model(model, args.size, args.shards)
        kitfile = ["manifestVersion: 1.0.0", "package:", "  name: bench", "model:", "  name: bench"]
        kitfile += [f"  path: {files[0].name}", "  parts:"] + [f"    - path: {f.name}" for f in files[1:]]
        (model / "Kitfile").write_text("\n".join(kitfile) + "\n")
        packed = work / "packed"
        store = packed / "store"
        run_child(PACK_CHILD, {"root": str(model), "ref": "bench/model:1", "home": str(packed)})
        index = json.loads((store / "index.json").read_text())
        (entry,) = index["manifests"]
        oci_ref = entry["annotations"]["org.opencontainers.image.ref.name"]
        manifest = json.loads((store / "blobs/sha256" / entry["digest"].split(":")[1]).read_text())
        layer_files = [str(store / "blobs/sha256" / d["digest"].split(":")[1]) for d in manifest["layers"]]
        total = sum(d["size"] for d in [manifest["config"], *manifest["layers"]])
        contenders = [c for c in CONTENDERS if not (args.no_oras and c == "oras-push")]

        with LocalRegistry(work / "registry") as reg:
            source = f"{reg.host}/bench/pull:1"  # what both pulls read: pushed once, untimed
            seed: dict[str, object] = {
                "home": str(work / "h-seed"),
                "store": str(store),
                "ref": "bench/model:1",
                "dest": source,
            }
            digest = run_child(PUSH_CHILD, seed).output["digest"]
            times: dict[str, list[float]] = {c: [] for c in contenders}
            rss: dict[str, int] = dict.fromkeys(contenders, 0)
            repush_bytes: list[int] = []
            for i in range(args.repeat):
                for name in contenders if i % 2 == 0 else contenders[::-1]:  # no contender always goes first
                    scratch = work / f"scratch-{name}-{i}"
                    os.sync()  # the last run's dirty pages must not be flushed on this run's time
                    try:
                        if name in ("push", "skopeo-push", "oras-push"):
                            # Each push goes to a registry of its own: skopeo's blob-info cache
                            # (and our mount hints) would otherwise mount the blobs from an
                            # earlier run's repository instead of sending them.
                            with LocalRegistry(scratch / "registry") as dest:
                                r = push_once(
                                    name, i, dest.host, skopeo, scratch, store, oci_ref, layer_files
                                )
                            if name == "push":
                                assert r.output["bytes_sent"] == total, r.output
                        elif name == "re-push":
                            r = run_child(PUSH_CHILD, {**seed, "home": str(scratch)})
                            repush_bytes.append(int(str(r.output["bytes_sent"])))
                        elif name == "pull":
                            r = run_child(
                                PULL_CHILD,
                                {"home": str(scratch), "store": str(scratch / "store"), "ref": source},
                            )
                            assert r.output["digest"] == digest and r.output["bytes_sent"] == total, r.output
                        else:  # skopeo-pull
                            scratch.mkdir(parents=True)
                            layout = f"oci:{scratch / 'layout'}:x"
                            r = run_tool(
                                [skopeo, "copy", "--src-tls-verify=false", f"docker://{source}", layout]
                            )
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
                    times[name].append(r.seconds)
                    rss[name] = max(rss[name], r.max_rss_bytes)
        return report(args, total, times, rss, repush_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    total: int,
    times: dict[str, list[float]],
    rss: dict[str, int],
    repush_bytes: list[int],
) -> int:
    med = {k: statistics.median(v) for k, v in times.items()}
    reference = {"push": "skopeo-push", "oras-push": "skopeo-push", "pull": "skopeo-pull"}
    ratios = {k: med[k] / med[ref] for k, ref in reference.items() if k in med}
    # Rounds are interleaved, so each round's pair saw the same machine state: their spread shows the noise.
    per_round = {
        k: [a / b for a, b in zip(times[k], times[ref], strict=True)]
        for k, ref in reference.items()
        if k in times
    }
    targets = {"push": "≤ 1.0× skopeo, RSS < 150 MB", "pull": "≤ 1.0× skopeo, RSS < 150 MB"}
    targets["re-push"] = "< 1 s, 0 bytes"
    checks = {
        "push time": ratios["push"] <= 1.0,
        "pull time": ratios["pull"] <= 1.0,
        "push RSS": rss["push"] < 150 * 2**20,
        "pull RSS": rss["pull"] < 150 * 2**20,
        "re-push time": med["re-push"] < 1.0,
        "re-push bytes": not any(repush_bytes),
    }
    rows = []
    for k in times:
        ratio = f"{ratios[k]:.2f}" if k in ratios else "-"
        speed = "-" if k == "re-push" else f"{total / med[k] / 2**20:.0f}"
        rows.append(
            f"| {k} | {med[k]:.2f} | {speed} | {ratio} | {targets.get(k, '-')} | {rss[k] / 2**20:.0f} |"
        )
    missed = [k for k, ok in checks.items() if not ok]
    md = "\n".join(
        [
            f"# transfer benchmark ({total / 2**30:.2f} GiB in {args.shards} layers, "
            f"median of {args.repeat}, local docker-registry over loopback)",
            "",
            "| contender | seconds | MiB/s | ratio to skopeo | target | peak RSS MiB |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Per-round ratios to skopeo (interleaved pairs): "
            + "; ".join(f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in per_round.items()),
            "",
            f"re-push blob bytes sent: {repush_bytes}",
            "",
            f"Targets missed: {', '.join(missed)}" if missed else "All targets met.",
            "",
        ]
    )
    jpath, mpath = write_results(
        "transfer",
        {
            "bytes": total,
            "shards": args.shards,
            "repeat": args.repeat,
            "seconds": times,
            "median": med,
            "ratios": ratios,
            "per_round_ratios": per_round,
            "targets": targets,
            "checks": checks,
            "peak_rss_bytes": rss,
            "repush_bytes_sent": repush_bytes,
            "meets_targets": not missed,
        },
        md,
    )
    print(md)
    print(f"results: {jpath} {mpath}")
    return 0 if not missed else 1
