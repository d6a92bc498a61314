"""``kitbridge batch`` end to end: the real CLI against one real registry, the Hub test server and MLflow.

A "world" is built per test: small Hub repos (tests/hub_server.py), two registered MLflow models (the
session's ``mlflow server``), KitOps and ModelPack ModelKits packed and pushed to a real docker-registry,
and a job file of 21 jobs over all of them: Hub and MLflow imports, conversions both ways, copies and two
``from-repository`` expansions of a 3-tag repository. What the registry then holds is read back with
``kitbridge inspect --remote`` and with plain HTTP requests (the registry API, independent of kitbridge).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CLI, CLIResult, write_tree
from hub_server import HubServer
from mlflow_models import LoggedModel, log_sklearn
from mlflow_server import MLflowServer
from registry_server import Registry

pytestmark = pytest.mark.slow

README = b"---\nlicense: apache-2.0\npipeline_tag: feature-extraction\n---\n# A batch test model\n"
HF_REPOS = ("acme/alpha", "acme/beta", "acme/gamma", "acme/delta", "acme/epsilon")
ML_NAMES = ("kb-batch-iris-a", "kb-batch-iris-b")
SERIES_TAGS = ("v1", "v2", "v3")
STATUS_LINE = re.compile(
    r"^(done|skipped|failed|planned|up-to-date)\s+(import|convert|copy)\s+(\S+) -> (\S+)"
)
OCI_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


# --- sources ----------------------------------------------------------------------------------------------


def safetensors_bytes(n_floats: int, seed: int) -> bytes:
    """A valid safetensors file: one F32 tensor ``w`` of n_floats values (deterministic noise)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(raw)) + raw + random.Random(seed).randbytes(4 * n_floats)


def hub_files(seed: int) -> dict[str, bytes]:
    config = {"model_type": "bert", "hidden_size": 8, "architectures": ["BertModel"], "seed": seed}
    return {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": safetensors_bytes(2048 + seed, seed),
        "README.md": README,
    }


def kit_tree(root: Path, name: str, seed: int) -> Path:
    """A small model folder with a Kitfile: one safetensors weight file (distinct bytes per seed) and docs."""
    kitfile = (
        "manifestVersion: 1.0.0\n"
        f"package:\n  name: {name}\n  version: 1.0.{seed}\n  license: Apache-2.0\n"
        f"model:\n  name: {name}\n  path: model.safetensors\n  format: safetensors\n"
        "docs:\n  - path: README.md\n"
    )
    return write_tree(
        root,
        {
            "Kitfile": kitfile,
            "model.safetensors": safetensors_bytes(1024 + seed, 1000 + seed),
            "README.md": f"# {name} ({seed})\n",
        },
    )


@pytest.fixture(scope="module")
def ml_models(mlflow_server: MLflowServer) -> dict[str, LoggedModel]:
    """Two registered sklearn models (version 1 each) on the session's MLflow server."""
    return {
        name: log_sklearn(mlflow_server.url, name=f"{name}-model", register_as=name, run_name=f"train-{name}")
        for name in ML_NAMES
    }


@pytest.fixture
def bcli(hf_cli: CLI, mlflow_server: MLflowServer) -> CLI:
    """The CLI pointed at the Hub test server; no MLFLOW_* variable of the host (jobs name the server)."""
    for k in [k for k in hf_cli.env if k.startswith("MLFLOW_")]:
        del hf_cli.env[k]
    hf_cli.env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return hf_cli


@dataclass
class World:
    """The sources of a test, the job file over them, and what each job should produce."""

    registry: Registry
    jobfile: Path
    commits: dict[str, str]  # Hub repo -> commit sha
    targets: dict[tuple[str, str], str]  # (kind, source) -> expected target reference
    ml_url: str

    @property
    def host(self) -> str:
        return self.registry.host


