"""push / pull under network faults: the real CLI, a real docker-registry, and a fault-injecting proxy
(tests/faultproxy.py) between them that cuts, corrupts or slows the byte stream on demand."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLI, FIXTURES
from conftest import unpacked_files as files_of
from faultproxy import FaultProxy
from registry_server import Registry

MiB = 1024 * 1024
pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A pass-through fault proxy in front of the test's registry."""
    with FaultProxy(registry.host, max_seconds=900) as p:
        yield p


def make_model(root: Path, weights: dict[str, int]) -> Path:
    """A model directory: random (incompressible) weight files of the given sizes, a README, a Kitfile."""
    root.mkdir(parents=True)
    for name, size in weights.items():
        with open(root / name, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    (root / "README.md").write_text("fault-test model\n")
    names = list(weights)
    kitfile = ["manifestVersion: 1.0.0", "package:", "  name: faults", "model:", "  name: faults"]
    kitfile += [f"  path: {names[0]}"]
    if names[1:]:
        kitfile += ["  parts:"] + [f"    - path: {n}" for n in names[1:]]
    kitfile += ["docs:", "  - path: README.md"]
    (root / "Kitfile").write_text("\n".join(kitfile) + "\n")
    for p in root.iterdir():
        os.chmod(p, 0o644)
    return root


def manifest_digest(cli: CLI, ref: str) -> str:
    index = json.loads((cli.store / "index.json").read_text())
    for m in index["manifests"]:
        if m["annotations"]["org.opencontainers.image.ref.name"] == ref:
            return str(m["digest"])
    raise AssertionError(f"{ref} is not in {cli.store}")


def kit_blobs(cli: CLI, ref: str) -> dict[str, int]:
    """digest -> size of the config and every layer of ``ref`` in ``cli``'s store."""
    manifest = json.loads(blob_path(cli, manifest_digest(cli, ref)).read_bytes())
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


def blob_path(cli: CLI, digest: str) -> Path:
    return cli.store / "blobs/sha256" / digest.split(":")[1]


def partials(cli: CLI) -> dict[str, int]:
    """Download staging files left in ``<home>/store.tmp``: ``sha256:<hex>`` -> size."""
    tmp = cli.home / "store.tmp"
    return {"sha256:" + p.name[len("partial-") :]: p.stat().st_size for p in tmp.glob("partial-*")}


def snapshot(cli: CLI) -> tuple[bytes, dict[str, int]]:
    """The store's index.json bytes and its blobs (name -> size)."""
    blobs = cli.store / "blobs/sha256"
    return (cli.store / "index.json").read_bytes(), {p.name: p.stat().st_size for p in blobs.iterdir()}


def assert_unpacks_to(cli: CLI, ref: str, model: Path, out: Path) -> None:
    cli.ok("unpack", ref, "-d", str(out))
    assert files_of(out) == files_of(model)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def packed_and_pushed(cli: CLI, model: Path, ref: str) -> dict[str, int]:
    cli.ok("pack", str(model), "-t", ref)
    cli.ok("push", ref, "--plain-http")
    return kit_blobs(cli, ref)


def test_pull_resumes_a_download_cut_midway_with_range(
    cli: CLI, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"weights.bin": 24 * MiB})
    ref = f"{proxy.host}/faults/cut:1"
    blobs = packed_and_pushed(cli, model, ref)
    big = max(blobs, key=blobs.__getitem__)
    proxy.cut(f"/blobs/{big}", after=5 * MiB, times=1)

    other = CLI(tmp_path / "other-home")
    pulled = json.loads(other.ok("pull", ref, "--plain-http", "--json").stdout)

    assert pulled["bytesTransferred"] == sum(blobs.values())
    first, *rest = proxy.matching(f"/blobs/{big}")
    assert first.fault == "cut" and first.response_bytes == 5 * MiB
    assert len(rest) == 1, [(e.headers.get("range"), e.status) for e in rest]
    resumed = rest[0]
    start = int(resumed.headers["range"].removeprefix("bytes=").split("-")[0])
    assert 0 < start <= 5 * MiB  # it kept what it had received
    assert resumed.status == 206 and resumed.response_bytes == blobs[big] - start
    assert partials(other) == {}
    assert_unpacks_to(other, ref, model, tmp_path / "out")


