"""The local importer: listing, junk, globs, links, Hugging Face cache snapshots, and packable contexts."""

from __future__ import annotations

import errno
import hashlib
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kitbridge.converters.importers.local import LocalImporter, PathGlob, materialize, packable_in_place
from kitbridge.errors import NotFoundError, PackError, UsageError
from kitbridge.kitfile.generate import generate_kitfile, write_kitfile
from kitbridge.oci.store import Store
from kitbridge.pack import pack


def make(root: Path, spec: dict[str, bytes | str]) -> Path:
    for rel, content in spec.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def paths(root: Path | str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    return [f.path for f in LocalImporter().resolve(str(root), include=include, exclude=exclude).files]


# --- plain folders --------------------------------------------------------------------------------------


def test_lists_a_folder_per_directory_sorted_depth_first_with_sizes(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"b.txt": "bb", "a/z.bin": "z", "a.txt": "a", "A.md": "AAA", "sub/d/x": ""})
    tree = LocalImporter().resolve(str(root))
    assert [f.path for f in tree.files] == ["A.md", "a/z.bin", "a.txt", "b.txt", "sub/d/x"]
    assert [f.size for f in tree.files] == [3, 1, 1, 2, 0]
    assert all(f.abspath == root / f.path for f in tree.files)
    assert all(f.sha256 is None for f in tree.files)  # computed at pack time, not here
    assert tree.root == root.resolve()
    assert tree.skipped == ()
    assert tree.provenance.source_uri == root.resolve().as_uri()
    assert tree.provenance.importer == "file"
    assert tree.provenance.revision is None


def test_vcs_and_os_junk_and_hf_download_metadata_are_skipped(tmp_path: Path) -> None:
    root = make(
        tmp_path / "m",
        {
            "model.gguf": "g",
            ".git/HEAD": "ref",
            ".hg/store/x": "x",
            ".svn/entries": "e",
            ".DS_Store": "d",
            "sub/Thumbs.db": "t",
            "sub/keep.json": "{}",
            "Desktop.ini": "i",
            "__MACOSX/._model.gguf": "m",
            ".ipynb_checkpoints/nb-checkpoint.ipynb": "{}",
            "code/__pycache__/m.cpython-311.pyc": "c",
            "code/m.py": "",
            ".cache/huggingface/download/model.gguf.metadata": "meta",
            ".cache/huggingface/.gitignore": "*",
            ".cache/other.bin": "kept",
            ".gitattributes": "*.gguf filter=lfs",
        },
    )
    tree = LocalImporter().resolve(str(root))
    assert [f.path for f in tree.files] == [
        ".cache/other.bin",
        ".gitattributes",
        "code/m.py",
        "model.gguf",
        "sub/keep.json",
    ]
    assert set(tree.skipped) == {
        ".DS_Store",
        ".cache/huggingface",
        ".git",
        ".hg",
        ".ipynb_checkpoints",
        ".svn",
        "Desktop.ini",
        "__MACOSX",
        "code/__pycache__",
        "sub/Thumbs.db",
    }
    assert not packable_in_place(tree)


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.json"], [], ["config.json", "onnx/config.json"]),
        (["config.json"], [], ["config.json"]),
        (["**/config.json"], [], ["config.json", "onnx/config.json"]),
        (["onnx/"], [], ["onnx/config.json", "onnx/model.onnx"]),
        (["onnx"], [], ["onnx/config.json", "onnx/model.onnx"]),
        (["*.safetensors", "*.json"], ["onnx"], ["config.json", "model-00001-of-00002.safetensors"]),
        ([], ["*.onnx", "README*"], ["config.json", "model-00001-of-00002.safetensors", "onnx/config.json"]),
        (["model-0000[1-2]-of-*"], [], ["model-00001-of-00002.safetensors"]),
        (["model-0000[!1]-of-*"], [], []),
        (["./README.md"], [], ["README.md"]),
    ],
)
def test_include_and_exclude_globs_match_relative_paths(
    tmp_path: Path, include: list[str], exclude: list[str], expected: list[str]
) -> None:
    root = make(
        tmp_path / "m",
        {
            "README.md": "r",
            "config.json": "{}",
            "model-00001-of-00002.safetensors": "w",
            "onnx/config.json": "{}",
            "onnx/model.onnx": "o",
        },
    )
    assert paths(root, include=include, exclude=exclude) == expected


