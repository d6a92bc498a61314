"""Real ``docker-registry`` (distribution 2.8) processes for tests: plain HTTP, htpasswd Basic auth, TLS.

Each server runs on a free loopback port with its own storage directory, and is stopped (SIGTERM to
its process group) when the test is done. ``restart()`` keeps the storage, for fault tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from ssl import create_default_context

import yaml

USER, PASSWORD = "kbuser", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
        "-days",
        "2",
        "-subj",
        "/CN=kitbridge test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_crt),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca_crt, crt, key


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:<port>``; ``ca_file`` is set for TLS ones."""

    root: Path
    mode: str  # "plain", "basic", "tls"
    port: int = field(default_factory=free_port)
    ca_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    closed: bool = False
    # start/stop/close may come from a test's helper thread (kill-and-restart faults) and from the
    # fixture's teardown at once: a restart must never outlive the fixture.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.mode == 'tls' else 'http'}://{self.host}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _config(self) -> Path:
        cfg: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.data_dir)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "kitbridge-tests"},
        }
        if self.mode == "basic":
            import bcrypt

            htpasswd = self.root / "htpasswd"
            hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
            htpasswd.write_text(f"{USER}:{hashed}\n")
            cfg["auth"] = {"htpasswd": {"realm": "kitbridge-tests", "path": str(htpasswd)}}
        if self.mode == "tls":
            ca, crt, key = make_ca_and_cert(self.root / "tls")
            self.ca_file = ca
            http = cfg["http"]
            assert isinstance(http, dict)
            http["tls"] = {"certificate": str(crt), "key": str(key)}
        path = self.root / "config.yml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self) -> Registry:
        with self._lock:
            if self.closed:
                raise RuntimeError("this test registry was closed by its fixture")
            return self._start()

    def close(self) -> None:
        """Stop for good: later start()/restart() calls (from stray threads) refuse."""
        with self._lock:
            self.closed = True
            self.stop()

    def _start(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        if not config.exists():
            config = self._config()
        with open(self.root / "registry.log", "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        ctx = create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=ctx)
                return self
            except urllib.error.HTTPError as e:
                if e.code == 401:  # auth-protected: up and answering
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not become ready within 20 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        with self._lock:
            self._stop(sig)

    def _stop(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()

    def blob_digests(self) -> set[str]:
        """Digests of the blobs the registry holds on disk (its storage layout, read directly)."""
        base = self.data_dir / "docker/registry/v2/blobs/sha256"
        return (
            {"sha256:" + p.name for p in base.glob("*/*") if (p / "data").is_file()}
            if base.is_dir()
            else set()
        )
