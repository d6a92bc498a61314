"""The local Hub test server (tests/hub_server.py) against the REAL ``huggingface_hub`` client.

The Hugging Face importer's tests trust this server to behave like huggingface.co; these tests are
what earns that trust: every answer the client library depends on (repo info with file metadata,
revisions, cache layout, errors mapped to the right exception classes, ranges, resumes, offline
mode) is exercised through the client's own code paths, in-process with ``endpoint=`` and in a
subprocess with ``HF_ENDPOINT``. Each test has its own cache directory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import huggingface_hub
import pytest
import requests
from hub_server import HubServer, LoggedRequest, git_blob_sha1
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,  # 1.x+ raises its subclass RemoteEntryNotFoundError
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

CARD = b"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
tags:
- tiny
- test
---
# A tiny model
"""
CONFIG = b'{"model_type": "bert", "hidden_size": 4}\n'


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file: 8-byte little-endian header length, JSON header, zeroed data.

    Made with the ``safetensors`` package when it is installed, by hand otherwise (same format)."""
    widths = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = widths[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


MODEL_ST = safetensors_bytes({"embed.weight": ("F32", [8, 4]), "head.bias": ("F16", [3])})


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own HF_TOKEN must not leak into requests the tests expect to be anonymous."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


def _tiny_model(hub: HubServer, repo_id: str = "acme/tiny", **kw: object) -> str:
    files = {"README.md": CARD, "config.json": CONFIG, "model.safetensors": MODEL_ST}
    return hub.add_commit(repo_id, files, **kw)  # type: ignore[arg-type]


def _api(hub: HubServer, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


# -- metadata ------------------------------------------------------------------------------------


def test_model_info_with_files_metadata(hub: HubServer) -> None:
    sha = _tiny_model(hub)
    info = _api(hub).model_info("acme/tiny", files_metadata=True)

    assert info.id == "acme/tiny" and info.author == "acme" and info.sha == sha and len(sha) == 40
    assert info.private is False and info.gated is False and info.disabled is False
    assert info.created_at is not None and info.last_modified is not None
    assert info.library_name == "transformers" and info.pipeline_tag == "text-classification"
    assert info.tags == ["tiny", "test", "license:apache-2.0"]
    assert info.card_data is not None and info.card_data["license"] == "apache-2.0"
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {"README.md", "config.json", "model.safetensors"}
    st = siblings["model.safetensors"]
    assert st.size == len(MODEL_ST) and st.lfs is not None
    assert st.lfs.sha256 == hashlib.sha256(MODEL_ST).hexdigest() and st.lfs.size == len(MODEL_ST)
    assert 120 <= st.lfs.pointer_size <= 140
    assert st.blob_id == git_blob_sha1(MODEL_ST)
    cfg = siblings["config.json"]
    assert cfg.size == len(CONFIG) and cfg.lfs is None and cfg.blob_id == git_blob_sha1(CONFIG)
    # git's own object id for the same bytes, to pin the blob sha1 formula
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"F32": 32, "F16": 3} and info.safetensors.total == 35

    plain = _api(hub).repo_info("acme/tiny")  # without blobs=true: names only
    assert plain.siblings is not None and all(s.size is None for s in plain.siblings)


def test_raw_info_json_shape(hub: HubServer) -> None:
    """Fields the importer reads straight from the JSON, and unknown query params being ignored."""
    _tiny_model(hub)
    r = requests.get(f"{hub.url}/api/models/acme/tiny", params={"blobs": "true", "expand[]": "x"}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["modelId"] == "acme/tiny" and body["downloads"] == 0 and body["likes"] == 0
    for key in ("createdAt", "lastModified"):
        assert body[key].endswith("Z") and len(body[key]) == len("2024-01-01T00:00:00.000Z")
    lfs = next(s for s in body["siblings"] if s["rfilename"] == "model.safetensors")["lfs"]
    assert set(lfs) == {"sha256", "size", "pointerSize"}
    ds = requests.get(f"{hub.url}/api/datasets/acme/tiny", timeout=10)
    assert ds.status_code == 401 and ds.headers["X-Error-Code"] == "RepoNotFound"
    assert ds.json() == {"error": "Repository not found"}


def test_tree_listing(hub: HubServer) -> None:
    hub.add_commit(
        "acme/tree",
        {
            "a.txt": b"a",
            "weights/w.bin": b"w" * 10,
            "weights/deep/x.json": b"{}",
            "big.txt": b"z" * (10 << 20),
        },
    )
    api = _api(hub)
    top = {e.path: e for e in api.list_repo_tree("acme/tree")}
    assert set(top) == {"a.txt", "big.txt", "weights"}
    assert type(top["weights"]).__name__ == "RepoFolder"
    big = top["big.txt"]
    assert getattr(big, "lfs", None) is not None, "files of 10 MiB and more are LFS whatever their name"
    everything = {e.path for e in api.list_repo_tree("acme/tree", recursive=True)}
    assert everything == {
        "a.txt",
        "big.txt",
        "weights",
        "weights/w.bin",
        "weights/deep",
        "weights/deep/x.json",
    }
    sub = {e.path for e in api.list_repo_tree("acme/tree", path_in_repo="weights")}
    assert sub == {"weights/w.bin", "weights/deep"}
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("acme/tree", path_in_repo="nope"))
    expanded = list(api.list_repo_tree("acme/tree", recursive=True, expand=True))
    assert all(e.last_commit is not None for e in expanded)
    paths = api.get_paths_info("acme/tree", ["a.txt", "weights", "missing"])
    assert [p.path for p in paths] == ["a.txt", "weights"]


def test_revisions_branches_tags_and_shas(hub: HubServer, cache: Path) -> None:
    c1 = hub.add_commit("acme/rev", {"w.txt": b"one", "old.txt": b"gone later"}, tags=["v1.0"])
    c2 = hub.add_commit("acme/rev", {"w.txt": b"two"}, delete=["old.txt"], message="second")
    c3 = hub.add_commit("acme/rev", {"dev.txt": b"dev"}, branch="dev", base="v1.0")
    assert len({c1, c2, c3}) == 3
    same = hub.add_commit("acme/rev", {}, branch="other", base=c2)
    assert same not in (c1, c2), "a commit with the same files still gets its own sha"
    api = _api(hub)

    assert api.repo_info("acme/rev").sha == c2
    assert api.repo_info("acme/rev", revision="v1.0").sha == c1
    assert api.repo_info("acme/rev", revision=c1).sha == c1
    assert api.repo_info("acme/rev", revision="refs/heads/dev").sha == c3
    dev_files = {s.rfilename for s in api.repo_info("acme/rev", revision="dev").siblings or []}
    assert dev_files == {"w.txt", "old.txt", "dev.txt"}
    main_files = {s.rfilename for s in api.repo_info("acme/rev").siblings or []}
    assert main_files == {"w.txt"}
    with pytest.raises(RevisionNotFoundError):
        api.repo_info("acme/rev", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.repo_info("acme/rev", revision=c1[:7])  # the Hub takes full shas only

    def get(name: str, rev: str) -> bytes:
        return Path(
            hf_hub_download("acme/rev", name, revision=rev, endpoint=hub.url, cache_dir=cache)
        ).read_bytes()

    assert get("w.txt", "main") == b"two"
    assert get("w.txt", c1) == b"one", "an old commit stays downloadable"
    assert get("old.txt", "v1.0") == b"gone later"
    with pytest.raises(EntryNotFoundError):
        get("old.txt", "main")
    with pytest.raises(RevisionNotFoundError):
        get("w.txt", "no-such-branch")
    assert (cache / "models--acme--rev" / ".no_exist" / c2 / "old.txt").exists(), "404 carried X-Repo-Commit"

    refs = api.list_repo_refs("acme/rev")
    assert {(b.name, b.ref, b.target_commit) for b in refs.branches} == {
        ("main", "refs/heads/main", c2),
        ("dev", "refs/heads/dev", c3),
        ("other", "refs/heads/other", same),
    }
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", c1)] and refs.converts == []
    assert api.list_repo_refs("acme/rev", include_pull_requests=True).pull_requests == []
    history = api.list_repo_commits("acme/rev")
    assert [c.commit_id for c in history] == [c2, c1] and history[0].title == "second"


# -- downloads and the cache ---------------------------------------------------------------------


def test_hf_hub_download_cache_layout(hub: HubServer, cache: Path) -> None:
    sha = _tiny_model(hub)
    st_path = Path(hf_hub_download("acme/tiny", "model.safetensors", endpoint=hub.url, cache_dir=cache))
    cfg_path = Path(hf_hub_download("acme/tiny", "config.json", endpoint=hub.url, cache_dir=cache))
    repo_dir = cache / "models--acme--tiny"

    assert st_path == repo_dir / "snapshots" / sha / "model.safetensors" and st_path.is_symlink()
    lfs_blob = repo_dir / "blobs" / hashlib.sha256(MODEL_ST).hexdigest()
    assert st_path.resolve() == lfs_blob.resolve() and lfs_blob.read_bytes() == MODEL_ST
    git_blob = repo_dir / "blobs" / git_blob_sha1(CONFIG)  # non-LFS files are keyed by their git sha1
    assert cfg_path.resolve() == git_blob.resolve() and git_blob.read_bytes() == CONFIG
    assert (repo_dir / "refs" / "main").read_text() == sha

    assert hub.downloads("acme/tiny", "model.safetensors") == 1
    hf_hub_download("acme/tiny", "model.safetensors", endpoint=hub.url, cache_dir=cache)
    assert hub.downloads("acme/tiny", "model.safetensors") == 1, "a cached file is not fetched again"
    heads = [r for r in hub.file_requests("acme/tiny", "model.safetensors") if r.method == "HEAD"]
    assert len(heads) == 2 and all(r.status == 200 for r in heads)


def test_snapshot_download_allow_patterns(hub: HubServer, cache: Path) -> None:
    sha = _tiny_model(hub)
    hub.add_commit("acme/tiny", {"tokenizer.json": b"{}", "sub/extra.json": b"[]"})
    folder = Path(
        snapshot_download("acme/tiny", endpoint=hub.url, cache_dir=cache, allow_patterns=["*.json", "*.md"])
    )
    got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert got == ["README.md", "config.json", "sub/extra.json", "tokenizer.json"]
    assert folder.name != sha, "the snapshot is of the new head commit"
    assert hub.file_requests("acme/tiny", "model.safetensors") == [], "filtered-out files are never touched"
    assert hub.downloads("acme/tiny") == 4
    assert hub.bytes_served("acme/tiny") == len(CARD) + len(CONFIG) + 2 + 2


def test_dataset_repo(hub: HubServer, cache: Path) -> None:
    rows = b"PAR1" + b"\x01" * 100
    sha = hub.add_commit(
        "acme/data",
        {"README.md": b"---\nlicense: cc-by-4.0\n---\n", "data/train.parquet": rows},
        repo_type="dataset",
    )
    api = _api(hub)
    info = api.dataset_info("acme/data", files_metadata=True)
    assert info.sha == sha and info.tags == ["license:cc-by-4.0"]
    lfs = {s.rfilename: s.lfs for s in info.siblings or []}["data/train.parquet"]
    assert lfs is not None and lfs.sha256 == hashlib.sha256(rows).hexdigest()
    path = hf_hub_download(
        "acme/data", "data/train.parquet", repo_type="dataset", endpoint=hub.url, cache_dir=cache
    )
    assert Path(path).read_bytes() == rows
    assert Path(path).is_relative_to(cache / "datasets--acme--data")
    folder = snapshot_download("acme/data", repo_type="dataset", endpoint=hub.url, cache_dir=cache)
    assert (Path(folder) / "README.md").exists()
    assert hub.downloads("acme/data", "data/train.parquet", repo_type="dataset") == 1
    assert all(
        r.path.startswith("/datasets/acme/data/resolve/")
        for r in hub.file_requests("acme/data", repo_type="dataset")
    )
    assert [b.name for b in api.list_repo_refs("acme/data", repo_type="dataset").branches] == ["main"]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/data")  # same id, other repo type
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/data", "README.md", endpoint=hub.url, cache_dir=cache, token=False)


def test_safetensors_metadata_single_and_sharded(hub: HubServer) -> None:
    _tiny_model(hub)
    meta = _api(hub).get_safetensors_metadata("acme/tiny")
    assert not meta.sharded and meta.parameter_count == {"F32": 32, "F16": 3}
    assert meta.files_metadata["model.safetensors"].tensors["embed.weight"].shape == [8, 4]

    shard1 = safetensors_bytes({"a": ("BF16", [5, 5])})
    shard2 = safetensors_bytes({"b": ("BF16", [7]), "c": ("I8", [2, 2])})
    index = {
        "metadata": {},
        "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors", "c": "m-2.safetensors"},
    }
    hub.add_commit(
        "acme/sharded",
        {
            "model.safetensors.index.json": json.dumps(index).encode(),
            "m-1.safetensors": shard1,
            "m-2.safetensors": shard2,
        },
    )
    sharded = _api(hub).get_safetensors_metadata("acme/sharded")
    assert sharded.sharded and sharded.parameter_count == {"BF16": 32, "I8": 4}
    info = _api(hub).model_info("acme/sharded")
    assert info.safetensors is not None and info.safetensors.total == 36
    # the client read headers with ranged GETs, never whole shards beyond what it asked for
    assert all(
        r.range is not None for r in hub.file_requests("acme/sharded", "m-1.safetensors") if r.method == "GET"
    )


# -- access control ------------------------------------------------------------------------------


def test_private_repo(hub: HubServer, cache: Path) -> None:
    _tiny_model(hub, "acme/secret", private=True)
    hub.add_token("tok-other", user="mallory")
    hub.grant("tok-ok", "acme/secret")

    with pytest.raises(RepositoryNotFoundError) as anon:
        _api(hub).model_info("acme/secret")
    assert anon.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as other:
        _api(hub, "tok-other").model_info("acme/secret")
    assert other.value.response.status_code == 404, "authenticated callers get 404, like the Hub"
    for call in (
        lambda: list(_api(hub).list_repo_tree("acme/secret")),
        lambda: _api(hub).list_repo_refs("acme/secret"),
        lambda: hf_hub_download("acme/secret", "README.md", endpoint=hub.url, cache_dir=cache, token=False),
    ):
        with pytest.raises(RepositoryNotFoundError):
            call()

    info = _api(hub, "tok-ok").model_info("acme/secret", files_metadata=True)
    assert info.private is True
    path = hf_hub_download(
        "acme/secret", "model.safetensors", endpoint=hub.url, cache_dir=cache, token="tok-ok"
    )
    assert Path(path).read_bytes() == MODEL_ST
    assert {r.token for r in hub.file_requests("acme/secret", "model.safetensors")} == {"tok-ok"}


def test_gated_repo(hub: HubServer, cache: Path) -> None:
    _tiny_model(hub, "acme/gated", gated=True)
    hub.add_token("tok-other")
    hub.grant("tok-ok", "acme/gated")

    info = _api(hub).model_info("acme/gated", files_metadata=True)  # metadata is public
    assert info.gated == "auto" and info.siblings is not None and len(info.siblings) == 3
    assert {e.path for e in _api(hub).list_repo_tree("acme/gated")} == {
        "README.md",
        "config.json",
        "model.safetensors",
    }

    with pytest.raises(GatedRepoError) as anon:
        hf_hub_download("acme/gated", "config.json", endpoint=hub.url, cache_dir=cache, token=False)
    assert anon.value.response.status_code == 401
    assert "You must have access to it and be authenticated" in anon.value.response.headers["X-Error-Message"]
    with pytest.raises(GatedRepoError) as other:
        hf_hub_download("acme/gated", "config.json", endpoint=hub.url, cache_dir=cache, token="tok-other")
    assert other.value.response.status_code == 403
    with pytest.raises(GatedRepoError):
        _api(hub).get_safetensors_metadata("acme/gated")

    readme = hf_hub_download("acme/gated", "README.md", endpoint=hub.url, cache_dir=cache, token=False)
    assert Path(readme).read_bytes() == CARD, "the card of a gated repo is readable by anyone"
    path = hf_hub_download("acme/gated", "config.json", endpoint=hub.url, cache_dir=cache, token="tok-ok")
    assert Path(path).read_bytes() == CONFIG


def test_tokens_and_whoami(hub: HubServer) -> None:
    _tiny_model(hub)
    hub.add_token("tok-alice", user="alice")
    me = _api(hub).whoami(token="tok-alice")
    assert me["name"] == "alice" and me["type"] == "user"
    assert me["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(OSError) as bad_whoami:  # HfHubHTTPError on 1.x+, requests' HTTPError on 0.x
        _api(hub).whoami(token="tok-unknown")
    assert bad_whoami.value.response.status_code == 401

    with pytest.raises(HfHubHTTPError) as bad:
        _api(hub, "tok-unknown").model_info("acme/tiny")
    assert bad.value.response.status_code == 401
    assert not isinstance(bad.value, RepositoryNotFoundError), "a bad token is not a missing repo"
    assert "X-Error-Code" not in bad.value.response.headers

    with pytest.raises(RepositoryNotFoundError) as missing_anon:
        _api(hub).model_info("acme/missing")
    assert missing_anon.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as missing_auth:
        _api(hub, "tok-alice").model_info("acme/missing")
    assert missing_auth.value.response.status_code == 404
    assert _api(hub, "tok-alice").model_info("acme/tiny").id == "acme/tiny", (
        "any valid token reads public repos"
    )
    assert hub.valid_tokens == {"tok-alice"}


# -- raw HTTP: headers, ranges, faults -----------------------------------------------------------


def test_resolve_headers_and_ranges(hub: HubServer) -> None:
    sha = _tiny_model(hub)
    url = f"{hub.url}/acme/tiny/resolve/main/model.safetensors"
    digest = hashlib.sha256(MODEL_ST).hexdigest()
    size = len(MODEL_ST)

    head = requests.head(url, timeout=10, allow_redirects=False)
    assert head.status_code == 200 and head.headers["X-Repo-Commit"] == sha
    assert head.headers["ETag"] == f'"{digest}"' and head.headers["X-Linked-Etag"] == f'"{digest}"'
    assert head.headers["X-Linked-Size"] == str(size) and head.headers["Content-Length"] == str(size)
    assert head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Content-Type"] == "application/octet-stream"
    cfg = requests.head(f"{hub.url}/acme/tiny/resolve/{sha}/config.json", timeout=10)
    assert cfg.headers["ETag"] == f'"{git_blob_sha1(CONFIG)}"' and "X-Linked-Etag" not in cfg.headers

    def get(rng: str) -> requests.Response:
        return requests.get(url, headers={"Range": rng}, timeout=10)

    r = get("bytes=2-9")
    assert r.status_code == 206 and r.content == MODEL_ST[2:10]
    assert r.headers["Content-Range"] == f"bytes 2-9/{size}"
    r = get("bytes=0-100000")  # what get_safetensors_metadata asks for: the end is clamped
    assert r.status_code == 206 and r.content == MODEL_ST
    assert r.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    r = get("bytes=10-")
    assert r.status_code == 206 and r.content == MODEL_ST[10:]
    r = get("bytes=-5")
    assert r.status_code == 206 and r.content == MODEL_ST[-5:]
    r = get(f"bytes={size}-")
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == MODEL_ST and "Content-Range" not in r.headers

    missing = requests.get(f"{hub.url}/acme/tiny/resolve/main/nope.bin", timeout=10)
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    badrev = requests.get(f"{hub.url}/acme/tiny/resolve/nope/config.json", timeout=10)
    assert badrev.status_code == 404 and badrev.headers["X-Error-Code"] == "RevisionNotFound"
    ranged = [r for r in hub.file_requests("acme/tiny", "model.safetensors") if r.range]
    assert [r.range for r in ranged][:2] == ["bytes=2-9", "bytes=0-100000"]


def _raw_get(base_url: str, path: str) -> tuple[int, bytes, bool]:
    """GET with http.client: (status, body bytes received, whether the body came short)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        try:
            return resp.status, resp.read(), False
        except http.client.IncompleteRead as e:
            return resp.status, e.partial, True
    finally:
        conn.close()


