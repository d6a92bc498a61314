"""A real ``mlflow server`` (tracking + model registry + proxied artifacts) for tests.

The server runs the ``mlflow`` of the running interpreter's environment (the executable next to
``sys.executable``, never a global one) on a free loopback port, with a SQLite backend store and an
artifact directory under ``root``, and logs its output to ``root / "mlflow-server.log"``.

``mlflow server`` is a launcher: it spawns uvicorn (the app) and, unless job execution is disabled, a job
runner with a handful of huey consumers. It is started in a new session so that all of them share one
process group; :meth:`MLflowServer.close` signals the whole group (and any descendant that left it) and
checks that nothing survives.

``app_name="basic-auth"`` starts MLflow's basic-auth app instead: an admin user (``ADMIN_USERNAME`` /
``ADMIN_PASSWORD``), a user store in ``root / "basic_auth.db"`` and ``default_permission`` (by default
``NO_PERMISSIONS``: a user sees only what it was granted or created itself); :meth:`MLflowServer.create_user`
adds users through the REST API.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOG_NAME = "mlflow-server.log"
AUTH_APP = "basic-auth"
ADMIN_USERNAME = "kb-admin"
ADMIN_PASSWORD = "kb-admin-password-0123"  # MLflow wants >= 12 characters and refuses "password1234"

# What the child must not inherit from the test process (or from whoever runs the tests).
_SCRUBBED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlflow_executable() -> Path:
    """The ``mlflow`` console script of the running interpreter's environment (e.g. ``.venv/bin/mlflow``)."""
    # Not resolved: a venv's python is often a symlink to the base interpreter, whose bin has no mlflow.
    exe = Path(sys.executable).parent / "mlflow"
    if not exe.is_file():
        raise FileNotFoundError(
            f"{exe} does not exist: install mlflow into {Path(sys.executable).parent.parent}"
        )
    return exe


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) from /proc/<pid>/stat, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[2])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def group_members(pgid: int, *, include_zombies: bool = False) -> set[int]:
    """PIDs in process group ``pgid`` (by /proc); zombies (exited, not yet reaped) only when asked."""
    found = set()
    for pid in _all_pids():
        st = _stat_fields(pid)
        if st is not None and st[2] == pgid and (include_zombies or st[0] != "Z"):
            found.add(pid)
    return found


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) descendants of ``pid``, whatever their process group."""
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        st = _stat_fields(p)
        if st is not None and st[0] != "Z":
            children.setdefault(st[1], []).append(p)
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    st = _stat_fields(pid)
    return st is not None and st[0] != "Z"


class MLflowServer:
    """A real MLflow tracking server: ``start()`` returns the tracking URI ``http://127.0.0.1:<port>``.

    ``root`` holds ``mlflow.db`` (backend and registry store), ``artifacts/`` (the proxied artifact
    destination: runs and MLflow 3 logged models), ``tmp/`` (the child's TMPDIR) and the log file.
    Job execution (a job runner plus ~7 huey consumer processes, unused by the registry) is off unless
    ``jobs=True``.

    ``app_name="basic-auth"``: MLflow's basic-auth app (see the module docstring), its config in
    ``root / "basic_auth.ini"``; requests then need credentials (:attr:`admin_auth`).
    """

    def __init__(
        self,
        root: Path,
        *,
        jobs: bool = False,
        ready_timeout: float = READY_TIMEOUT_S,
        app_name: str | None = None,
        default_permission: str = "NO_PERMISSIONS",
    ) -> None:
        if app_name not in (None, AUTH_APP):
            raise ValueError(f"app_name must be None or {AUTH_APP!r}, not {app_name!r}")
        self.root = Path(root)
        self.jobs = jobs
        self.ready_timeout = ready_timeout
        self.app_name = app_name
        self.default_permission = default_permission
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids_seen: set[int] = set()  # every process of the server observed while it ran

    # --- where things are ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the MLflow server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def tracking_uri(self) -> str:
        return self.url

    @property
    def db_path(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.root / LOG_NAME

    @property
    def auth_config_path(self) -> Path:
        return self.root / "basic_auth.ini"

    @property
    def admin_auth(self) -> tuple[str, str]:
        """(username, password) of the basic-auth app's admin user."""
        return ADMIN_USERNAME, ADMIN_PASSWORD

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return "(no log)"

    # --- lifecycle -----------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env.update(
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="true",  # mlflow's telemetry also honours this, but only as "true"
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="true" if self.jobs else "false",
            PYTHONUNBUFFERED="1",
            TMPDIR=str(tmp),
        )
        if self.app_name == AUTH_APP:
            env.update(
                MLFLOW_AUTH_CONFIG_PATH=str(self._write_auth_config()),
                MLFLOW_FLASK_SERVER_SECRET_KEY="kitbridge-tests-secret-key",
            )
        return env

    def _write_auth_config(self) -> Path:
        """The basic-auth app's config: its own user store, the admin user, the default permission."""
        self.auth_config_path.write_text(
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
            f"database_uri = sqlite:///{(self.root / 'basic_auth.db').absolute()}\n"
            f"admin_username = {ADMIN_USERNAME}\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        return self.auth_config_path

    def start(self) -> str:
        """Start the server and wait for ``GET /health``; returns the tracking URI."""
        if self.proc is not None:
            raise RuntimeError("the MLflow server is already started")
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        exe = mlflow_executable()
        for _attempt in range(3):  # another process may grab the free port before the server binds it
            self.port = free_port()
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
                log.write(f"\n=== mlflow server on port {self.port} ===\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [
                        str(exe),
                        "server",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port),
                        "--backend-store-uri",
                        f"sqlite:///{self.db_path}",
                        "--artifacts-destination",
                        str(self.artifacts_dir),
                        "--workers",
                        "1",
                        *(["--app-name", self.app_name] if self.app_name else []),
                    ],
                    cwd=self.root,
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return self.url
            if "address already in use" not in self.log_tail().lower():
                break
            self.close()
        tail = self.log_tail()
        self.close()
        raise RuntimeError(
            f"mlflow server did not become ready within {self.ready_timeout:.0f} s "
            f"(log {self.log_path}):\n{tail}"
        )

    def create_user(self, username: str, password: str) -> None:
        """Create a basic-auth user (as the admin, ``POST /api/2.0/mlflow/users/create``)."""
        if self.app_name != AUTH_APP:
            raise RuntimeError("create_user needs a server started with app_name='basic-auth'")
        token = base64.b64encode(f"{ADMIN_USERNAME}:{ADMIN_PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status != 200:
                raise RuntimeError(f"creating user {username!r} failed: HTTP {r.status}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            self._note_pids()
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        self._note_pids()
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        return False

    def _note_pids(self) -> None:
        if self.proc is not None:
            self.pids_seen |= group_members(self.proc.pid) | descendants(self.proc.pid)

    def processes(self) -> set[int]:
        """The server's live processes now: its process group and every descendant of the launcher."""
        if self.proc is None:
            return set()
        self._note_pids()
        return {p for p in group_members(self.proc.pid) | descendants(self.proc.pid) if alive(p)}

    def close(self) -> None:
        """SIGTERM the whole process group, wait, SIGKILL what is left; raise if anything survives."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        self._note_pids()
        targets = self.pids_seen | group_members(pgid) | descendants(pgid)

        def signal_all(sig: int) -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            for pid in targets | group_members(pgid):  # also any descendant that left the group
                if alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)

        def survivors() -> set[int]:
            return {p for p in targets | group_members(pgid) if alive(p)}

        def wait_gone(timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.05)  # reap the launcher (our child)
                if proc.poll() is not None and not survivors():
                    return True
                time.sleep(0.05)
            return False

        if proc.poll() is None or survivors():
            signal_all(signal.SIGTERM)
            if not wait_gone(STOP_TIMEOUT_S):
                signal_all(signal.SIGKILL)
                wait_gone(STOP_TIMEOUT_S)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self.proc = None
        left = survivors()
        if left:
            raise RuntimeError(f"mlflow server processes survived SIGKILL: {sorted(left)}")

    def __enter__(self) -> MLflowServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def serve_mlflow(
    root: Path, *, jobs: bool = False, app_name: str | None = None, default_permission: str = "NO_PERMISSIONS"
) -> Iterator[MLflowServer]:
    """A started :class:`MLflowServer` under ``root``, closed on exit (usable outside pytest too)."""
    server = MLflowServer(root, jobs=jobs, app_name=app_name, default_permission=default_permission)
    server.start()
    try:
        yield server
    finally:
        server.close()
