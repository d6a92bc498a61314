"""Rootful podman with a private configuration, for building and running exported Docker contexts.

No Docker daemon and no pullable base image exist here, so the container tests bring their own:

* :class:`Podman` drives the ``podman`` CLI with its own ``containers.conf``/``storage.conf`` (selected
  by ``CONTAINERS_CONF``/``CONTAINERS_STORAGE_CONF``; no system file is read for storage or changed):
  storage, libpod state, events and network configuration all live under one root directory.
  ``runc`` (crun fails on this host's hybrid cgroups), ``cgroupfs``, file events, overlay storage
  (vfs when overlay cannot be mounted), and ``netns = "none"`` by default: a build step gets the
  network only with ``network_host=True`` (pip), a container started by :meth:`Podman.run` gets a
  bridge with its port published on 127.0.0.1 (``-p`` is silently ignored with ``none``/``host``).
* :func:`build_python_base` makes a Debian bookworm image with python3/pip from the Debian package
  registry (``debootstrap``), adds the host CA bundle (the HTTPS proxy re-signs certificates) and the
  host's network pip settings, and caches the root filesystem tarball between sessions.
* :func:`podman_session` is the pytest-free context manager; conftest wraps it in fixtures.

The podman seen here (4.3) logs "unable to get systemd connection to add healthchecks" on stderr for
every container whose image has a HEALTHCHECK: there is no systemd to run the timer. The container
still starts, and :meth:`Container.health_status` runs the check on demand (``podman healthcheck run``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

log = logging.getLogger("kitbridge.tests.podman")

BASE_TAG = "localhost/kitbridge-test-python:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates", "curl")
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Where the CA bundle goes in the image: Debian's own path, so curl/openssl/pip/requests all find it.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Host pip settings that make sense inside a container (network indexes, timeouts); file:// indexes and
# find-links point at host directories the container cannot see, and cert is replaced by IMAGE_CA_BUNDLE.
_PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries")
_URL_KEYS = ("index-url", "extra-index-url")


class PodmanError(RuntimeError):
    """A podman (or debootstrap) command failed; the message carries the command's output tail."""


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class ImageInfo(TypedDict):
    """The parts of ``podman image inspect`` the tests look at (``raw`` is the whole record)."""

    id: str
    tags: list[str]
    user: str
    labels: dict[str, str]
    healthcheck: dict[str, Any] | None  # {"Test": [...], "Interval": ns, ...}; None when there is none
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    exposed_ports: list[str]  # e.g. ["8099/tcp"]
    workdir: str
    raw: dict[str, Any]