def test_cut_truncates_the_body(hub: HubServer) -> None:
    payload = bytes(range(256)) * 40
    hub.add_commit("acme/cut", {"w.bin": payload, "other.bin": payload})
    path = "/acme/cut/resolve/main/w.bin"

    hub.cut("acme/cut", "w.bin", after_bytes=1000)
    status, body, short = _raw_get(hub.url, path)
    assert status == 200 and short and body == payload[:1000]
    assert _raw_get(hub.url, path) == (200, payload, False), "times=1: the next GET is whole again"
    assert _raw_get(hub.url, "/acme/cut/resolve/main/other.bin")[2] is False

    hub.cut("acme/cut", "w.bin", after_bytes=10, times=-1)
    for _ in range(3):
        assert _raw_get(hub.url, path)[1:] == (payload[:10], True)
    hub.uncut()
    assert _raw_get(hub.url, path)[1:] == (payload, False)

    sent = [r.body_bytes_sent for r in hub.file_requests("acme/cut", "w.bin")]
    assert sent == [1000, len(payload), 10, 10, 10, len(payload)]
    assert hub.downloads("acme/cut", "w.bin") == 6
    assert hub.bytes_served("acme/cut", "w.bin") == 1030 + 2 * len(payload)


def test_hf_hub_download_resumes_after_a_cut(hub: HubServer, cache: Path) -> None:
    # The client reads bodies in 10 MiB chunks and only resumes from whole chunks it got: a cut
    # before 10 MiB makes it start over without Range, one after makes it resume with Range.
    # huggingface_hub 0.x (on requests) fails that call instead, keeps the .incomplete file, and
    # the next call resumes from it.
    data = os.urandom(12 << 20)
    hub.add_commit("acme/resume", {"w.bin": data})
    hub.cut("acme/resume", "w.bin", after_bytes=11 << 20)
    if int(huggingface_hub.__version__.split(".")[0]) < 1:
        with pytest.raises(OSError):
            hf_hub_download("acme/resume", "w.bin", endpoint=hub.url, cache_dir=cache)
    path = hf_hub_download("acme/resume", "w.bin", endpoint=hub.url, cache_dir=cache)
    assert Path(path).read_bytes() == data
    gets = [r for r in hub.file_requests("acme/resume", "w.bin") if r.method == "GET"]
    assert [(r.range, r.status, r.body_bytes_sent) for r in gets] == [
        (None, 200, 11 << 20),
        (f"bytes={10 << 20}-", 206, 2 << 20),
    ]
    assert hub.bytes_served("acme/resume", "w.bin") == 13 << 20