def test_globs_star_crosses_slashes_like_fnmatch_and_double_star_slash_matches_zero_dirs() -> None:
    assert PathGlob.compile("*.json").matches("a/b/c.json")
    assert PathGlob.compile("**/c.json").matches("c.json")
    assert PathGlob.compile("a/**/c.json").matches("a/c.json")
    assert PathGlob.compile("a/**/c.json").matches("a/x/y/c.json")
    assert not PathGlob.compile("b/*.json").matches("a/b/c.json")
    assert PathGlob.compile("a/b/").matches("a/b/c/d.bin")
    with pytest.raises(UsageError):
        PathGlob.compile("  ")


def test_an_excluded_directory_is_pruned_and_recorded_once(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"keep.gguf": "k", "big/a.bin": "a", "big/deep/b.bin": "b"})
    tree = LocalImporter().resolve(str(root), exclude=["big"])
    assert [f.path for f in tree.files] == ["keep.gguf"]
    assert tree.skipped == ("big",)


def test_a_single_file_is_a_tree_of_that_file_in_its_folder(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"model.gguf": "gguf", "other.txt": "x"})
    tree = LocalImporter().resolve(str(root / "model.gguf"))
    assert tree.root == root.resolve()
    assert [f.path for f in tree.files] == ["model.gguf"]
    assert tree.skipped == ("other.txt",)


def test_file_uris_are_local_paths(tmp_path: Path) -> None:
    root = make(tmp_path / "with space", {"model.gguf": "g"})
    assert paths(root.resolve().as_uri()) == ["model.gguf"]
    assert paths("file://localhost" + str(root.resolve())) == ["model.gguf"]
    with pytest.raises(UsageError, match="names host"):
        LocalImporter().resolve("file://otherhost/srv/m")


def test_a_missing_source_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file or directory"):
        LocalImporter().resolve(str(tmp_path / "nope"))


def test_revision_is_refused_for_a_plain_folder(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"model.gguf": "g"})
    with pytest.raises(UsageError, match="--revision 'main' does not apply"):
        LocalImporter().resolve(str(root), revision="main")


# --- links ----------------------------------------------------------------------------------------------


def test_links_inside_the_folder_are_followed(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"real/w.gguf": "weights", "real/sub/c.json": "{}"})
    (root / "alias.gguf").symlink_to("real/w.gguf")
    (root / "linkdir").symlink_to("real/sub", target_is_directory=True)
    tree = LocalImporter().resolve(str(root))
    got = {f.path: f for f in tree.files}
    assert list(got) == ["alias.gguf", "linkdir/c.json", "real/sub/c.json", "real/w.gguf"]
    assert got["alias.gguf"].abspath == (root / "real/w.gguf").resolve()
    assert got["alias.gguf"].size == len("weights")
    assert packable_in_place(tree)


def test_a_link_escaping_the_folder_is_an_error_naming_the_link(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"model.gguf": "g"})
    make(tmp_path, {"secret.txt": "s"})
    (root / "sub").mkdir()
    (root / "sub" / "leak.txt").symlink_to("../../secret.txt")
    with pytest.raises(PackError) as info:
        LocalImporter().resolve(str(root))
    assert "'sub/leak.txt'" in info.value.message
    assert "outside" in info.value.message
    # Excluding the link is the way out.
    assert paths(root, exclude=["sub/leak.txt"]) == ["model.gguf"]


def test_a_dangling_link_is_an_error_unless_it_is_filtered_out(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"model.gguf": "g"})
    (root / "gone.bin").symlink_to("nowhere.bin")
    with pytest.raises(
        PackError, match=r"symlink 'gone\.bin' points to 'nowhere\.bin', which does not exist"
    ):
        LocalImporter().resolve(str(root))
    assert paths(root, include=["*.gguf"]) == ["model.gguf"]
    assert paths(root, exclude=["gone.bin"]) == ["model.gguf"]


def test_a_directory_link_loop_is_an_error(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"a/x.bin": "x"})
    (root / "a" / "again").symlink_to("..", target_is_directory=True)
    with pytest.raises(PackError, match="a loop"):
        LocalImporter().resolve(str(root))


# --- Hugging Face cache ---------------------------------------------------------------------------------