class Podman:
    """The ``podman`` CLI with a private configuration and storage under ``root``.

    Every container it starts is stopped and removed by :meth:`close` (and, since the storage is
    private, so is any other container in it). Use it as a context manager or via :func:`podman_session`.
    """

    def __init__(self, root: Path, *, driver: str | None = None) -> None:
        exe = shutil.which("podman")
        if exe is None:
            raise PodmanError("podman is not installed; run ./dev/setup.sh (apt: podman buildah runc)")
        if shutil.which("runc") is None:
            raise PodmanError("runc is not installed; run ./dev/setup.sh (crun fails here: hybrid cgroups)")
        self.exe = exe
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.containers_conf = self.root / "containers.conf"
        self.storage_conf = self.root / "storage.conf"
        self.timings: dict[str, float] = {}
        self._containers: list[Container] = []
        env = {k: v for k, v in os.environ.items() if k not in ("CONTAINER_HOST", "CONTAINER_CONNECTION")}
        env["CONTAINERS_CONF"] = str(self.containers_conf)
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        self.env = env
        self._write_containers_conf()
        wanted = driver or os.environ.get("KITBRIDGE_TEST_PODMAN_DRIVER") or ""
        self.driver = self._configure_storage(wanted)
        log.info("podman: root %s, storage driver %s", self.root, self.driver)

    # -- configuration ---------------------------------------------------------------------------------

    def _write_containers_conf(self) -> None:
        for sub in ("tmp", "networks", "copy-tmp"):
            (self.root / sub).mkdir(exist_ok=True)
        self.containers_conf.write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
            # Build steps get the network only when asked (--network host); run() uses a bridge.
            'netns = "none"\n'
            "\n[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f"tmp_dir = {_toml_str(str(self.root / 'tmp'))}\n"  # else /run/libpod, shared by all
            f"image_copy_tmp_dir = {_toml_str(str(self.root / 'copy-tmp'))}\n"
            "\n[network]\n"
            # else /etc/containers/networks (the IPAM db stays in /run/containers/networks: fixed in 4.3)
            f"network_config_dir = {_toml_str(str(self.root / 'networks'))}\n"
        )

    def _write_storage_conf(self, driver: str) -> None:
        self.storage_conf.write_text(
            "[storage]\n"
            f"driver = {_toml_str(driver)}\n"
            f"graphroot = {_toml_str(str(self.root / 'graph'))}\n"
            f"runroot = {_toml_str(str(self.root / 'run'))}\n"
        )

    def _configure_storage(self, wanted: str) -> str:
        """Overlay when it works here, else vfs (slower: every layer is a full copy)."""
        for driver in [wanted] if wanted else ["overlay", "vfs"]:
            self._write_storage_conf(driver)
            p = self.run_cmd("info", "--format", "{{.Store.GraphDriverName}}", check=False, timeout=60)
            if p.returncode == 0 and p.stdout.strip() == driver:
                return driver
            log.warning("podman: storage driver %s unusable here: %s", driver, _tail(p.stderr, 5))
            for sub in ("graph", "run"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
        tried = wanted or "overlay, vfs"
        raise PodmanError(f"no usable podman storage driver (tried {tried}) under {self.root}")

    # -- commands --------------------------------------------------------------------------------------

    def run_cmd(
        self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman <args>`` with this instance's configuration; stdout/stderr captured as text."""
        cmd = [self.exe, *args]
        try:
            p = subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=timeout, input=input, check=False
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            raise PodmanError(f"timed out after {timeout}s: {' '.join(cmd)}\n{_tail(out)}") from e
        if check and p.returncode != 0:
            raise PodmanError(
                f"exit {p.returncode}: {' '.join(cmd)}\n"
                f"--- stdout\n{_tail(p.stdout)}\n--- stderr\n{_tail(p.stderr)}"
            )
        return p

    def image_exists(self, image: str) -> bool:
        return self.run_cmd("image", "exists", image, check=False).returncode == 0

    def build(
        self,
        context: Path,
        tag: str,
        *,
        build_args: Mapping[str, str] | None = None,
        network_host: bool = True,
        fmt: str = "docker",
        dockerfile: Path | None = None,
        timeout: float = 900,
    ) -> None:
        """``podman build --pull=never`` (no registry can be reached; base images must be local).

        ``fmt="docker"`` keeps HEALTHCHECK (the OCI image format has no field for it); ``network_host``
        gives RUN steps the host network (pip/apt through the proxy), else they have none.
        The full log is kept in ``self.last_build_log``; a failure raises with its tail.
        """
        args = ["build", "--pull=never", "--format", fmt, "-t", tag]
        if network_host:
            args += ["--network", "host"]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        if dockerfile is not None:
            args += ["-f", str(dockerfile)]
        args.append(str(context))
        start = time.monotonic()
        p = self.run_cmd(*args, check=False, timeout=timeout)
        elapsed = time.monotonic() - start
        self.last_build_log = p.stdout + p.stderr
        if p.returncode != 0:
            raise PodmanError(
                f"podman build of {context} as {tag} failed (exit {p.returncode}, {elapsed:.1f}s):\n"
                + _tail(self.last_build_log, 80)
            )
        log.info("podman: built %s in %.1fs", tag, elapsed)

    def run(
        self,
        image: str,
        *,
        port: int | None,
        container_port: int | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[tuple[Path, str, str]] = (),
        extra: Sequence[str] = (),
        command: Sequence[str] = (),
        network: str = "bridge",
    ) -> Container:
        """Start ``image`` detached; ``port`` on 127.0.0.1 is published to ``container_port`` (default: the
        same number). ``volumes`` are ``(host_path, container_path, mode)``, mode e.g. ``"ro"``.
        ``network="host"`` shares the host network instead (then nothing is published)."""
        args = ["run", "-d", "--pull=never", "--network", network]
        if port is not None and network != "host":
            args += ["-p", f"127.0.0.1:{port}:{container_port or port}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        for host_path, ctr_path, mode in volumes:
            args += ["-v", f"{host_path}:{ctr_path}:{mode}" if mode else f"{host_path}:{ctr_path}"]
        args += [*extra, image, *command]
        p = self.run_cmd(*args, timeout=120)
        cid = p.stdout.strip().splitlines()[-1]
        container = Container(self, cid, image, port)
        self._containers.append(container)
        log.info("podman: started %s from %s (port %s)", cid[:12], image, port)
        return container

    def image_inspect(self, image: str) -> ImageInfo:
        raw = json.loads(self.run_cmd("image", "inspect", image).stdout)[0]
        config = raw.get("Config") or {}
        env: dict[str, str] = {}
        for item in config.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return ImageInfo(
            id=raw["Id"],
            tags=list(raw.get("RepoTags") or []),
            user=config.get("User") or "",
            labels=dict(config.get("Labels") or raw.get("Labels") or {}),
            healthcheck=raw.get("Healthcheck") or config.get("Healthcheck"),
            entrypoint=list(config.get("Entrypoint") or []),
            cmd=list(config.get("Cmd") or []),
            env=env,
            exposed_ports=sorted(config.get("ExposedPorts") or {}),
            workdir=config.get("WorkingDir") or "",
            raw=raw,
        )

    def images(self) -> list[str]:
        """The tagged images in this storage, as ``repository:tag``."""
        out = self.run_cmd("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        return [line for line in out.splitlines() if line and "<none>" not in line]

    def remove_image(self, image: str, *, force: bool = False) -> None:
        self.run_cmd("rmi", *(["-f"] if force else []), image)

    def container_ids(self) -> list[str]:
        """Every container in this storage, running or not."""
        return self.run_cmd("ps", "-a", "-q", "--no-trunc").stdout.split()

    def close(self) -> None:
        """Stop and remove every container (SIGKILL: a PID-1 server that ignores SIGTERM would cost 10 s)."""
        ids = {c.id for c in self._containers} | set(self.container_ids())
        if ids:
            # --ignore: containers a test already removed must not stop the others from going.
            self.run_cmd("rm", "-f", "--ignore", "-t", "0", *sorted(ids), check=False, timeout=120)
        self._containers.clear()

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Container:
    """A container started by :meth:`Podman.run`."""

    def __init__(self, podman: Podman, cid: str, image: str, port: int | None) -> None:
        self.podman = podman
        self.id = cid
        self.image = image
        self.port = port

    def __repr__(self) -> str:
        return f"Container({self.id[:12]}, {self.image}, port={self.port})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the published host port)."""
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        p = self.podman.run_cmd("logs", self.id, check=False)
        return p.stdout + p.stderr

    def state(self) -> str:
        """``running``, ``exited``, ... (``removed`` when it is gone)."""
        p = self.podman.run_cmd("inspect", "--format", "{{.State.Status}}", self.id, check=False)
        return p.stdout.strip() if p.returncode == 0 else "removed"

    def exec(self, *cmd: str, check: bool = True, user: str | None = None) -> str:
        """Run ``cmd`` in the running container; its stdout."""
        args = ["exec", *(["--user", user] if user else []), self.id, *cmd]
        return self.podman.run_cmd(*args, check=check).stdout

    def stop(self, timeout: int = 10) -> None:
        self.podman.run_cmd("stop", "-t", str(timeout), self.id, timeout=timeout + 60)

    def remove(self) -> None:
        self.podman.run_cmd("rm", "-f", "--ignore", "-t", "0", self.id)

    def _failure(self, message: str) -> PodmanError:
        logs = _tail(self.logs())
        return PodmanError(f"{message}\n--- container {self.id[:12]} ({self.state()}) logs:\n{logs}")

    def wait_http(self, url: str, timeout: float = 60, expect: int = 200) -> bytes:
        """Poll ``url`` until it answers ``expect``; its body. Raises (with the container's logs) on
        timeout or as soon as the container is no longer running."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            body: bytes = b""
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    status, body = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            except (OSError, urllib.error.URLError) as e:
                status, body = 0, b""
                last = repr(e)
            if status == expect:
                return body
            if status:
                last = f"HTTP {status}: {body[:200]!r}"
            if self.state() != "running":
                raise self._failure(f"container exited while waiting for {url} ({last})")
            if time.monotonic() > deadline:
                raise self._failure(f"{url} did not answer {expect} within {timeout}s ({last})")
            time.sleep(0.25)

    def health_status(self) -> str:
        """Run the image's HEALTHCHECK now (``podman healthcheck run``): ``healthy`` or ``unhealthy``.
        Raises when the container has no healthcheck or is not running."""
        p = self.podman.run_cmd("healthcheck", "run", self.id, check=False, timeout=120)
        if p.returncode == 0:
            return "healthy"
        if p.returncode == 1:
            return "unhealthy"
        raise self._failure(f"podman healthcheck run failed (exit {p.returncode}): {_tail(p.stderr, 5)}")

    def wait_healthy(self, timeout: float = 60, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health_status() != "healthy":
            if time.monotonic() > deadline:
                raise self._failure(f"healthcheck still unhealthy after {timeout}s")
            time.sleep(interval)


# -- the Python base image ---------------------------------------------------------------------------


def host_debian_mirror(suite: str = DEBIAN_SUITE) -> str:
    """The Debian archive URL the host's apt uses for ``suite`` (deb822 ``.sources`` or one-line
    ``.list``); ``http://deb.debian.org/debian`` when none is configured."""
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    files += sorted((apt / "sources.list.d").glob("*.sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
                    for uri in fields.get("uris", "").split():
                        if uri.startswith(("http://", "https://")):
                            return uri.rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                is_http = len(words) >= 3 and words[1].startswith(("http://", "https://"))
                if is_http and words[0] == "deb" and words[2] == suite:
                    return words[1].rstrip("/")
    return DEFAULT_DEBIAN_MIRROR


def host_ca_bundle() -> Path:
    """The CA bundle the host trusts (it includes the re-signing proxy's CA)."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"), IMAGE_CA_BUNDLE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise PodmanError("no host CA bundle found (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)")


def host_pip_conf() -> str:
    """A pip.conf for the image: the CA bundle, plus the host pip's network settings (index URLs of a
    mirror or proxy, timeouts) as ``pip config list`` reports them (files and PIP_* variables).
    Host-only settings (file:// indexes, find-links directories, the host cert path) are left out."""
    settings: dict[str, str] = {}
    p = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    for line in p.stdout.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        key = name.rsplit(".", 1)[-1]
        value = value.strip().strip("'\"")
        if key not in _PIP_KEYS:
            continue
        if key in _URL_KEYS:
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if value:
            settings[key] = value  # later lines (env) win, as in pip
    lines = ["[global]", f"cert = {IMAGE_CA_BUNDLE}", "disable-pip-version-check = true"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _umount_below(root: Path) -> None:
    """Undo mounts debootstrap left behind when it failed half-way (proc, sys in the target)."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point == str(root) or point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def debian_rootfs_tarball(
    cache_dir: Path,
    *,
    suite: str = DEBIAN_SUITE,
    packages: Sequence[str] = DEBIAN_PACKAGES,
    mirror: str | None = None,
    timings: dict[str, float] | None = None,
) -> Path:
    """A tarball of a ``debootstrap --variant=minbase`` root filesystem with ``packages``, made once per
    cache_dir (keyed by suite, packages and architecture; concurrent sessions wait on a lock)."""
    timings = {} if timings is None else timings
    cache_dir.mkdir(parents=True, exist_ok=True)
    recipe = f"{suite} minbase {','.join(packages)} {platform.machine()}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    tarball = cache_dir / f"debian-{suite}-minbase-{key}.tar"
    with _locked(cache_dir / ".rootfs.lock"):
        if tarball.is_file():
            log.info("podman: cached rootfs %s", tarball)
            return tarball
        if shutil.which("debootstrap") is None:
            raise PodmanError("debootstrap is not installed; run ./dev/setup.sh (apt: debootstrap)")
        if os.geteuid() != 0:
            raise PodmanError("debootstrap needs root (the container tests use rootful podman)")
        mirror = mirror or os.environ.get("KITBRIDGE_TEST_DEBIAN_MIRROR") or host_debian_mirror(suite)
        rootfs = cache_dir / f"rootfs-{os.getpid()}"
        debootstrap_log = cache_dir / "debootstrap.log"
        include = f"--include={','.join(packages)}"
        cmd = ["debootstrap", "--variant=minbase", include, suite, str(rootfs), mirror]
        log.info("podman: %s", " ".join(cmd))
        try:
            start = time.monotonic()
            with debootstrap_log.open("w") as out:
                p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=900)
            timings["debootstrap"] = time.monotonic() - start
            if p.returncode != 0:
                raise PodmanError(
                    f"debootstrap failed (exit {p.returncode}, mirror {mirror}); {debootstrap_log}:\n"
                    + _tail(debootstrap_log.read_text(errors="replace"))
                )
            # What official Debian images leave out too: downloaded .debs and the package lists.
            for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / sub).glob("*"):
                    if entry.is_file() and entry.name != "lock":
                        entry.unlink()
            start = time.monotonic()
            partial = tarball.with_suffix(".tar.partial")
            tar = ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."]
            subprocess.run(tar, check=True)
            partial.rename(tarball)
            timings["rootfs_tar"] = time.monotonic() - start
        finally:
            _umount_below(rootfs)
            shutil.rmtree(rootfs, ignore_errors=True)
        log.info(
            "podman: debootstrap %.1fs, tar %.1fs -> %s",
            timings["debootstrap"],
            timings["rootfs_tar"],
            tarball,
        )
        return tarball


_BASE_DOCKERFILE = f"""\
ARG RAW_IMAGE
FROM ${{RAW_IMAGE}}
COPY ca-certificates.crt {IMAGE_CA_BUNDLE}
COPY pip.conf /etc/pip.conf
ENV LANG=C.UTF-8 \\
    PIP_CERT={IMAGE_CA_BUNDLE} \\
    SSL_CERT_FILE={IMAGE_CA_BUNDLE} \\
    REQUESTS_CA_BUNDLE={IMAGE_CA_BUNDLE} \\
    PIP_BREAK_SYSTEM_PACKAGES=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN ln -sf /usr/bin/python3 /usr/local/bin/python && python --version && pip --version
CMD ["python3"]
"""


def build_python_base(
    podman: Podman,
    cache_dir: Path,
    tag: str = BASE_TAG,
    *,
    mirror: str | None = None,
) -> str:
    """A local Debian bookworm image with python3, pip, venv, curl, the host CA bundle and pip settings;
    ``python`` is python3 and pip may install into the system Python (PIP_BREAK_SYSTEM_PACKAGES=1).

    Returns ``tag`` at once when this storage has it. The debootstrap root filesystem is cached as a
    tarball in ``cache_dir``, so a new storage costs only the import and a one-step build.
    Step timings are logged and recorded in ``podman.timings``.
    """
    if podman.image_exists(tag):
        return tag
    tarball = debian_rootfs_tarball(cache_dir, mirror=mirror, timings=podman.timings)
    raw = f"{tag}-raw"
    start = time.monotonic()
    podman.run_cmd("import", "--quiet", str(tarball), raw, timeout=600)
    podman.timings["import"] = time.monotonic() - start
    context = podman.root / "python-base-context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    shutil.copyfile(host_ca_bundle(), context / "ca-certificates.crt")
    (context / "pip.conf").write_text(host_pip_conf())
    (context / "Dockerfile").write_text(_BASE_DOCKERFILE)
    start = time.monotonic()
    podman.build(context, tag, build_args={"RAW_IMAGE": raw}, network_host=False)
    podman.timings["base_build"] = time.monotonic() - start
    log.info(
        "podman: python base %s ready (import %.1fs, build %.1fs)",
        tag,
        podman.timings["import"],
        podman.timings["base_build"],
    )
    return tag


@contextlib.contextmanager
def podman_session(root: Path, *, remove_storage: bool = False) -> Iterator[Podman]:
    """A :class:`Podman` under ``root``, closed (all containers removed) on exit; with
    ``remove_storage`` its storage (images, layers) is deleted too."""
    podman = Podman(root)
    try:
        yield podman
    finally:
        podman.close()
        if remove_storage:
            _umount_below(podman.root)
            shutil.rmtree(podman.root, ignore_errors=True)