def test_interrupted_pull_resumes_in_a_new_process_with_range(
    cli: CLI, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"weights.bin": 96 * MiB})
    ref = f"{proxy.host}/faults/resume:1"
    blobs = packed_and_pushed(cli, model, ref)
    big = max(blobs, key=blobs.__getitem__)
    proxy.cut(f"/blobs/{big}", after=4 * MiB, times=None)  # every attempt dies after 4 MiB

    other = CLI(tmp_path / "other-home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitbridge", "pull", ref, "--plain-http"],
        env=other.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # once the first 4 MiB are on disk, kill it the hard way (a crash, a reboot, kill -9)
        deadline = time.monotonic() + 60
        while partials(other).get(big, 0) < 4 * MiB:
            assert proc.poll() is None and time.monotonic() < deadline, "the pull never wrote 4 MiB"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any(e.fault == "cut" for e in proxy.matching(f"/blobs/{big}"))
    left = partials(other)
    assert big in left and 0 < left[big] < blobs[big], left
    assert not blob_path(other, big).exists()

    proxy.disarm()
    seen = len(proxy.exchanges)
    again = json.loads(other.ok("pull", ref, "--plain-http", "--json").stdout)

    second = [e for e in proxy.exchanges[seen:] if e.method == "GET" and f"/blobs/{big}" in e.path]
    assert len(second) == 1
    assert second[0].headers.get("range") == f"bytes={left[big]}-"
    assert second[0].status == 206 and second[0].response_bytes == blobs[big] - left[big]
    fetched = sum(e.response_bytes for e in proxy.exchanges[seen:] if "/blobs/sha256:" in e.path)
    assert fetched < sum(blobs.values())
    assert again["digest"] == manifest_digest(cli, ref)
    assert partials(other) == {}
    assert_unpacks_to(other, ref, model, tmp_path / "out")