@dataclass
class HFCache:
    repo: Path
    commit: str
    old_commit: str
    blobs: dict[str, str]
    """snapshot path -> blob name"""

    @property
    def snapshot(self) -> Path:
        return self.repo / "snapshots" / self.commit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hf_cache(tmp_path: Path) -> HFCache:
    """A cache repo laid out the way huggingface_hub's file_download writes it.

    LFS files are stored as ``blobs/<sha256>``, regular git files as ``blobs/<git blob id>``;
    ``refs/<branch>`` holds the commit; ``snapshots/<commit>/<path>`` is a relative symlink to
    ``../../blobs/<etag>`` (one more ``../`` per directory level of the path).
    """
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    files: dict[str, tuple[bytes, bool]] = {
        "config.json": (b'{"architectures": ["BertModel"]}', False),
        "model.safetensors": (b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(64)), True),
        "onnx/model.onnx": (b"onnx-bytes" * 10, True),
        "tokenizer.json": (b'{"version": "1.0"}', False),
        "README.md": (b"---\nlicense: apache-2.0\n---\n# tiny\n", False),
    }
    commit, old_commit = "a" * 40, "b" * 40
    blobs: dict[str, str] = {}
    (repo / "blobs").mkdir(parents=True)
    for rel, (data, lfs) in files.items():
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
        (repo / "blobs" / etag).write_bytes(data)
        blobs[rel] = etag
        for snap_commit in (commit, old_commit):
            if snap_commit == old_commit and rel.startswith("onnx/"):
                continue  # the old revision had no ONNX export
            link = repo / "snapshots" / snap_commit / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("../" * (rel.count("/") + 2) + "blobs/" + etag)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "refs" / "v1").write_text(old_commit)
    (repo / ".no_exist" / commit).mkdir(parents=True)
    (repo / ".no_exist" / commit / "adapter_config.json").write_bytes(b"")
    return HFCache(repo, commit, old_commit, blobs)


