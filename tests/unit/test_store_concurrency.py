"""Several processes on one store: parallel writers never lose a ref, gc never deletes a writer's blobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kitbridge.oci.reference import Reference
from kitbridge.oci.store import Store

REPO = Path(__file__).resolve().parents[2]

# A writer process: for each i, write a unique layer + config + manifest and tag it prefix/m:i.
# It waits for the GO file so that all processes start at the same moment.
WRITER = """
import hashlib, os, sys, time
from pathlib import Path
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.gojson import Struct, dumps
from kitbridge.oci.store import Store

root, prefix, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
go = Path(root).parent / "GO"
while not go.exists():
    time.sleep(0.001)
store = Store(root)
for i in range(count):
    with store.writing():
        payload = f"{prefix}-{i}-".encode() * 20000
        with store.stage() as staged:
            staged.write(payload)
            store.commit(staged)
            layer = Descriptor("application/vnd.kitops.modelkit.model.v1.tar", staged.digest, staged.size)
        shared = Descriptor("application/vnd.kitops.modelkit.docs.v1.tar",
                            *store.put_bytes(b"same in every pack"))
        time.sleep(pause)  # the window in which an unlocked gc would delete the new, unreferenced blobs
        config = Descriptor("application/vnd.kitops.modelkit.config.v1+json",
                            *store.put_bytes(f'{{"name":"{prefix}-{i}"}}'.encode()))
        doc = Struct(schemaVersion=2, mediaType="application/vnd.oci.image.manifest.v1+json",
                     config=config.to_struct(), layers=[layer.to_struct(), shared.to_struct()])
        manifest = Descriptor("application/vnd.oci.image.manifest.v1+json", *store.put_bytes(dumps(doc)))
        store.set_ref(f"localhost/{prefix}/m:{i}", manifest)
    time.sleep(pause / 2)  # let a waiting gc in
print("done", flush=True)
"""

# A gc process: run gc over and over until the STOP file appears; report how many runs and deletions.
GC = """
import sys, time
from pathlib import Path
from kitbridge.oci.store import Store

root = sys.argv[1]
stop = Path(root).parent / "STOP"
go = Path(root).parent / "GO"
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
store = Store(root)
runs = deleted = 0
while not stop.exists():
    deleted += len(store.gc(timeout=60))
    runs += 1
    time.sleep(0.01)  # a gc in a tight loop would in turn keep writers waiting at the turnstile
print(runs, deleted, flush=True)
"""


def spawn(script: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / f"script-{abs(hash(script))}.py"
    # Written once: rewriting it while an earlier child is still reading it would hand that child
    # an empty (truncated) script, which exits 0 having done nothing.
    if not path.exists():
        path.write_text(textwrap.dedent(script))
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ},
    )


def assert_complete(store: Store, names: list[str]) -> None:
    """index.json is valid JSON with exactly these refs, and every blob they need is present."""
    doc = json.loads(store.index_path.read_bytes())
    assert doc["schemaVersion"] == 2
    stored = [m["annotations"]["org.opencontainers.image.ref.name"] for m in doc["manifests"]]
    assert sorted(stored) == sorted(names)
    for name in names:
        desc = store.resolve(Reference.parse(name))
        manifest = json.loads(store.read_bytes(desc.digest))
        for d in [manifest["config"], *manifest["layers"]]:
            assert store.verify_blob(d["digest"]) == d["size"]


def test_parallel_writer_processes_all_land_in_index_json(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writers = [spawn(WRITER, tmp_path, str(root), f"w{n}", "8", "0") for n in range(4)]
    (tmp_path / "GO").touch()
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert out.strip() == "done"
    store = Store(root)
    assert_complete(store, [f"localhost/w{n}/m:{i}" for n in range(4) for i in range(8)])
    assert list(store.staging_dir.iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == ["blobs", "index.json", "oci-layout"]


def test_gc_running_beside_writers_never_deletes_their_blobs(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root).put_bytes(b"garbage that gc may delete")
    writers = [spawn(WRITER, tmp_path, str(root), f"w{n}", "6", "0.05") for n in range(3)]
    collector = spawn(GC, tmp_path, str(root))
    assert collector.stdout is not None
    assert collector.stdout.readline().strip() == "ready"
    (tmp_path / "GO").touch()
    for w in writers:
        _, err = w.communicate(timeout=120)
        # set_ref checks every blob the manifest needs: a gc that raced would fail the writer here
        assert w.returncode == 0, err
    (tmp_path / "STOP").touch()
    out, err = collector.communicate(timeout=120)
    assert collector.returncode == 0, err
    runs, deleted = map(int, out.split())
    assert runs >= 3  # gc really ran between the writers' packs, not only before or after them
    assert deleted >= 1  # and it really deleted (the garbage blob)
    store = Store(root)
    assert_complete(store, [f"localhost/w{n}/m:{i}" for n in range(3) for i in range(6)])
    assert store.gc() == []


def test_a_gc_that_holds_the_store_makes_writers_wait_not_fail(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    store.put_bytes(b"x")
    from kitbridge.oci import lock

    with lock.exclusive(store.lock_path, timeout=5):  # what gc holds while it runs
        writer = spawn(WRITER, tmp_path, str(root), "late", "1", "0")
        (tmp_path / "GO").touch()
        time.sleep(0.5)
        assert writer.poll() is None  # blocked on the writer lock
        assert Store(root).refs() == []
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert_complete(Store(root), ["localhost/late/m:0"])


def test_threads_of_one_process_share_the_writer_lock_and_gc_waits_for_them(tmp_path: Path) -> None:
    import threading

    from kitbridge.oci.descriptor import Descriptor
    from kitbridge.oci.gojson import Struct, dumps

    store = Store(tmp_path / "store")
    store.put_bytes(b"garbage")
    errors: list[BaseException] = []
    stop = threading.Event()
    gc_runs = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                with store.writing():
                    layer = Descriptor("application/x-layer", *store.put_bytes(f"{n}/{i}".encode() * 1000))
                    time.sleep(0.01)
                    config = Descriptor("application/x-config", *store.put_bytes(b"{}"))
                    doc = Struct(
                        schemaVersion=2,
                        mediaType="application/vnd.oci.image.manifest.v1+json",
                        config=config.to_struct(),
                        layers=[layer.to_struct()],
                    )
                    manifest = Descriptor(
                        "application/vnd.oci.image.manifest.v1+json", *store.put_bytes(dumps(doc))
                    )
                    store.set_ref(f"t{n}/m:{i}", manifest)
                time.sleep(0.005)
        except BaseException as e:
            errors.append(e)

    def collect() -> None:
        try:
            while not stop.is_set():
                gc_runs.append(len(store.gc(timeout=30)))
                time.sleep(0.005)
        except BaseException as e:
            errors.append(e)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    collector = threading.Thread(target=collect)
    collector.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    collector.join()
    assert errors == []
    # gc ran (how often depends on scheduling) and removed the garbage blob without touching the writers'
    assert gc_runs and sum(gc_runs) >= 1
    assert_complete(store, [f"localhost/t{n}/m:{i}" for n in range(4) for i in range(5)])