@pytest.mark.parametrize("which", ["one-blob", "every-blob"])
def test_pull_of_a_corrupted_blob_fails_and_stores_nothing_of_it(
    which: str, cli: CLI, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model", {"weights.bin": 16 * MiB, "head.bin": 1 * MiB})
    ref = f"{proxy.host}/faults/flip:1"
    blobs = packed_and_pushed(cli, model, ref)
    big = max(blobs, key=blobs.__getitem__)
    other = CLI(tmp_path / "other-home")
    other.ok("pack", str(FIXTURES / "tiny-model"), "-t", "local/already-here:1")  # content to keep intact
    before = snapshot(other)
    if which == "one-blob":
        proxy.flip(f"/blobs/{big}", at=blobs[big] // 2)
        corrupted = {big}
    else:
        proxy.flip("/blobs/sha256:", at=min(blobs.values()) // 2, times=None)
        corrupted = set(blobs)

    r = other("pull", ref, "--plain-http")

    assert r.returncode != 0
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and any(d in errors[0] for d in corrupted), r.stderr
    index, stored = snapshot(other)
    assert index == before[0]  # the reference was not set
    assert not any(blob_path(other, d).exists() for d in corrupted)
    # The blob that failed verification keeps no partial file. Blobs cancelled mid-way when it failed
    # may keep theirs (resuming is the point); one that turns out bad is re-fetched whole (below).
    failed = {d for d in corrupted if d in errors[0]}
    assert not set(partials(other)) & failed
    if which == "every-blob":
        assert stored == before[1]
    else:  # other blobs may have been fetched in parallel: only verified, complete ones were kept
        for name in set(stored) - set(before[1]):
            assert f"sha256:{name}" in blobs
            assert hashlib.sha256(blob_path(other, f"sha256:{name}").read_bytes()).hexdigest() == name

    proxy.disarm()
    other.ok("pull", ref, "--plain-http")
    assert_unpacks_to(other, ref, model, tmp_path / "out")


def crash_mid_push(registry: Registry, proxy: FaultProxy, layers: set[str]) -> threading.Event:
    """Start a thread that SIGKILLs the registry once a layer is up and the next is 8 MiB along."""
    crashed = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if registry.blob_digests() & layers:
                mark = proxy.uploaded
                while proxy.uploaded < mark + 8 * MiB and time.monotonic() < deadline:
                    time.sleep(0.005)
                registry.kill()
                crashed.set()
                return
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    return crashed


def four_layer_kit(
    cli: CLI, proxy: FaultProxy, tmp_path: Path, name: str
) -> tuple[Path, str, dict[str, int]]:
    model = make_model(tmp_path / "model", {f"part-{i}.bin": 32 * MiB for i in range(4)})
    ref = f"{proxy.host}/faults/{name}:1"
    cli.ok("pack", str(model), "-t", ref)
    blobs = kit_blobs(cli, ref)
    assert sum(size >= 32 * MiB for size in blobs.values()) == 4
    proxy.throttle(96 * MiB)  # about a third of a second per layer: time to crash in the middle
    return model, ref, blobs


def test_push_rides_out_a_registry_crash_and_restart(
    cli: CLI, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    model, ref, blobs = four_layer_kit(cli, proxy, tmp_path, "restart")
    layers = {d for d, size in blobs.items() if size >= 32 * MiB}
    crashed = crash_mid_push(registry, proxy, layers)

    def restart_after_crash() -> None:
        if crashed.wait(timeout=120):
            time.sleep(1.0)
            registry.start()

    restarter = threading.Thread(target=restart_after_crash, daemon=True)
    restarter.start()
    pushed = json.loads(cli.ok("push", ref, "--plain-http", "--concurrency", "1", "--json").stdout)
    restarter.join(timeout=130)

    assert crashed.is_set(), "the push ended before the registry could be killed"
    assert pushed["bytesTransferred"] == sum(blobs.values())  # each blob counted once...
    assert proxy.uploaded > sum(blobs.values())  # ...though the one cut by the crash went up again
    assert registry.blob_digests() >= set(blobs)
    other = CLI(tmp_path / "other-home")
    other.ok("pull", ref, "--plain-http")
    assert_unpacks_to(other, ref, model, tmp_path / "out")


def test_push_after_a_registry_crash_resends_only_unfinished_blobs(
    cli: CLI, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    model, ref, blobs = four_layer_kit(cli, proxy, tmp_path, "crash")
    layers = {d for d, size in blobs.items() if size >= 32 * MiB}
    crashed = crash_mid_push(registry, proxy, layers)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kitbridge", "push", ref, "--plain-http", "--concurrency", "1"],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert crashed.wait(timeout=120), "the registry was never killed"
        assert proc.poll() is None, "the push ended before the crash"
        proc.terminate()  # the user gives up while it retries against the dead registry
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    registry.start()
    present = registry.blob_digests() & set(blobs)
    missing = set(blobs) - present
    assert present & layers and missing & layers, (present, missing)  # a real mid-push crash
    proxy.throttle(None)
    seen = len(proxy.exchanges)

    second = json.loads(cli.ok("push", ref, "--plain-http", "--concurrency", "1", "--json").stdout)

    assert second["blobsSkipped"] == len(present)
    assert second["blobsTransferred"] == len(missing)
    assert second["bytesTransferred"] == sum(blobs[d] for d in missing)
    resent = sum(e.request_bytes for e in proxy.exchanges[seen:] if "/blobs/uploads/" in e.path)
    assert resent == sum(blobs[d] for d in missing)  # nothing already up went over the wire again
    assert registry.blob_digests() >= set(blobs)
    other = CLI(tmp_path / "other-home")
    other.ok("pull", ref, "--plain-http")
    assert_unpacks_to(other, ref, model, tmp_path / "out")