def test_a_snapshot_follows_links_into_its_cache_repo_and_records_lfs_digests(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    tree = LocalImporter().resolve(str(cache.snapshot))
    got = {f.path: f for f in tree.files}
    assert list(got) == ["README.md", "config.json", "model.safetensors", "onnx/model.onnx", "tokenizer.json"]
    for rel, f in got.items():
        assert f.abspath == (cache.repo / "blobs" / cache.blobs[rel]).resolve()
        assert f.size == f.abspath.stat().st_size
    # LFS blobs are named by their sha256; regular git files by a git blob id, which is no sha256.
    assert got["model.safetensors"].sha256 == cache.blobs["model.safetensors"]
    assert (
        got["model.safetensors"].sha256
        == hashlib.sha256(got["model.safetensors"].abspath.read_bytes()).hexdigest()
    )
    assert got["onnx/model.onnx"].sha256 == cache.blobs["onnx/model.onnx"]
    assert got["config.json"].sha256 is None
    assert tree.provenance.revision == cache.commit
    assert tree.provenance.extra["hf.repo_id"] == "acme/tiny-bert"
    assert tree.provenance.extra["hf.repo_type"] == "model"
    assert not packable_in_place(tree)  # every link leaves the snapshot directory


def test_a_cache_repo_directory_means_its_snapshot_for_a_revision(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    main = LocalImporter().resolve(str(cache.repo))
    assert main.root == cache.snapshot.resolve()
    assert main.provenance.revision == cache.commit
    old = LocalImporter().resolve(str(cache.repo), revision="v1")
    assert old.provenance.revision == cache.old_commit
    assert "onnx/model.onnx" not in [f.path for f in old.files]
    by_sha = LocalImporter().resolve(str(cache.repo), revision=cache.old_commit)
    assert by_sha.root == old.root
    with pytest.raises(NotFoundError, match=r"revision 'v9'.*acme/tiny-bert") as info:
        LocalImporter().resolve(str(cache.repo), revision="v9")
    assert info.value.hint is not None
    assert "main, v1" in info.value.hint


def test_a_snapshot_accepts_its_own_revision_only(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    assert LocalImporter().resolve(str(cache.snapshot), revision="main").provenance.revision == cache.commit
    assert LocalImporter().resolve(str(cache.snapshot), revision=cache.commit).files
    with pytest.raises(UsageError):
        LocalImporter().resolve(str(cache.snapshot), revision="v1")


def test_a_subfolder_of_a_snapshot_still_follows_links_into_blobs(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    tree = LocalImporter().resolve(str(cache.snapshot / "onnx"))
    assert [(f.path, f.sha256) for f in tree.files] == [("model.onnx", cache.blobs["onnx/model.onnx"])]


def test_a_snapshot_link_leaving_the_cache_repo_is_still_an_error(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    make(tmp_path, {"elsewhere/secret": "s"})
    (cache.snapshot / "evil.bin").symlink_to("../../../../elsewhere/secret")
    with pytest.raises(PackError, match=r"symlink 'evil\.bin' points to .*outside"):
        LocalImporter().resolve(str(cache.snapshot))


# --- materialize: a context pack can read ----------------------------------------------------------------


def test_a_plain_folder_is_packed_in_place(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"model.gguf": "g", "README.md": "r"})
    tree = LocalImporter().resolve(str(root))
    with materialize(tree) as ctx:
        assert ctx.path == tree.root
        assert not ctx.owned
    assert (root / "model.gguf").exists()  # cleanup never touches the source


def test_a_snapshot_is_materialized_as_hard_links_and_packs(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    tree = LocalImporter().resolve(str(cache.snapshot))
    store = Store(tmp_path / "store")
    with materialize(tree) as ctx:
        assert ctx.owned
        assert ctx.linked == len(tree.files)
        assert ctx.copied == 0
        for f in tree.files:
            placed = ctx.path / f.path
            assert not placed.is_symlink()
            assert placed.stat().st_ino == f.abspath.stat().st_ino  # a hard link: no copy
        kf = generate_kitfile(tree, name="tiny-bert")
        assert kf.model is not None
        assert kf.model.path == "model.safetensors"
        write_kitfile(ctx.path, kf)
        result = pack(ctx.path, "localhost/tiny-bert:1", layer_format="raw", store=store)
        made = ctx.path
    assert not made.exists()
    assert not (cache.repo / "snapshots" / cache.commit / "Kitfile").exists()
    by_path = {d.annotations["org.cncf.model.filepath"]: d.digest for d in result.layers if d.annotations}
    # The raw layer of an LFS file is the cache blob itself: its digest is the blob's name.
    assert by_path["model.safetensors"] == "sha256:" + cache.blobs["model.safetensors"]
    assert by_path["onnx/model.onnx"] == "sha256:" + cache.blobs["onnx/model.onnx"]


def test_a_materialized_snapshot_packs_as_tar_with_the_snapshot_names(tmp_path: Path) -> None:
    cache = hf_cache(tmp_path)
    tree = LocalImporter().resolve(str(cache.snapshot), include=["*.onnx", "*.json"])
    store = Store(tmp_path / "store")
    with materialize(tree) as ctx:
        assert sorted(p.relative_to(ctx.path).as_posix() for p in ctx.path.rglob("*") if p.is_file()) == [
            "config.json",
            "onnx/model.onnx",
            "tokenizer.json",
        ]
        write_kitfile(ctx.path, generate_kitfile(tree, name="tiny"))
        result = pack(ctx.path, "localhost/tiny:tar", store=store)
    model_layer = result.layers[0]
    with tarfile.open(fileobj=store.open_blob(model_layer.digest)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"onnx", "onnx/model.onnx"}
        f = tar.extractfile(members["onnx/model.onnx"])
        assert f is not None
        assert f.read() == (cache.repo / "blobs" / cache.blobs["onnx/model.onnx"]).read_bytes()


def test_materialize_into_a_given_directory_carries_only_the_tree(tmp_path: Path) -> None:
    root = make(tmp_path / "m", {"Kitfile": "manifestVersion: 1.0.0\n", "a.gguf": "a", "skip.txt": "s"})
    os.chmod(root, 0o750)
    tree = LocalImporter().resolve(str(root), exclude=["skip.txt"])
    dest = tmp_path / "ctx"
    ctx = materialize(tree, dest)
    assert ctx.path == dest
    assert not ctx.owned
    assert sorted(p.name for p in dest.iterdir()) == ["a.gguf"]  # the old Kitfile is the caller's to write
    ctx.cleanup()
    assert dest.exists()  # not ours to remove
    with pytest.raises(UsageError, match="not empty"):
        materialize(tree, dest)


def test_materialize_copies_when_hard_links_are_impossible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path / "m", {"sub/a.gguf": "aaaa", "b.json": "{}", "junk/.DS_Store": ""})
    os.chmod(root / "sub" / "a.gguf", 0o600)
    os.chmod(root / "sub", 0o700)
    tree = LocalImporter().resolve(str(root))

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    messages: list[str] = []
    with materialize(tree, warn=messages.append) as ctx:
        assert ctx.copied == 2
        assert (ctx.path / "sub" / "a.gguf").read_text() == "aaaa"
        assert (ctx.path / "sub" / "a.gguf").stat().st_mode & 0o777 == 0o600
        assert (ctx.path / "sub").stat().st_mode & 0o777 == 0o700  # the source's bits, not the umask's
        assert not (ctx.path / "junk").exists()
    assert len(messages) == 1
    assert "another filesystem" in messages[0]