def test_client_leaving_mid_body_is_harmless(hub: HubServer) -> None:
    hub.add_commit("acme/leave", {"w.bin": os.urandom(8 << 20)})
    parts = urlsplit(hub.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request("GET", "/acme/leave/resolve/main/w.bin")
    resp = conn.getresponse()
    assert len(resp.read(1000)) == 1000
    resp.close()  # hangs up with most of the 8 MiB unread
    conn.close()
    deadline = time.monotonic() + 5
    while not hub.file_requests("acme/leave", "w.bin") and time.monotonic() < deadline:
        time.sleep(0.05)
    [logged] = hub.file_requests("acme/leave", "w.bin")
    assert logged.status == 200 and 1000 <= logged.body_bytes_sent < 8 << 20
    assert _raw_get(hub.url, "/acme/leave/resolve/main/w.bin")[0] == 200, "the server still answers"


def test_request_log(hub: HubServer, cache: Path) -> None:
    _tiny_model(hub)
    hub.grant("tok", "acme/tiny")
    hf_hub_download("acme/tiny", "config.json", endpoint=hub.url, cache_dir=cache, token="tok")
    log = hub.requests
    assert [(r.method, r.status) for r in log] == [("HEAD", 200), ("GET", 200)]
    assert all(isinstance(r, LoggedRequest) and r.token == "tok" for r in log)
    assert log[1].path == "/acme/tiny/resolve/main/config.json" and log[1].body_bytes_sent == len(CONFIG)
    assert hub.downloads("acme/tiny") == 1 and hub.downloads("acme/tiny", "model.safetensors") == 0
    _api(hub).model_info("acme/tiny", files_metadata=True)
    assert hub.requests[-1].kind == "info" and hub.requests[-1].query.lower() == "blobs=true"
    assert len(hub.file_requests("acme/tiny")) == 2, "API calls are not file requests"
    hub.clear_log()
    assert hub.requests == [] and hub.bytes_served("acme/tiny") == 0


# -- the client configured by environment, and offline -----------------------------------------

_CHILD = """
import json, sys
from huggingface_hub import hf_hub_download, snapshot_download
folder = snapshot_download("acme/env")
single = hf_hub_download("acme/env", "model.safetensors")
print(json.dumps([folder, single]))
"""


def _child(hub: HubServer, tmp_path: Path, offline: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hf-home" / "hub"),
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    p = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert isinstance(result, list)
    return [str(x) for x in result]


def test_hf_endpoint_env_then_offline_from_warm_cache(hub: HubServer, tmp_path: Path) -> None:
    sha = _tiny_model(hub, "acme/env")
    online = _child(hub, tmp_path, offline=False)
    assert online[0].endswith(f"models--acme--env/snapshots/{sha}")
    assert hub.downloads("acme/env") == 3, "HF_ENDPOINT sent the child to this server"

    hub.clear_log()
    offline = _child(hub, tmp_path, offline=True)
    assert offline == online
    assert hub.requests == [], "HF_HUB_OFFLINE=1 served everything from the cache"


# -- big files stream from disk ------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_big_path_file_is_streamed_not_loaded(hub: HubServer, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    piece = os.urandom(1 << 20)
    expected = hashlib.sha256()
    with open(big, "wb") as f:
        for i in range(64):
            chunk = piece[i:] + piece[:i]
            f.write(chunk)
            expected.update(chunk)
    del piece, chunk

    peak = base = _rss_kib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_kib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        hub.add_commit("acme/big", {"model.bin": big})
        info = hub.file_info("acme/big", "model.bin")
        assert info.size == 64 << 20 and info.sha256 == expected.hexdigest() and info.lfs
        parts = urlsplit(hub.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        conn.request("GET", "/acme/big/resolve/main/model.bin")
        resp = conn.getresponse()
        got = hashlib.sha256()
        received = 0
        while block := resp.read(256 * 1024):
            got.update(block)
            received += len(block)
        conn.close()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, _rss_kib())

    assert received == 64 << 20 and got.hexdigest() == expected.hexdigest()
    assert hub.bytes_served("acme/big", "model.bin") == 64 << 20
    growth_mib = (peak - base) / 1024
    assert growth_mib < 20, f"RSS grew by {growth_mib:.1f} MiB serving a 64 MiB file"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