def build_world(
    cli: CLI,
    registry: Registry,
    hub: HubServer,
    ml: dict[str, LoggedModel],
    ml_url: str,
    tmp_path: Path,
) -> World:
    """Hub repos, pushed ModelKits and a job file of 21 jobs (19 entries, 2 of them from-repository)."""
    host = registry.host
    commits = {repo: hub.add_commit(repo, hub_files(i)) for i, repo in enumerate(HF_REPOS)}
    work = tmp_path / "sources"
    packs: list[tuple[str, str, str]] = [  # (folder name, reference, format)
        ("kit-a", f"{host}/src/kit-a:1", "kitops"),
        ("kit-b", f"{host}/src/kit-b:1", "kitops"),
        ("kit-c", f"{host}/src/kit-c:1", "kitops"),
        ("mp-a", f"{host}/src/mp-a:1", "modelpack"),
        ("mp-b", f"{host}/src/mp-b:1", "modelpack"),
        *((f"series-{t}", f"{host}/src/series:{t}", "kitops") for t in SERIES_TAGS),
    ]
    for seed, (name, ref, fmt) in enumerate(packs):
        folder = kit_tree(work / name, name.split("-v")[0], seed)
        cli.ok("pack", str(folder), "-t", ref, "--format", fmt, "--push", "--plain-http", "-q")
    sha = {repo: commits[repo][:12] for repo in HF_REPOS}
    a, b = ML_NAMES
    va, vb = ml[a].version, ml[b].version
    jobs = [
        # Hub imports: "/" targets get the tag template; one with an explicit tag; different formats.
        ("import", "hf://acme/alpha", f"{host}/mirror/", {}, f"{host}/mirror/alpha:{sha['acme/alpha']}"),
        (
            "import",
            "hf://acme/beta@main",
            f"{host}/mirror-mp/",
            {"format": "modelpack"},
            f"{host}/mirror-mp/beta:{sha['acme/beta']}",
        ),
        ("import", "hf://acme/gamma", f"{host}/mirror/gamma:pinned", {}, f"{host}/mirror/gamma:pinned"),
        (
            "import",
            "hf://acme/delta",
            f"{host}/mirror/",
            {"layer-format": "raw"},
            f"{host}/mirror/delta:{sha['acme/delta']}",
        ),
        (
            "import",
            "hf://acme/epsilon",
            f"{host}/mirror/epsilon",
            {"exclude": ["README.md"]},
            f"{host}/mirror/epsilon:{sha['acme/epsilon']}",
        ),
        # MLflow imports (registered versions).
        ("import", f"models:/{a}/{va}", f"{host}/ml/", {"tracking-uri": ml_url}, f"{host}/ml/{a}:{a}-{va}"),
        (
            "import",
            f"models:/{b}/{vb}",
            f"{host}/ml/{b}",
            {"tracking-uri": ml_url, "format": "modelpack"},
            f"{host}/ml/{b}:{b}-{vb}",
        ),
        # Conversions, both ways.
        *(
            (
                "convert",
                f"{host}/src/{n}:1",
                f"{host}/conv/{n}:mp",
                {"to": "modelpack"},
                f"{host}/conv/{n}:mp",
            )
            for n in ("kit-a", "kit-b", "kit-c")
        ),
        *(
            ("convert", f"{host}/src/{n}:1", f"{host}/conv/{n}:kit", {"to": "kitops"}, f"{host}/conv/{n}:kit")
            for n in ("mp-a", "mp-b")
        ),
        # Copies (KitOps and ModelPack).
        *(
            ("copy", f"{host}/src/{n}:1", f"{host}/backup/{n}:1", {}, f"{host}/backup/{n}:1")
            for n in ("kit-a", "kit-b", "mp-a")
        ),
    ]
    entries: list[dict[str, Any]] = []
    targets: dict[tuple[str, str], str] = {}
    for kind, source, target, extra, want in jobs:
        entries.append({kind: source, "target": target, **extra})
        targets[(kind, source)] = want
    entries.append(
        {"from-repository": f"{host}/src/series", "convert-to": "modelpack", "target": f"{host}/series-mp"}
    )
    entries.append({"from-repository": f"{host}/src/series", "target": f"{host}/series-copy"})
    for t in SERIES_TAGS:
        targets[("convert", f"{host}/src/series:{t}")] = f"{host}/series-mp:{t}"
        targets[("copy", f"{host}/src/series:{t}")] = f"{host}/series-copy:{t}"
    doc = {"defaults": {"plain-http": True, "tag": "{name}:{revision}"}, "jobs": entries}
    jobfile = tmp_path / "batch.yaml"
    jobfile.write_text(yaml.safe_dump(doc, sort_keys=False))
    return World(registry, jobfile, commits, targets, ml_url)


# --- reading results --------------------------------------------------------------------------------------


def report_rows(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict) and isinstance(doc["jobs"], list)
    return doc["jobs"]


