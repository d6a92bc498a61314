"""The local OCI store: layout bytes, staging and commit, refs, ingest without copying, gc, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kitbridge.errors import DigestMismatchError, FormatError, NotFoundError, ReferenceFormatError, StoreError
from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.gojson import Struct, dumps
from kitbridge.oci.reference import Reference
from kitbridge.oci.store import INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Store

REPO = Path(__file__).resolve().parents[2]
CONFIG_MT = "application/vnd.kitops.modelkit.config.v1+json"
LAYER_MT = "application/vnd.kitops.modelkit.model.v1.tar"
ARTIFACT_MT = "application/vnd.kitops.modelkit.manifest.v1+json"
EMPTY_INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(config: Descriptor, layers: list[Descriptor]) -> bytes:
    return dumps(
        Struct(
            schemaVersion=2,
            mediaType=MANIFEST_MEDIA_TYPE,
            artifactType=ARTIFACT_MT,
            config=config.to_struct(),
            layers=[layer.to_struct() for layer in layers],
        )
    )


def put_artifact(store: Store, name: str, payload: bytes) -> tuple[Descriptor, list[str]]:
    """Write config + one layer + manifest and tag it; return the manifest descriptor and all digests."""
    with store.writing():
        with store.stage() as staged:
            staged.write(payload)
            store.commit(staged, sha(payload))
        layer = Descriptor(LAYER_MT, sha(payload), len(payload))
        config = Descriptor(
            CONFIG_MT, *store.put_bytes(b'{"manifestVersion":"1.0.0","name":"' + name.encode() + b'"}')
        )
        manifest = Descriptor(MANIFEST_MEDIA_TYPE, *store.put_bytes(manifest_bytes(config, [layer])))
        store.set_ref(name, manifest)
    return manifest, [manifest.digest, config.digest, layer.digest]


def blob_names(store: Store) -> set[str]:
    return {p.name for p in store.blobs_dir.iterdir()} if store.blobs_dir.is_dir() else set()


def snapshot(store: Store) -> tuple[bytes, dict[str, bytes]]:
    return store.index_path.read_bytes(), {n: (store.blobs_dir / n).read_bytes() for n in blob_names(store)}


# ---- layout -------------------------------------------------------------------------------------


def test_reading_an_absent_store_creates_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    assert store.refs() == []
    assert not store.has_blob(sha(b"x"))
    with pytest.raises(NotFoundError):
        store.resolve(Reference.parse("org/model:1"))
    assert store.gc() == []
    assert list(tmp_path.iterdir()) == []


def test_layout_files_are_exactly_what_the_image_spec_says(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    digest, size = store.put_bytes(b"hello")
    assert (digest, size) == (sha(b"hello"), 5)
    root = tmp_path / "store"
    assert (root / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert (root / "index.json").read_bytes() == EMPTY_INDEX
    assert (root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == b"hello"
    # staging and locks live beside the layout, so other tools see a clean one
    assert sorted(p.name for p in root.iterdir()) == ["blobs", "index.json", "oci-layout"]
    assert sorted(p.name for p in (root / "blobs").iterdir()) == ["sha256"]
    assert (tmp_path / "store.tmp").is_dir()
    assert (tmp_path / "store.lock").is_file()


def test_set_ref_writes_the_full_reference_as_ref_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, _ = put_artifact(store, "org/model:1", b"weights")
    expected = dumps(
        Struct(
            schemaVersion=2,
            mediaType=INDEX_MEDIA_TYPE,
            manifests=[
                Struct(
                    mediaType=MANIFEST_MEDIA_TYPE,
                    digest=manifest.digest,
                    size=manifest.size,
                    annotations={"org.opencontainers.image.ref.name": "localhost/org/model:1"},
                    artifactType=ARTIFACT_MT,
                )
            ],
        )
    )
    assert store.index_path.read_bytes() == expected
    assert [name for name, _ in store.refs()] == ["localhost/org/model:1"]
    assert store.resolve(Reference.parse("localhost/org/model:1")).digest == manifest.digest
    assert store.resolve("org/model:1").artifact_type == ARTIFACT_MT


def test_set_ref_replaces_the_same_name_and_keeps_others(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first, _ = put_artifact(store, "org/model:1", b"one")
    other, _ = put_artifact(store, "org/model:2", b"two")
    second, _ = put_artifact(store, "localhost/org/model:1", b"three")
    refs = store.refs()
    assert [(n, d.digest) for n, d in refs] == [
        ("localhost/org/model:1", second.digest),
        ("localhost/org/model:2", other.digest),
    ]
    assert first.digest != second.digest


def test_set_ref_refuses_a_manifest_whose_blobs_are_missing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    put_artifact(store, "org/model:1", b"one")
    before = store.index_path.read_bytes()
    config = Descriptor(CONFIG_MT, *store.put_bytes(b"{}"))
    missing = Descriptor(LAYER_MT, sha(b"never written"), 13)
    manifest = Descriptor(MANIFEST_MEDIA_TYPE, *store.put_bytes(manifest_bytes(config, [missing])))
    with pytest.raises(NotFoundError, match=missing.digest):
        store.set_ref("org/model:2", manifest)
    with pytest.raises(NotFoundError):
        store.set_ref("org/model:3", Descriptor(MANIFEST_MEDIA_TYPE, sha(b"nothing"), 7))
    with pytest.raises(FormatError, match="not a manifest"):
        store.set_ref("org/model:4", Descriptor("", config.digest, config.size))
    with pytest.raises(ReferenceFormatError, match="needs a tag"):
        store.set_ref("org/model@" + manifest.digest, manifest)
    assert store.index_path.read_bytes() == before


def test_resolve_by_digest_from_the_index_or_from_a_blob(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, digests = put_artifact(store, "org/model:1", b"one")
    assert store.resolve(Reference.parse(manifest.digest)).digest == manifest.digest
    assert store.resolve("other/name:9@" + manifest.digest).digest == manifest.digest  # the digest wins
    # an untagged manifest that is only present as a blob
    config = Descriptor(CONFIG_MT, *store.put_bytes(b'{"x":1}'))
    loose = Descriptor(MANIFEST_MEDIA_TYPE, *store.put_bytes(manifest_bytes(config, [])))
    found = store.resolve(Reference.parse(loose.digest))
    assert (found.media_type, found.size, found.artifact_type) == (
        MANIFEST_MEDIA_TYPE,
        loose.size,
        ARTIFACT_MT,
    )
    with pytest.raises(NotFoundError, match="not a manifest"):
        store.resolve(Reference.parse(digests[2]))  # a layer
    with pytest.raises(NotFoundError, match="not in the local store"):
        store.resolve(Reference.parse(sha(b"absent")))
    with pytest.raises(NotFoundError, match="org/model:2"):
        store.resolve("org/model:2")


def test_names_written_by_other_tools_resolve_by_meaning(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, _ = put_artifact(store, "model:latest", b"one")
    doc = json.loads(store.index_path.read_bytes())
    doc["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = (
        "model"  # as `skopeo copy … oci:dir:model`
    )
    store.index_path.write_bytes(json.dumps(doc).encode())
    assert store.resolve("localhost/model:latest").digest == manifest.digest
    assert store.remove_ref("model").digest == manifest.digest
    assert store.refs() == []


def test_remove_ref_untags_and_gc_then_deletes(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, digests = put_artifact(store, "org/model:1", b"one")
    assert store.remove_ref("org/model:1") == store_descriptor(manifest, "localhost/org/model:1")
    with pytest.raises(NotFoundError):
        store.remove_ref("org/model:1")
    assert all(store.has_blob(d) for d in digests)  # blobs stay until gc
    assert store.gc() == sorted(digests)
    assert blob_names(store) == set()
    assert store.index_path.read_bytes() == EMPTY_INDEX


def store_descriptor(manifest: Descriptor, name: str) -> Descriptor:
    return Descriptor(
        manifest.media_type,
        manifest.digest,
        manifest.size,
        {"org.opencontainers.image.ref.name": name},
        ARTIFACT_MT,
    )


# ---- blobs --------------------------------------------------------------------------------------


def test_commit_renames_the_staged_file_into_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with store.stage() as staged:
        assert staged.path.parent == tmp_path / "store.tmp"
        staged.write(b"abc")
        staged.file.write(b"def")  # written around the hash: commit trusts the caller's digest
        path = store.commit(staged, sha(b"abcdef"))
        assert not staged.path.exists()
    assert path == store.blob_path(sha(b"abcdef"))
    assert path.read_bytes() == b"abcdef"
    assert store.blob_size(sha(b"abcdef")) == 6
    assert list(store.staging_dir.iterdir()) == []
    with store.open_blob(sha(b"abcdef")) as f:
        assert f.read() == b"abcdef"


def test_commit_of_an_existing_blob_discards_the_staged_copy(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.put_bytes(b"same")
    inode = store.blob_path(sha(b"same")).stat().st_ino
    with store.stage() as staged:
        staged.write(b"same")
        store.commit(staged)
    assert store.blob_path(sha(b"same")).stat().st_ino == inode
    assert list(store.staging_dir.iterdir()) == []


def test_commit_refuses_a_digest_that_does_not_match_what_was_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with pytest.raises(DigestMismatchError), store.stage() as staged:
        staged.write(b"real bytes")
        store.commit(staged, sha(b"other bytes"))
    with pytest.raises(DigestMismatchError), store.stage() as staged:
        staged.file.write(b"real bytes")
        store.commit(staged, sha(b"other bytes"), verify=True)
    assert blob_names(store) == set()
    assert list(store.staging_dir.iterdir()) == []


def test_stage_is_removed_when_the_block_raises_or_never_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    put_artifact(store, "org/model:1", b"one")
    before = snapshot(store)
    with pytest.raises(RuntimeError), store.writing(), store.stage() as staged:
        staged.write(b"half a layer")
        raise RuntimeError("pack failed halfway")
    with store.stage() as staged:
        staged.write(b"forgotten")
    assert snapshot(store) == before
    assert list(store.staging_dir.iterdir()) == []


def test_put_stream_verifies_the_expected_digest(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "src.bin"
    src.write_bytes(b"streamed" * 1000)
    with open(src, "rb") as f:
        assert store.put_stream(f) == (sha(src.read_bytes()), 8000)
    with open(src, "rb") as f, pytest.raises(DigestMismatchError):
        store.put_stream(f, sha(b"something else"))
    assert blob_names(store) == {sha(src.read_bytes()).split(":")[1]}


def test_read_bytes_verifies_the_digest_and_the_limit(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    digest, _ = store.put_bytes(b'{"a":1}')
    assert store.read_bytes(digest) == b'{"a":1}'
    with pytest.raises(StoreError, match="limit"):
        store.read_bytes(digest, limit=3)
    os.chmod(store.blob_path(digest), 0o644)
    store.blob_path(digest).write_bytes(b'{"a":2}')  # bit rot, or a hardlinked source edited in place
    with pytest.raises(DigestMismatchError):
        store.read_bytes(digest)
    with pytest.raises(DigestMismatchError):
        store.verify_blob(digest)
    with pytest.raises(NotFoundError):
        store.read_bytes(sha(b"absent"))
    with pytest.raises(ReferenceFormatError):
        store.blob_path("sha256:nothex")


# ---- ingest_file --------------------------------------------------------------------------------


def test_ingest_file_hardlinks_on_the_same_filesystem(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "model.safetensors"
    src.write_bytes(os.urandom(100_000))
    digest, size = store.ingest_file(src, reflink=False)
    assert (digest, size) == (sha(src.read_bytes()), 100_000)
    assert store.blob_path(digest).stat().st_ino == src.stat().st_ino
    assert list(store.staging_dir.iterdir()) == []
    # the documented caveat: editing the source in place changes the blob, and verification catches it
    with open(src, "r+b") as f:
        f.write(b"edited")
    with pytest.raises(DigestMismatchError):
        store.verify_blob(digest)


def test_ingest_file_never_aliases_the_source_when_it_can_clone_or_copy(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(50_000))
    digest, _ = store.ingest_file(src, hardlink=False)  # reflink where supported, else a copy
    assert store.blob_path(digest).stat().st_ino != src.stat().st_ino
    assert store.verify_blob(digest) == 50_000


def test_ingest_file_copy_fallback_hashes_while_copying(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "w.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)  # more than one read chunk
    src.write_bytes(data)
    digest, size = store.ingest_file(src, sha(data), reflink=False, hardlink=False)
    assert (digest, size) == (sha(data), len(data))
    assert store.blob_path(digest).stat().st_ino != src.stat().st_ino
    assert store.blob_path(digest).read_bytes() == data
    other = tmp_path / "o.bin"
    other.write_bytes(b"not what the digest says")
    with pytest.raises(DigestMismatchError):
        store.ingest_file(other, sha(b"claimed"), reflink=False, hardlink=False)
    assert not store.has_blob(sha(b"claimed"))
    assert list(store.staging_dir.iterdir()) == []


def test_ingest_file_across_filesystems_copies(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) to exercise a failing hardlink")
    store = Store(tmp_path / "store")
    src = shm / f"kitbridge-test-{os.getpid()}.bin"
    try:
        src.write_bytes(b"on tmpfs" * 100)
        digest, _ = store.ingest_file(src)
        assert store.blob_path(digest).stat().st_ino != src.stat().st_ino or (
            store.blob_path(digest).stat().st_dev != src.stat().st_dev
        )
        assert store.verify_blob(digest) == 800
    finally:
        src.unlink(missing_ok=True)


def test_ingest_file_follows_a_symlinked_source_and_skips_existing_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    real = tmp_path / "blobs-cache" / "abc"
    real.parent.mkdir()
    real.write_bytes(b"hf cache blob")
    link = tmp_path / "snapshot.bin"
    link.symlink_to(real)
    digest, size = store.ingest_file(link, reflink=False)
    assert store.blob_path(digest).stat().st_ino == real.stat().st_ino
    assert store.ingest_file(link, digest) == (digest, size)  # already there: nothing to do
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"a different length")
    with pytest.raises(DigestMismatchError, match="bytes"):
        store.ingest_file(wrong, digest)
    with pytest.raises(StoreError, match="not a regular file"):
        store.ingest_file(tmp_path)
    with pytest.raises(NotFoundError):
        store.ingest_file(tmp_path / "absent")


# ---- gc -----------------------------------------------------------------------------------------


def test_gc_keeps_referenced_blobs_and_deletes_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    _, kept = put_artifact(store, "org/model:1", b"kept")
    loose, _ = store.put_bytes(b"unreferenced")
    with store.writing():
        layer, _ = store.put_bytes(b"orphan layer")  # a pack that failed before set_ref
    (store.staging_dir / "blob-1-dead").write_bytes(b"crashed writer")
    (store.root / ".index.json.1-dead.tmp").write_bytes(b"{")
    deleted = store.gc()
    assert deleted == sorted([loose, layer])
    assert blob_names(store) == {d.split(":")[1] for d in kept}
    assert list(store.staging_dir.iterdir()) == []
    assert sorted(p.name for p in store.root.iterdir()) == ["blobs", "index.json", "oci-layout"]
    assert store.gc() == []


def test_gc_follows_an_image_index_to_its_manifests(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, kept = put_artifact(store, "org/model:1", b"inner")
    store.remove_ref("org/model:1")
    index = dumps(Struct(schemaVersion=2, mediaType=INDEX_MEDIA_TYPE, manifests=[manifest.to_struct()]))
    index_desc = Descriptor(INDEX_MEDIA_TYPE, *store.put_bytes(index))
    store.set_ref("org/multi:1", index_desc)
    assert store.gc() == []
    assert blob_names(store) == {d.split(":")[1] for d in [*kept, index_desc.digest]}


def test_gc_stops_before_deleting_anything_when_a_manifest_is_unreadable(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    manifest, _ = put_artifact(store, "org/model:1", b"one")
    loose, _ = store.put_bytes(b"unreferenced")
    path = store.blob_path(manifest.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    with pytest.raises(DigestMismatchError):
        store.gc()
    assert store.has_blob(loose)


def test_gc_refuses_to_run_inside_writing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.put_bytes(b"x")
    with store.writing(), pytest.raises(StoreError, match="writing"):
        store.gc()


def test_gc_waits_for_a_writer_and_times_out_clearly(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.put_bytes(b"x")
    other_thread_store = Store(tmp_path / "store")
    import threading

    errors: list[BaseException] = []

    def run_gc() -> None:
        try:
            other_thread_store.gc(timeout=0.3)
        except BaseException as e:
            errors.append(e)

    with store.writing():
        t = threading.Thread(target=run_gc)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert "timed out" in errors[0].message and errors[0].hint
    assert store.has_blob(sha(b"x"))


# ---- crashes ------------------------------------------------------------------------------------


def run_child(script: str, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ}
    )


def test_a_writer_killed_mid_blob_leaves_the_store_unchanged_and_unlocked(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    put_artifact(store, "org/model:1", b"one")
    before = snapshot(store)
    child = run_child(
        f"""
        import time
        from kitbridge.oci.store import Store
        store = Store({str(store.root)!r})
        with store.writing(), store.stage() as staged:
            staged.write(b"x" * 3_000_000)
            staged.flush()
            print("ready", flush=True)
            time.sleep(60)
        """,
        tmp_path,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert snapshot(store) == before
    assert len(list(store.staging_dir.iterdir())) == 1  # the torn write stayed outside blobs/
    assert store.gc(timeout=5) == []  # the dead writer's lock is gone with it
    assert list(store.staging_dir.iterdir()) == []
    assert snapshot(store) == before


def test_a_crash_while_replacing_index_json_leaves_the_old_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    put_artifact(store, "org/model:1", b"one")
    before = store.index_path.read_bytes()
    child = run_child(
        f"""
        import os, signal
        from kitbridge.oci.descriptor import Descriptor
        from kitbridge.oci.gojson import Struct, dumps
        from kitbridge.oci.store import Store
        store = Store({str(store.root)!r})
        def crash(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        with store.writing():
            layer = Descriptor({LAYER_MT!r}, *store.put_bytes(b"two"))
            config = Descriptor({CONFIG_MT!r}, *store.put_bytes(b"{{}}"))
            doc = Struct(schemaVersion=2, mediaType={MANIFEST_MEDIA_TYPE!r}, config=config.to_struct(),
                         layers=[layer.to_struct()])
            manifest = Descriptor({MANIFEST_MEDIA_TYPE!r}, *store.put_bytes(dumps(doc)))
            os.replace = crash  # die at the exact moment the new index would be renamed into place
            store.set_ref("org/model:2", manifest)
        """,
        tmp_path,
    )
    assert child.wait(30) == -signal.SIGKILL
    assert store.index_path.read_bytes() == before
    assert [n for n, _ in store.refs()] == ["localhost/org/model:1"]
    leftovers = [p.name for p in store.root.iterdir() if p.name.startswith(".index.json.")]
    assert len(leftovers) == 1
    assert len(store.gc()) == 3  # the dead pack's blobs and its temp index go
    assert sorted(p.name for p in store.root.iterdir()) == ["blobs", "index.json", "oci-layout"]
