"""The CLI end to end, as a user drives it: pack, list, inspect, info, unpack, tag, remove."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CLI, FIXTURES, write_tree

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def store_snapshot(store: Path) -> dict[str, bytes]:
    """Every file under the store (index.json and blobs), to prove a failed command changed nothing."""
    return files_of(store) if store.exists() else {}


def own_context(root: Path) -> Path:
    """A small context with explicit modes, so its layer bytes are the same on every machine."""
    write_tree(
        root,
        {
            "Kitfile": (
                "manifestVersion: 1.0.0\n"
                "package:\n  name: own-golden\n  authors: [Ada <ada@example.com>]\n"
                "model:\n  name: m\n  path: weights\n  parameters:\n    lr: 1e-4\n    layers: 0x10\n"
                "code:\n  - path: .\n"
                "docs:\n  - path: README.md\n    description: card\n"
            ),
            "weights/w.bin": b"\x00\x01\x02" * 400,
            "weights/sub/config.json": '{"a": 1}\n',
            "README.md": "# own golden\n",
            "train.py": "print('train')\n",
        },
    )
    os.chmod(root / "train.py", 0o755)
    return root


# Digests of own_context() packed with SOURCE_DATE_EPOCH=1700000000. They were produced by kitbridge
# after its layers and configs matched kit's golden vectors byte for byte; any change to tar headers,
# walk order, JSON encoding or manifest layout changes them.
OWN_MANIFEST = "sha256:e45acf2e5047ccbf40f57ddc6816147fb09dd3ea4c334f629bb8c4cd07735623"
OWN_LAYERS = [
    "sha256:1c950521a20101e7367951c691f7d971cda75dc1f7b2d9dfcaf292df2a44c249",
    "sha256:8cff16284af8b793a07b4b807257bb5762a00d9d84a5d9ddc061eedf2c66acfe",
    "sha256:3ee1b47f826f7a8c8f88ff0f018f6dec1c2557498d86e197e3397aa8df7fe0bb",
]
OWN_CONFIG = "sha256:cb6f08e53806aa2e85aed2b7f18c74dd97c7c5038ced42fc2dde71846721a1db"


def test_pack_writes_known_digests_for_own_golden_context(cli: CLI, tmp_path: Path) -> None:
    ctx = own_context(tmp_path / "ctx")
    cli.ok("pack", str(ctx), "-t", "golden/own:1", env=EPOCH)
    doc = json.loads(cli.ok("inspect", "golden/own:1", "--json").stdout)
    assert [layer["digest"] for layer in doc["manifest"]["layers"]] == OWN_LAYERS
    assert doc["manifest"]["config"]["digest"] == OWN_CONFIG
    assert doc["digest"] == OWN_MANIFEST
    # Independent readers agree with the bytes: GNU tar lists kit's header fields, and the config is
    # Go JSON (escaped <>, 1e-4 printed as 0.0001, 0x10 as 16, struct order, digests last).
    listing = subprocess.run(
        ["tar", "--numeric-owner", "-tvf", str(cli.store / "blobs/sha256" / OWN_LAYERS[0].split(":")[1])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert [line.split()[:3] + line.split()[5:] for line in listing if line] == [
        ["drwxr-xr-x", "1000/0", "0", "weights"],
        ["drwxr-xr-x", "1000/0", "0", "weights/sub"],
        ["-rw-r--r--", "1000/0", "9", "weights/sub/config.json"],
        ["-rw-r--r--", "1000/0", "1200", "weights/w.bin"],
    ]
    config = (cli.store / "blobs/sha256" / OWN_CONFIG.split(":")[1]).read_text()
    layer = [f'"digest":"{d}","diffId":"{d}"' for d in OWN_LAYERS]
    assert config == (
        '{"manifestVersion":"1.0.0",'
        '"package":{"name":"own-golden","authors":["Ada \\u003cada@example.com\\u003e"]},'
        f'"model":{{"name":"m","path":"weights","parameters":{{"layers":16,"lr":0.0001}},{layer[0]}}},'
        f'"code":[{{"path":".",{layer[1]}}}],"docs":[{{"path":"README.md","description":"card",{layer[2]}}}]}}'
    )


def test_manifest_is_reproducible_across_homes_with_source_date_epoch(tmp_path: Path) -> None:
    ctx = own_context(tmp_path / "ctx")
    digests = []
    for name in ("a", "b"):
        c = CLI(tmp_path / name)
        out = json.loads(c.ok("pack", str(ctx), "-t", "repro/x:1", "--json", env=EPOCH).stdout)
        digests.append(out["digest"])
    assert digests[0] == digests[1]
    manifest = json.loads(CLI(tmp_path / "a").ok("inspect", "repro/x:1", "--json").stdout)["manifest"]
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_fixture_round_trips_through_pack_and_unpack(cli: CLI, tmp_path: Path) -> None:
    r = cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny-model:1")
    assert "localhost/tiny-model:1" in r.stdout
    out = tmp_path / "out"
    cli.ok("unpack", "tiny-model:1", "-d", str(out))
    want = files_of(FIXTURES / "tiny-model")
    got = files_of(out)
    assert want.keys() == got.keys()
    assert all(got[k] == want[k] for k in want if k != "Kitfile")
    # the unpacked Kitfile is kit-style YAML describing the same ModelKit
    assert cli.ok("validate", str(out)).returncode == 0
    assert "name: tiny-model" in got["Kitfile"].decode()


def test_list_shows_table_and_json(cli: CLI) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "myorg/tiny:v1")
    table = cli.ok("list").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "NAME", "SIZE", "DIGEST"]
    assert table[1].split()[:3] == ["myorg/tiny", "v1", "tiny-model"]
    rows = json.loads(cli.ok("--json", "list").stdout)
    assert rows[0]["reference"] == "localhost/myorg/tiny:v1"
    assert rows[0]["digest"].startswith("sha256:")
    assert rows[0]["size"] > 1000


def test_info_prints_kitfile_yaml_and_inspect_prints_manifest(cli: CLI) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    info = cli.ok("info", "tiny:1").stdout
    assert info.startswith("manifestVersion: 1.0.0\n")
    assert "authors: [kitbridge developers]" in info
    doc = json.loads(cli.ok("inspect", "tiny:1").stdout)
    assert doc["manifest"]["artifactType"] == "application/vnd.kitops.modelkit.manifest.v1+json"
    paths = [layer["annotations"]["org.cncf.model.filepath"] for layer in doc["manifest"]["layers"]]
    assert paths == ["model.safetensors", "config.json", "tokenizer", "src", "README.md", "LICENSE"]


def test_tag_and_remove_delete_only_unshared_blobs(cli: CLI) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "a:1")
    cli.ok("tag", "a:1", "b:2")
    refs = [r["reference"] for r in json.loads(cli.ok("list", "--json").stdout)]
    assert refs == ["localhost/a:1", "localhost/b:2"]
    blobs = set(os.listdir(cli.store / "blobs" / "sha256"))
    removed = json.loads(cli.ok("remove", "a:1", "--json").stdout)
    assert removed["deletedBlobs"] == []  # b:2 still needs every blob
    assert set(os.listdir(cli.store / "blobs" / "sha256")) == blobs
    removed = json.loads(cli.ok("remove", "b:2", "--json").stdout)
    assert len(removed["deletedBlobs"]) == len(blobs)
    assert os.listdir(cli.store / "blobs" / "sha256") == []


def test_unpack_filters_select_entries(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    out = tmp_path / "model-only"
    cli.ok("unpack", "tiny:1", "-d", str(out), "--filter", "model")
    assert sorted(files_of(out)) == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    out = tmp_path / "by-name"
    cli.ok("unpack", "tiny:1", "-d", str(out), "--filter", "docs:LICENSE", "--filter", "kitfile")
    assert sorted(files_of(out)) == ["Kitfile", "LICENSE"]
    r = cli("unpack", "tiny:1", "-d", str(tmp_path / "bad"), "--filter", "weights")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid filter 'weights'")
    assert not (tmp_path / "bad").exists()


def test_unpack_refuses_existing_files_and_writes_nothing(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    out = tmp_path / "out"
    write_tree(out, {"src/infer.py": "mine\n"})
    r = cli("unpack", "tiny:1", "-d", str(out))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "already exists" in r.stderr and "--overwrite" in r.stderr
    assert files_of(out) == {"src/infer.py": b"mine\n"}
    cli.ok("unpack", "tiny:1", "-d", str(out), "--ignore-existing")
    assert files_of(out)["src/infer.py"] == b"mine\n"
    assert "model.safetensors" in files_of(out)
    cli.ok("unpack", "tiny:1", "-d", str(out), "--overwrite")
    assert files_of(out)["src/infer.py"] == (FIXTURES / "tiny-model/src/infer.py").read_bytes()


def test_unpack_restores_file_modes(cli: CLI, tmp_path: Path) -> None:
    ctx = own_context(tmp_path / "ctx")
    cli.ok("pack", str(ctx), "-t", "modes:1")
    out = tmp_path / "out"
    cli.ok("unpack", "modes:1", "-d", str(out))
    assert (out / "train.py").stat().st_mode & 0o777 == 0o755
    assert (out / "README.md").stat().st_mode & 0o777 == 0o644


def test_raw_layers_hold_the_files_themselves(cli: CLI, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    shutil.copytree(FIXTURES / "tiny-model", ctx)
    # raw layers need one file per entry: point the tokenizer part at the file
    kitfile = (ctx / "Kitfile").read_text().replace("path: tokenizer\n", "path: tokenizer/tokenizer.json\n")
    kitfile = kitfile.replace("  - path: src\n", "  - path: src/infer.py\n")
    (ctx / "Kitfile").write_text(kitfile)
    cli.ok("pack", str(ctx), "-t", "raw:1", "--layer-format", "raw")
    manifest = json.loads(cli.ok("inspect", "raw:1").stdout)["manifest"]
    import hashlib

    for layer in manifest["layers"]:
        assert layer["mediaType"].endswith(".v1.raw")
        src = ctx / layer["annotations"]["org.cncf.model.filepath"]
        assert layer["digest"] == "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
    blob = cli.store / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    # Same filesystem: the store links the file instead of copying it. Where the file system can
    # reflink (copy-on-write), the store prefers that: a separate inode sharing the same extents.
    assert os.path.samefile(blob, ctx / "model.safetensors") or _can_reflink(tmp_path)
    out = tmp_path / "out"
    cli.ok("unpack", "raw:1", "-d", str(out))
    assert (out / "model.safetensors").read_bytes() == (ctx / "model.safetensors").read_bytes()


def _can_reflink(directory: Path) -> bool:
    import fcntl

    a, b = directory / "reflink-probe-a", directory / "reflink-probe-b"
    a.write_bytes(b"x" * 4096)
    with open(a, "rb") as src, open(b, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), 0x40049409, src.fileno())  # FICLONE
        except OSError:
            return False
    return True


def test_raw_layer_of_a_directory_is_a_clear_error(cli: CLI) -> None:
    r = cli("pack", str(FIXTURES / "tiny-model"), "-t", "raw:1", "--layer-format", "raw")
    assert r.returncode == 1
    assert (
        r.stderr.startswith("error: ")
        and "single regular file" in r.stderr
        and "--layer-format tar" in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_compressed_layers_unpack_to_the_same_files(cli: CLI, tmp_path: Path) -> None:
    for comp in ("gzip", "zstd"):
        cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", f"c:{comp}", "--compression", comp)
        manifest = json.loads(cli.ok("inspect", f"c:{comp}").stdout)["manifest"]
        assert all(layer["mediaType"].endswith(f".tar+{comp}") for layer in manifest["layers"])
        out = tmp_path / comp
        cli.ok("unpack", f"c:{comp}", "-d", str(out))
        assert files_of(out)["model.safetensors"] == (FIXTURES / "tiny-model/model.safetensors").read_bytes()


def test_invalid_kitfile_is_one_line_error_and_store_untouched(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "keep:1")
    before = store_snapshot(cli.store)
    ctx = write_tree(tmp_path / "bad", {"Kitfile": "manifestVersion: 1.0.0\nmodel:\n  pth: x\n", "x": "x"})
    r = cli("pack", str(ctx), "-t", "bad:1")
    assert r.returncode == 1
    assert r.stderr == r.stderr.splitlines()[0] + "\n"
    assert "line 3" in r.stderr and "'pth'" in r.stderr
    assert store_snapshot(cli.store) == before


def test_pack_failing_halfway_leaves_store_as_it_was(cli: CLI, tmp_path: Path) -> None:
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "keep:1")
    before = store_snapshot(cli.store)
    ctx = tmp_path / "ctx"
    shutil.copytree(FIXTURES / "tiny-model", ctx)
    (tmp_path / "outside.txt").write_text("secret\n")
    # the docs layers come last: model, parts and code are written before the escaping link is met
    (ctx / "LICENSE").unlink()
    (ctx / "LICENSE").symlink_to(tmp_path / "outside.txt")
    (ctx / "model.safetensors").write_bytes(b"new weights" * 1000)
    r = cli("pack", str(ctx), "-t", "broken:1")
    assert r.returncode == 1 and "LICENSE" in r.stderr and "outside" in r.stderr
    assert store_snapshot(cli.store) == before
    assert not any((cli.home / "store.tmp").glob("*")) if (cli.home / "store.tmp").exists() else True


def test_two_pack_processes_at_once_both_land(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "KITBRIDGE_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kitbridge", "pack", str(FIXTURES / "tiny-model"), "-t", f"race/m:{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    index = json.loads((home / "store" / "index.json").read_text())
    names = sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"])
    assert names == [f"localhost/race/m:{i}" for i in range(4)]


def test_usage_errors_exit_2(cli: CLI) -> None:
    r = cli("pack", str(FIXTURES / "tiny-model"))  # no -t
    assert r.returncode == 2
    r = cli("unpack", "x:1", "-d", "/tmp/x", "--overwrite", "--ignore-existing")
    assert r.returncode == 2 and "exclude each other" in r.stderr


def test_unknown_reference_is_a_clear_error(cli: CLI) -> None:
    r = cli("info", "nothing/here:1")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "nothing/here:1" in r.stderr


def test_validate_reports_kit_rule_violations(cli: CLI, tmp_path: Path) -> None:
    ctx = write_tree(
        tmp_path / "v",
        {"Kitfile": "manifestVersion: 1.0.0\nmodel:\n  path: data/\ndatasets:\n  - path: ./data\n"},
    )
    r = cli("validate", str(ctx))
    assert r.returncode == 1 and "use the same path data" in r.stderr
    assert cli.ok("validate", str(FIXTURES / "tiny-model" / "Kitfile")).returncode == 0


def test_symlinks_inside_context_are_packed_as_their_targets(cli: CLI, tmp_path: Path) -> None:
    # The shape of a Hugging Face cache repo: snapshot files are links into blobs/.
    ctx = write_tree(
        tmp_path / "hf-repo",
        {
            "Kitfile": "manifestVersion: 1.0.0\nmodel:\n  path: snapshots/abc\n",
            "blobs/1111": b"weights" * 100,
            "blobs/2222": '{"model_type": "bert"}\n',
        },
    )
    snap = ctx / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/1111")
    (snap / "config.json").symlink_to("../../blobs/2222")
    cli.ok("pack", str(ctx), "-t", "hf:1")
    out = tmp_path / "out"
    cli.ok("unpack", "hf:1", "-d", str(out), "--filter", "model")
    assert (out / "snapshots/abc/model.safetensors").read_bytes() == b"weights" * 100
    assert not (out / "snapshots/abc/model.safetensors").is_symlink()
    assert (out / "snapshots/abc/config.json").read_text() == '{"model_type": "bert"}\n'


def test_unpack_refuses_a_malicious_modelkit_and_writes_nothing(cli: CLI, tmp_path: Path) -> None:
    import io
    import tarfile

    from kitbridge.formats import kitops
    from kitbridge.formats import mediatypes as mt
    from kitbridge.kitfile import load_kitfile
    from kitbridge.oci.descriptor import Descriptor
    from kitbridge.oci.store import Store

    # A ModelKit whose model layer holds a good file and then an entry that climbs out of the target.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("model/ok.bin", b"fine"), ("model/../../escaped.txt", b"gotcha")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    store = Store(cli.store)
    layer_digest, layer_size = store.put_bytes(buf.getvalue())
    kf = load_kitfile("manifestVersion: 1.0.0\nmodel:\n  path: model\n").with_layer_info(
        [(layer_digest, layer_digest)]
    )
    config_digest, config_size = store.put_bytes(kitops.config_bytes(kf))
    layer = Descriptor(
        kitops.layer_media_type("model", "tar", "none"), layer_digest, layer_size, {mt.ANN_FILEPATH: "model"}
    )
    manifest = kitops.manifest_bytes(Descriptor(mt.KITOPS_CONFIG, config_digest, config_size), [layer], {})
    manifest_digest, manifest_size = store.put_bytes(manifest)
    store.set_ref("localhost/evil:1", Descriptor(mt.OCI_MANIFEST, manifest_digest, manifest_size))

    out = tmp_path / "target" / "out"
    r = cli("unpack", "evil:1", "-d", str(out))
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "escaped.txt" in r.stderr
    assert not (tmp_path / "target" / "escaped.txt").exists()
    assert not out.exists() or not any(out.rglob("*"))


def test_list_skips_artifacts_other_tools_put_in_the_store(cli: CLI, tmp_path: Path) -> None:
    from conftest import require_tool

    skopeo = require_tool("skopeo")
    cli.ok("pack", str(FIXTURES / "tiny-model"), "-t", "tiny:1")
    # skopeo writes its own name (not a reference kit accepts) for a copy of the same artifact
    subprocess.run(
        [skopeo, "copy", f"oci:{cli.store}:localhost/tiny:1", f"oci:{cli.store}:Not-A-Ref"],
        check=True,
        capture_output=True,
    )
    rows = json.loads(cli.ok("list", "--json").stdout)
    assert [r["reference"] for r in rows] == ["localhost/tiny:1"]