def by_job(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {(r["kind"], r["source"]): r for r in rows}
    assert len(out) == len(rows), "two rows for one (kind, source)"
    return out


def markdown_rows(path: Path) -> list[list[str]]:
    """The table rows of the Markdown report (cells, header and rule left out)."""
    rows = []
    for line in path.read_text().splitlines():
        if re.match(r"^\| \d+ \|", line):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def status_lines(stderr: str) -> list[tuple[str, str, str, str]]:
    """(status, kind, source, target) of each per-job line on stderr."""
    out = []
    for line in stderr.splitlines():
        m = STATUS_LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return out


def registry_get(reg: Registry, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"{reg.url}{path}", method=method, headers={"Accept": OCI_ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""


def check_in_registry(reg: Registry, ref: str) -> str:
    """The manifest digest at ``ref``, after checking (plain HTTP) that its config and layers are there."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    status, headers, body = registry_get(reg, f"/v2/{repo}/manifests/{tag}")
    assert status == 200, f"{ref}: manifest GET answered {status}"
    manifest = json.loads(body)
    for blob in [manifest["config"], *manifest["layers"]]:
        s, h, _ = registry_get(reg, f"/v2/{repo}/blobs/{blob['digest']}", method="HEAD")
        assert s == 200, f"{ref}: blob {blob['digest']} missing ({s})"
        assert int(h["Content-Length"]) == blob["size"], f"{ref}: blob {blob['digest']} has the wrong size"
    digest = headers["Docker-Content-Digest"]
    assert isinstance(digest, str)
    return digest


def manifest_revisions(reg: Registry, repo: str) -> set[str]:
    """Every manifest the registry stores for ``repo`` (its storage, read directly: tagged or not)."""
    base = reg.data_dir / "docker/registry/v2/repositories" / repo / "_manifests/revisions/sha256"
    return {"sha256:" + p.name for p in base.iterdir()} if base.is_dir() else set()


def batch(cli: CLI, world: World, *args: str) -> CLIResult:
    return cli("batch", str(world.jobfile), *args)


def dry_run(cli: CLI, world: World, *args: str) -> list[dict[str, Any]]:
    r = cli("batch", str(world.jobfile), "--dry-run", "--json", *args)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc["jobs"], list)
    return doc["jobs"]


# --- 1. a mixed batch: everything done, reported, and in the registry -------------------------------------


def test_mixed_batch_runs_every_job_and_reports(
    bcli: CLI,
    registry: Registry,
    hub: HubServer,
    ml_models: dict[str, LoggedModel],
    mlflow_server: MLflowServer,
    tmp_path: Path,
) -> None:
    world = build_world(bcli, registry, hub, ml_models, mlflow_server.url, tmp_path)
    assert len(world.targets) == 21
    report = tmp_path / "r.json"
    r = batch(bcli, world, "--jobs", "4", "--report", str(report))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr

    rows = report_rows(report)
    assert len(rows) == 21
    jobs = by_job(rows)
    assert set(jobs) == set(world.targets)
    for key, row in jobs.items():
        assert row["status"] == "done", (key, row)
        assert row["error"] is None, row
        assert row["target"] == world.targets[key], row
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", row["digest"]), row
        assert isinstance(row["bytesMoved"], int) and row["bytesMoved"] >= 0, row
        assert isinstance(row["seconds"], (int, float)) and row["seconds"] >= 0, row
    # Every job that writes a new artifact moved bytes (imports push layers; conversions a config+manifest).
    assert all(row["bytesMoved"] > 0 for (kind, _), row in jobs.items() if kind in ("import", "convert"))
    doc = json.loads(report.read_text())
    assert doc["ok"] is True and doc["counts"] == {"done": 21} and doc["shard"] is None

    # Hub imports record the commit they resolved; MLflow imports the NAME/VERSION.
    for repo, sha in world.commits.items():
        source = next(s for (k, s) in jobs if k == "import" and s.startswith(f"hf://{repo}"))
        assert jobs[("import", source)]["revision"] == sha
    for name in ML_NAMES:
        version = ml_models[name].version
        assert jobs[("import", f"models:/{name}/{version}")]["revision"] == f"{name}/{version}"
    # A conversion and a copy name the source manifest's digest as their revision.
    src_digest = check_in_registry(registry, f"{registry.host}/src/kit-a:1")
    assert jobs[("convert", f"{registry.host}/src/kit-a:1")]["revision"] == src_digest
    assert jobs[("copy", f"{registry.host}/src/kit-a:1")]["revision"] == src_digest
    assert jobs[("copy", f"{registry.host}/src/kit-a:1")]["digest"] == src_digest

    # The Markdown report: one row per job, in the JSON's order, with the same facts.
    md = markdown_rows(report.with_suffix(".md"))
    assert len(md) == 21
    for cells, row in zip(md, rows, strict=True):
        _num, kind, source, revision, target, digest, moved, seconds, status, error = cells
        assert (kind, source, target, status) == (row["kind"], row["source"], row["target"], "done")
        assert revision == (row["revision"] or "")
        assert row["digest"].startswith(digest) and len(digest) == 19
        assert int(moved) == row["bytesMoved"] and float(seconds) == pytest.approx(row["seconds"])
        assert error == ""
    assert "21 done" in report.with_suffix(".md").read_text()

    # One stderr line per finished job.
    lines = status_lines(r.stderr)
    assert Counter((k, s) for _, k, s, _ in lines) == Counter(list(world.targets))
    assert {st for st, *_ in lines} == {"done"}

    # Every target is in the registry with the reported digest (kitbridge inspect --remote, a fresh home).
    fresh = CLI(tmp_path / "fresh")
    for key, target in world.targets.items():
        got = json.loads(fresh.ok("inspect", target, "--remote", "--plain-http", "--json").stdout)
        assert got["digest"] == jobs[key]["digest"], key
        ann = got["manifest"].get("annotations") or {}
        kind, source = key
        if kind == "import":
            assert ann["dev.kitbridge.source"] == source
            assert ann["dev.kitbridge.source.revision"] == jobs[key]["revision"]
        elif kind == "convert":
            assert ann["dev.kitbridge.source.revision"] == jobs[key]["revision"]
            want = "application/vnd.cncf.model.manifest.v1+json"
            is_mp = got["manifest"].get("artifactType") == want
            assert is_mp == (":mp" in target or "series-mp" in target), target
    for target in world.targets.values():
        check_in_registry(registry, target)


# --- 2. killed midway, run again: what finished is skipped, the rest done, nothing broken ------------------


def _run_until_done(cli: CLI, world: World, wanted: int, report: Path) -> list[tuple[str, str]]:
    """Start the batch, SIGKILL it once ``wanted`` jobs said done; the (kind, source) of those jobs."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kitbridge",
            "batch",
            str(world.jobfile),
            "--jobs",
            "4",
            "--report",
            str(report),
        ],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    done: list[tuple[str, str]] = []
    seen: list[str] = []
    timer = threading.Timer(120, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            m = STATUS_LINE.match(line)
            if m and m.group(1) == "done":
                done.append((m.group(2), m.group(3)))
                if len(done) >= wanted:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
    finally:
        timer.cancel()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, (
        f"the batch ended by itself ({proc.returncode}): {''.join(seen)}"
    )
    assert len(done) >= wanted, "".join(seen)
    assert not report.exists(), "a killed batch wrote its report"
    return done


def test_killed_batch_resumes_where_it_stopped(
    bcli: CLI,
    registry: Registry,
    hub: HubServer,
    ml_models: dict[str, LoggedModel],
    mlflow_server: MLflowServer,
    tmp_path: Path,
) -> None:
    world = build_world(bcli, registry, hub, ml_models, mlflow_server.url, tmp_path)
    finished = _run_until_done(bcli, world, 3, tmp_path / "killed.json")

    second = tmp_path / "second.json"
    r = batch(bcli, world, "--jobs", "4", "--report", str(second))
    assert r.returncode == 0, r.stderr
    rows = by_job(report_rows(second))
    assert set(rows) == set(world.targets)
    statuses = Counter(row["status"] for row in rows.values())
    assert set(statuses) <= {"done", "skipped"}, statuses
    for key in finished:
        assert rows[key]["status"] == "skipped", (key, rows[key])
    # Killed after 3 of 21 with 4 at a time: most of the batch was still to do.
    assert statuses["done"] >= len(rows) // 2, statuses
    print(f"killed after {len(finished)} done; the rerun: {dict(statuses)}")
    for key, row in rows.items():
        assert row["target"] == world.targets[key] and row["digest"], row

    # A third run has nothing left to do and reports the same digests; the registry agrees.
    third = tmp_path / "third.json"
    r = batch(bcli, world, "--jobs", "4", "--report", str(third))
    assert r.returncode == 0, r.stderr
    rows3 = by_job(report_rows(third))
    assert {row["status"] for row in rows3.values()} == {"skipped"}
    for key, row in rows3.items():
        assert row["digest"] == rows[key]["digest"], key
        assert check_in_registry(registry, world.targets[key]) == row["digest"], key

    # One manifest per target tag: no repository holds manifests that no target tag names (a job redone
    # after the kill would have left the first, different manifest behind).
    by_repo: dict[str, set[str]] = {}
    for key, target in world.targets.items():
        repo = target.split("/", 1)[1].rsplit(":", 1)[0]
        by_repo.setdefault(repo, set()).add(rows3[key]["digest"])
    for repo, digests in by_repo.items():
        status, _, body = registry_get(registry, f"/v2/{repo}/tags/list")
        assert status == 200
        tags = set(json.loads(body)["tags"])
        want_tags = {
            t.rsplit(":", 1)[1] for t in world.targets.values() if t.split("/", 1)[1].startswith(repo + ":")
        }
        assert tags == want_tags, repo
        assert manifest_revisions(registry, repo) == digests, repo

    # A sample pulls and unpacks with a fresh home: a Hub import, an MLflow import, a conversion, a copy.
    fresh = CLI(tmp_path / "fresh")
    host = registry.host
    for i, key in enumerate(
        [
            ("import", "hf://acme/alpha"),
            ("import", f"models:/{ML_NAMES[0]}/{ml_models[ML_NAMES[0]].version}"),
            ("convert", f"{host}/src/kit-b:1"),
            ("convert", f"{host}/src/series:v2"),
            ("copy", f"{host}/src/mp-a:1"),
        ]
    ):
        target = world.targets[key]
        fresh.ok("pull", target, "--plain-http")
        out = tmp_path / f"unpacked-{i}"
        fresh.ok("unpack", target, "-d", str(out))
        assert any(p.is_file() and p.name != "Kitfile" for p in out.rglob("*")), key
    hub_model = tmp_path / "unpacked-0" / "model.safetensors"
    assert hub_model.read_bytes() == hub_files(0)["model.safetensors"]


# --- 3. a second run skips everything and downloads nothing ---------------------------------------------


def _mlflow_artifact_gets(server: MLflowServer, offset: int) -> list[str]:
    time.sleep(0.5)  # the access log line is written after the response
    with open(server.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return re.findall(r'"GET /api/2\.0/mlflow-artifacts/artifacts/([^ ?"]+) HTTP', text)


def test_second_run_skips_everything_and_downloads_nothing(
    bcli: CLI,
    registry: Registry,
    hub: HubServer,
    hf_home: Path,
    ml_models: dict[str, LoggedModel],
    mlflow_server: MLflowServer,
    tmp_path: Path,
) -> None:
    world = build_world(bcli, registry, hub, ml_models, mlflow_server.url, tmp_path)
    r = batch(bcli, world, "--jobs", "4", "--report", str(tmp_path / "first.json"))
    assert r.returncode == 0, r.stderr
    first = by_job(report_rows(tmp_path / "first.json"))
    assert {row["status"] for row in first.values()} == {"done"}
    assert all(hub.downloads(repo) > 0 for repo in HF_REPOS)

    # Nothing cached may stand in for the skip: the Hub cache and the local store are emptied.
    shutil.rmtree(hf_home, ignore_errors=True)
    shutil.rmtree(bcli.store, ignore_errors=True)
    hub.clear_log()
    ml_log = mlflow_server.log_path.stat().st_size
    blobs = registry.blob_digests()
    r = batch(bcli, world, "--jobs", "4", "--report", str(tmp_path / "second.json"))
    assert r.returncode == 0, r.stderr
    second = by_job(report_rows(tmp_path / "second.json"))
    for key, row in second.items():
        assert row["status"] == "skipped", (key, row)
        assert row["digest"] == first[key]["digest"] and row["target"] == first[key]["target"], key
        assert row["bytesMoved"] == 0, row
    assert {st for st, *_ in status_lines(r.stderr)} == {"skipped"}
    for repo in HF_REPOS:
        assert hub.downloads(repo) == 0, (repo, [x for x in hub.requests if x.repo_id == repo])
    assert _mlflow_artifact_gets(mlflow_server, ml_log) == []
    assert registry.blob_digests() == blobs

    # The dry run agrees: everything up to date.
    assert {row["status"] for row in dry_run(bcli, world)} == {"up-to-date"}

    # Sources move: a new Hub commit, a repacked ModelKit. Exactly the jobs that read them run again.
    host = registry.host
    new_sha = hub.add_commit("acme/alpha", {"extra.txt": b"new in this commit\n"})
    folder = kit_tree(tmp_path / "kit-a-2", "kit-a", 99)
    CLI(tmp_path / "packer").ok(
        "pack", str(folder), "-t", f"{host}/src/kit-a:1", "--push", "--plain-http", "-q"
    )
    r = batch(bcli, world, "--jobs", "4", "--report", str(tmp_path / "third.json"))
    assert r.returncode == 0, r.stderr
    third = by_job(report_rows(tmp_path / "third.json"))
    moved = {
        ("import", "hf://acme/alpha"),
        ("convert", f"{host}/src/kit-a:1"),
        ("copy", f"{host}/src/kit-a:1"),
    }
    for key, row in third.items():
        assert row["status"] == ("done" if key in moved else "skipped"), (key, row)
    assert third[("import", "hf://acme/alpha")]["target"] == f"{host}/mirror/alpha:{new_sha[:12]}"
    assert third[("import", "hf://acme/alpha")]["revision"] == new_sha
    new_src = check_in_registry(registry, f"{host}/src/kit-a:1")
    assert third[("convert", f"{host}/src/kit-a:1")]["revision"] == new_src
    assert third[("copy", f"{host}/src/kit-a:1")]["digest"] == new_src


# --- conversions with a layer format -----------------------------------------------------------------------


def _layer_types(cli: CLI, ref: str) -> list[str]:
    doc = json.loads(cli.ok("inspect", ref, "--remote", "--plain-http", "--json").stdout)
    return [layer["mediaType"] for layer in doc["manifest"]["layers"]]


def test_layer_format_of_a_convert_job_on_a_fresh_machine(
    cli: CLI, registry: Registry, tmp_path: Path
) -> None:
    """``layer-format`` (documented for imports and converts) must not need the source in the local store:
    a batch runs on a fresh machine or pod whose store is empty."""
    host = registry.host
    packer = CLI(tmp_path / "packer")  # the batch's own home never sees the source
    packer.ok(
        "pack", str(kit_tree(tmp_path / "kit", "kit", 5)), "-t", f"{host}/src/kit:1", "--push", "--plain-http"
    )
    jobfile = tmp_path / "lf.yaml"
    jobfile.write_text(
        yaml.safe_dump(
            {
                "defaults": {"plain-http": True, "layer-format": "raw"},
                "jobs": [
                    {"convert": f"{host}/src/kit:1", "to": "modelpack", "target": f"{host}/conv/kit:raw"}
                ],
            }
        )
    )
    r = cli("batch", str(jobfile), "--json")
    (row,) = json.loads(r.stdout)["jobs"]
    assert row["status"] == "done", row["error"]
    assert all(t.endswith(".raw") for t in _layer_types(cli, f"{host}/conv/kit:raw"))


def test_changing_the_layer_format_of_a_convert_job_redoes_it(
    cli: CLI, registry: Registry, tmp_path: Path
) -> None:
    """The options an artifact was made with are part of what a rerun compares: a conversion made with
    tar layers is not up to date for a job that now asks for raw ones."""
    host = registry.host
    src, dst = f"{host}/src/kit:1", f"{host}/conv/kit:mp"
    cli.ok("pack", str(kit_tree(tmp_path / "kit", "kit", 6)), "-t", src, "--push", "--plain-http", "-q")
    jobfile = tmp_path / "lf.yaml"

    def run(**extra: str) -> dict[str, Any]:
        job = {"convert": src, "to": "modelpack", "target": dst, **extra}
        jobfile.write_text(yaml.safe_dump({"defaults": {"plain-http": True}, "jobs": [job]}))
        (row,) = json.loads(cli("batch", str(jobfile), "--json").stdout)["jobs"]
        assert isinstance(row, dict)
        return row

    assert run()["status"] == "done"
    assert not any(t.endswith(".raw") for t in _layer_types(cli, dst))
    assert run()["status"] == "skipped"
    row = run(**{"layer-format": "raw"})
    assert row["status"] == "done", f"asked for raw layers, the tar conversion was kept: {row}"
    assert all(t.endswith(".raw") for t in _layer_types(cli, dst))


# --- 4. shards cover every job exactly once ----------------------------------------------------------------


def test_shards_cover_every_job_exactly_once(
    bcli: CLI,
    registry: Registry,
    hub: HubServer,
    ml_models: dict[str, LoggedModel],
    mlflow_server: MLflowServer,
    tmp_path: Path,
) -> None:
    world = build_world(bcli, registry, hub, ml_models, mlflow_server.url, tmp_path)

    def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(row["kind"], row["source"], row["target"]) for row in rows]

    everything = keys(dry_run(bcli, world))
    assert len(everything) == 21 and len(set(everything)) == 21
    assert {(k, s) for k, s, _ in everything} == set(world.targets)
    assert {t for _, _, t in everything} == set(world.targets.values())
    shards = []
    for i in range(4):
        r = bcli("batch", str(world.jobfile), "--dry-run", "--json", "--shard", f"{i}/4")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["shard"] == f"{i}/4"
        assert {row["status"] for row in doc["jobs"]} <= {"planned"}
        shards.append(keys(doc["jobs"]))
    union = [k for shard in shards for k in shard]
    assert Counter(union) == Counter(everything)  # each job in exactly one shard, none lost
    assert sum(1 for shard in shards if shard) >= 2  # a hash, not everything in one slice
    # The same shards again: the assignment is stable.
    again = bcli("batch", str(world.jobfile), "--dry-run", "--json", "--shard", "2/4")
    assert keys(json.loads(again.stdout)["jobs"]) == shards[2]


# --- 5. a bad job fails alone -----------------------------------------------------------------------------


def test_a_bad_source_fails_alone(
    bcli: CLI,
    registry: Registry,
    hub: HubServer,
    tmp_path: Path,
) -> None:
    host = registry.host
    hub.add_commit("acme/good", hub_files(7))
    folder = kit_tree(tmp_path / "kit", "kit", 3)
    bcli.ok("pack", str(folder), "-t", f"{host}/src/kit:1", "--push", "--plain-http", "-q")
    bad_hf, bad_tag = "hf://acme/does-not-exist", f"{host}/src/kit:missing"
    doc = {
        "defaults": {"plain-http": True},
        "jobs": [
            {"import": "hf://acme/good", "target": f"{host}/mirror/"},
            {"import": bad_hf, "target": f"{host}/mirror/"},
            {"convert": f"{host}/src/kit:1", "to": "modelpack", "target": f"{host}/conv/kit:mp"},
            {"convert": bad_tag, "to": "modelpack", "target": f"{host}/conv/kit:missing"},
            {"copy": f"{host}/src/kit:1", "target": f"{host}/backup/kit:1"},
            {"copy": f"{host}/nowhere/kit:1", "target": f"{host}/backup/nowhere:1"},
        ],
    }
    jobfile = tmp_path / "bad.yaml"
    jobfile.write_text(yaml.safe_dump(doc, sort_keys=False))
    report = tmp_path / "bad.json"
    r = bcli("batch", str(jobfile), "--jobs", "3", "--report", str(report))
    assert "Traceback" not in r.stderr
    rows = by_job(report_rows(report))
    bad = {("import", bad_hf), ("convert", bad_tag), ("copy", f"{host}/nowhere/kit:1")}
    for key, row in rows.items():
        if key in bad:
            assert row["status"] == "failed", row
            assert key[1].split("://")[-1] in row["error"], row
            assert "internal error" not in row["error"], row
            assert row["digest"] is None, row
        else:
            assert row["status"] == "done", row
            check_in_registry(registry, row["target"])
    assert json.loads(report.read_text())["ok"] is False
    failed_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("failed")]
    assert len(failed_lines) == 3 and any(bad_hf in ln for ln in failed_lines), r.stderr
    md = report.with_suffix(".md").read_text()
    assert md.count("| failed |") == 3 and "3 done, 3 failed" in md
    assert r.stdout.strip() == "6 jobs: 3 done, 3 failed"
    # Last, so that everything above is checked first: a batch with a failed job exits 1.
    assert r.returncode == 1, f"a batch with failed jobs exited {r.returncode}"


# --- 6. job file validation --------------------------------------------------------------------------------

INVALID = {
    "unknown-key": (
        "defaults:\n  plain-http: true\njobs:\n"
        "  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n    colour: blue\n",
        6,
        "unknown key 'colour'",
    ),
    "missing-target": (
        "jobs:\n  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n"
        "  - convert: r.example.com/a:1\n    to: modelpack\n",
        4,
        "has no target",
    ),
    "two-kinds": (
        "jobs:\n  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n"
        "  - import: hf://org/m\n    copy: r.example.com/a:1\n    target: r.example.com/c:1\n",
        4,
        "exactly one of",
    ),
    "bad-format": (
        "defaults:\n  plain-http: true\njobs:\n  - import: hf://org/m\n    target: r.example.com/m/\n"
        "    format: onnx\n",
        6,
        "format must be one of kitops, modelpack",
    ),
    "bad-default-format": (
        "defaults:\n  format: docker\njobs:\n  - import: hf://org/m\n    target: r.example.com/m/\n",
        2,
        "format must be one of",
    ),
    "bad-tag-template": (
        "defaults:\n  plain-http: true\n  format: modelpack\n  tag: '{name}:{commit}'\njobs:\n"
        "  - import: hf://org/m\n    target: r.example.com/m/\n",
        4,
        "{commit}",
    ),
    "unbalanced-tag-template": (
        "defaults:\n  plain-http: true\n  tag: '{name}:{revision'\njobs:\n"
        "  - import: hf://org/m\n    target: r.example.com/m/\n",
        3,
        "tag",
    ),
    "convert-without-to": (
        "jobs:\n  - convert: r.example.com/a:1\n    target: r.example.com/b:1\n",
        2,
        "no to:",
    ),
    "from-repository-with-a-tag": (
        "jobs:\n  - from-repository: r.example.com/team/kits\n    target: r.example.com/mp/kits:1\n",
        3,
        "without a tag",
    ),
    "not-a-bool": (
        "defaults:\n  plain-http: yes-please\njobs:\n"
        "  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n",
        2,
        "plain-http must be a bool",
    ),
    "unknown-top-level": (
        "defaults:\n  plain-http: true\njob:\n  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n",
        3,
        "unknown key 'job'",
    ),
    "bad-yaml": (
        "jobs:\n  - copy: r.example.com/a:1\n    target: [r.example.com/b:1\n",
        4,
        "not valid YAML",
    ),
}


def _usage_error(r: CLIResult) -> str:
    assert r.returncode == 2, f"exited {r.returncode}: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("case", sorted(INVALID))
def test_malformed_job_file_names_the_line(cli: CLI, tmp_path: Path, case: str) -> None:
    cli.env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing here may reach a real Hub
    text, line, words = INVALID[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    for args in ([], ["--dry-run"]):
        msg = _usage_error(cli("batch", str(path), *args))
        assert msg.startswith(f"error: {path}:{line}: "), msg
        assert words in msg, msg
    assert f"{path}:{line}: " in _usage_error(cli("batch", "k8s", str(path), "--image", "ghcr.io/x/kb:1"))


def test_empty_and_missing_job_files(cli: CLI, tmp_path: Path) -> None:
    for name, text in (("empty.yaml", ""), ("comments.yaml", "# nothing yet\n"), ("blank.yaml", "\n\n")):
        path = tmp_path / name
        path.write_text(text)
        msg = _usage_error(cli("batch", str(path)))
        assert f"{path}: the job file is empty" in msg, msg
    path = tmp_path / "nojobs.yaml"
    path.write_text("defaults:\n  plain-http: true\njobs: []\n")
    assert f"{path}:3: jobs must be a non-empty list" in _usage_error(cli("batch", str(path)))
    missing = tmp_path / "missing.yaml"
    msg = _usage_error(cli("batch", str(missing)))
    assert f"cannot read job file {missing}" in msg, msg
    assert "cannot read job file" in _usage_error(cli("batch", "k8s", str(missing), "--image", "x/kb:1"))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert "cannot read job file" in _usage_error(cli("batch", str(folder)))


def test_bad_jobs_and_shard_options(cli: CLI, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("jobs:\n  - copy: r.example.com/a:1\n    target: r.example.com/b:1\n")
    assert "--jobs 0" in _usage_error(cli("batch", str(path), "--jobs", "0"))
    for shard in ("4/4", "1/0", "a/b", "-1/4", "1"):
        assert "--shard" in _usage_error(cli("batch", str(path), "--shard", shard)), shard
    assert "unexpected argument" in _usage_error(cli("batch", str(path), "extra"))


# --- 7. batch k8s ----------------------------------------------------------------------------------------


def test_k8s_manifest_is_a_configmap_and_an_indexed_job(cli: CLI, tmp_path: Path) -> None:
    text = (
        "defaults:\n  plain-http: true\njobs:\n"
        "  - import: hf://org/m\n    target: r.example.com/m/\n"
        "  - convert: r.example.com/a:1\n    to: modelpack\n    target: r.example.com/b:1\n"
        "  - copy: r.example.com/a:1\n    target: r.example.com/c:1\n"
        "  - from-repository: r.example.com/team/kits\n    target: r.example.com/mp/kits\n"
        "  - import: models:/fraud/3\n    tracking-uri: http://mlflow.example.com\n"
        "    target: r.example.com/f\n"
    )
    path = tmp_path / "batch.yaml"
    path.write_text(text)
    image = "ghcr.io/acme/kitbridge@sha256:" + "ab" * 32
    r = cli.ok("batch", "k8s", str(path), "--image", image, "--parallelism", "2")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d is not None]
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    cm, job = docs
    assert cm["apiVersion"] == "v1" and job["apiVersion"] == "batch/v1"
    assert cm["data"] == {"batch.yaml": text}
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 5 and spec["parallelism"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == image
    assert container["args"] == ["batch", "/etc/kitbridge/batch.yaml", "--shard", "$(JOB_COMPLETION_INDEX)/5"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["jobs"]["configMap"]["name"] == cm["metadata"]["name"]
    # --completions overrides the one-per-job default; --json wraps the same text.
    r = cli.ok("batch", "k8s", str(path), "--image", image, "--parallelism", "2", "--completions", "3")
    job = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "Job")
    assert job["spec"]["completions"] == 3
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "$(JOB_COMPLETION_INDEX)/3"
    doc = json.loads(
        cli.ok("batch", "k8s", str(path), "--image", image, "--parallelism", "2", "--json").stdout
    )
    assert [d["kind"] for d in yaml.safe_load_all(doc["manifest"]) if d] == ["ConfigMap", "Job"]
    # No image, or a parallelism above the completions: usage errors.
    assert "needs --image" in _usage_error(cli("batch", "k8s", str(path), "--parallelism", "2"))
    assert "more than --completions" in _usage_error(
        cli("batch", "k8s", str(path), "--image", image, "--parallelism", "9")
    )
