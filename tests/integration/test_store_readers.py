"""The local store is an OCI image layout that the real skopeo and umoci read as is."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import require_tool

from kitbridge.oci.descriptor import Descriptor
from kitbridge.oci.gojson import Struct, dumps
from kitbridge.oci.store import MANIFEST_MEDIA_TYPE, Store

REF = "localhost/test/model:1"
ARTIFACT_MT = "application/vnd.kitops.modelkit.manifest.v1+json"


def run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}"
    return p.stdout


@pytest.fixture
def store(tmp_path: Path) -> tuple[Store, bytes, list[str]]:
    """A store built with the API: config, a tar layer, a raw layer, a manifest with artifactType, a ref."""
    st = Store(tmp_path / "store")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        data = b"weights" * 1000
        info = tarfile.TarInfo("model/w.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    raw_src = tmp_path / "README.md"
    raw_src.write_bytes(b"# a model\n")
    with st.writing():
        with st.stage() as staged:
            staged.write(buf.getvalue())
            st.commit(staged)
            layer = Descriptor(
                "application/vnd.kitops.modelkit.model.v1.tar",
                staged.digest,
                staged.size,
                {"org.cncf.model.filepath": "model"},
            )
        docs = Descriptor(
            "application/vnd.kitops.modelkit.docs.v1.raw",
            *st.ingest_file(raw_src),
            {"org.cncf.model.filepath": "README.md"},
        )
        config = Descriptor(
            "application/vnd.kitops.modelkit.config.v1+json", *st.put_bytes(b'{"manifestVersion":"1.0.0"}')
        )
        manifest_data = dumps(
            Struct(
                schemaVersion=2,
                mediaType=MANIFEST_MEDIA_TYPE,
                artifactType=ARTIFACT_MT,
                config=config.to_struct(),
                layers=[layer.to_struct(), docs.to_struct()],
            )
        )
        manifest = Descriptor(MANIFEST_MEDIA_TYPE, *st.put_bytes(manifest_data))
        st.set_ref(REF, manifest)
    return st, manifest_data, [manifest.digest, config.digest, layer.digest, docs.digest]


def test_skopeo_inspect_raw_returns_the_exact_manifest_bytes(store: tuple[Store, bytes, list[str]]) -> None:
    skopeo = require_tool("skopeo")
    st, manifest_data, _ = store
    out = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci:{st.root}:{REF}"], capture_output=True, timeout=120, check=True
    ).stdout
    assert out == manifest_data


def test_skopeo_copies_the_artifact_to_another_layout(
    store: tuple[Store, bytes, list[str]], tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    st, manifest_data, digests = store
    other = tmp_path / "other"
    run(skopeo, "copy", f"oci:{st.root}:{REF}", f"oci:{other}:x")
    index = json.loads((other / "index.json").read_bytes())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "x"
    assert entry["digest"] == digests[0]
    for digest in digests:
        copied = (other / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(copied).hexdigest() == digest
    assert (other / "blobs" / "sha256" / digests[0].split(":")[1]).read_bytes() == manifest_data


def test_skopeo_writes_into_the_store_and_kitbridge_reads_it(
    store: tuple[Store, bytes, list[str]], tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    st, _, digests = store
    run(skopeo, "copy", f"oci:{st.root}:{REF}", f"oci:{st.root}:localhost/test/model:copy")
    assert st.resolve("test/model:copy").digest == digests[0]
    assert st.gc() == []  # every blob is still referenced
    st.remove_ref(REF)
    assert st.gc() == []  # skopeo's ref still holds them
    assert st.remove_ref("test/model:copy").digest == digests[0]
    assert sorted(st.gc()) == sorted(digests)


def test_umoci_lists_the_ref(store: tuple[Store, bytes, list[str]]) -> None:
    umoci = require_tool("umoci")
    st, _, _ = store
    assert run(umoci, "ls", "--layout", str(st.root)).split() == [REF]
