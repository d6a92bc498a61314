"""The container-test infrastructure itself (tests/podman.py): a private rootful podman, the debootstrap
Python base image, and an image built FROM it with the features exported Docker contexts use
(ARG BASE_IMAGE, pip install through the proxy, a non-root USER, HEALTHCHECK, EXPOSE, exec ENTRYPOINT,
LABEL) that serves HTTP on a published loopback port.

Missing podman/runc/debootstrap FAILS these tests (never skips): ./dev/setup.sh installs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import container_cache_dir
from mlflow_server import free_port
from podman import Podman, PodmanError

pytestmark = pytest.mark.container

APP_PORT = 8099
APP_TAG = "localhost/kitbridge-test-app:latest"
APP_DOCKERFILE = f"""\
ARG BASE_IMAGE=python:3.11-slim
FROM ${{BASE_IMAGE}}
RUN pip install --no-cache-dir six
WORKDIR /srv
RUN echo hello > /srv/index.html
USER 10001
EXPOSE {APP_PORT}
LABEL org.opencontainers.image.title=x
HEALTHCHECK --interval=30s --timeout=5s --retries=2 \\
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/')"]
ENTRYPOINT ["python3", "-m", "http.server", "{APP_PORT}"]
"""


@pytest.fixture(scope="module")
def app_image(podman: Podman, python_base: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("app-context")
    (context / "Dockerfile").write_text(APP_DOCKERFILE)
    podman.build(context, APP_TAG, build_args={"BASE_IMAGE": python_base})
    return APP_TAG


def test_python_base_image_runs_python(podman: Podman, python_base: str) -> None:
    assert python_base in podman.images()
    p = podman.run_cmd(
        "run", "--rm", "--pull=never", python_base, "python3", "-c", "import ssl,sys; print(sys.version)"
    )
    assert p.stdout.startswith("3.11."), p.stdout
    # `python` is python3; pip trusts the host CA bundle (the proxy re-signs) and may install system-wide.
    p = podman.run_cmd(
        "run", "--rm", "--pull=never", python_base, "sh", "-c",
        "python --version && pip config list && cmp /etc/ssl/certs/ca-certificates.crt \"$PIP_CERT\"",
    )  # fmt: skip
    assert "Python 3.11" in p.stdout
    assert "global.cert='/etc/ssl/certs/ca-certificates.crt'" in p.stdout
    info = podman.image_inspect(python_base)
    assert info["env"]["PIP_BREAK_SYSTEM_PACKAGES"] == "1"
    assert (
        info["env"]["REQUESTS_CA_BUNDLE"]
        == info["env"]["SSL_CERT_FILE"]
        == "/etc/ssl/certs/ca-certificates.crt"
    )
    # The cached root filesystem: a second build in a fresh storage skips debootstrap.
    assert list(container_cache_dir().glob("debian-bookworm-minbase-*.tar"))


def test_app_image_metadata(podman: Podman, app_image: str) -> None:
    info = podman.image_inspect(app_image)
    assert info["user"] == "10001"
    assert info["labels"]["org.opencontainers.image.title"] == "x"
    assert info["healthcheck"] is not None, "HEALTHCHECK dropped (the image was not built --format docker)"
    assert info["healthcheck"]["Test"][0] == "CMD"
    assert info["healthcheck"]["Test"][1:3] == ["python3", "-c"]
    assert info["entrypoint"] == ["python3", "-m", "http.server", str(APP_PORT)]
    assert info["exposed_ports"] == [f"{APP_PORT}/tcp"]
    assert info["workdir"] == "/srv"
    assert info["env"]["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"  # inherited from the base


def test_app_container_serves_on_loopback_and_is_healthy(podman: Podman, app_image: str) -> None:
    port = free_port()  # a free host port, published to the fixed port the image listens on
    container = podman.run(app_image, port=port, container_port=APP_PORT)
    body = container.wait_http(f"http://127.0.0.1:{port}/index.html", timeout=30)
    assert body == b"hello\n"
    assert container.health_status() == "healthy"
    assert container.exec("id", "-u").strip() == "10001"
    assert "six" in container.exec("python3", "-c", "import six; print(six.__name__)")
    assert "GET /index.html" in container.logs()


def test_close_removes_every_container(podman: Podman, app_image: str) -> None:
    first = podman.run(app_image, port=free_port(), container_port=APP_PORT)
    podman.run(app_image, port=None, command=["8100"])  # args after an exec ENTRYPOINT
    assert first.state() == "running"
    assert len(podman.container_ids()) >= 2
    podman.close()
    assert podman.container_ids() == []
    assert first.state() == "removed"


def test_wait_http_reports_an_exited_container(podman: Podman, python_base: str) -> None:
    container = podman.run(
        python_base, port=free_port(), command=["python3", "-c", "print('boom'); raise SystemExit(3)"]
    )
    with pytest.raises(PodmanError, match=r"(?s)container exited.*boom"):
        container.wait_http(f"{container.url}/", timeout=30)
    podman.close()


def test_failed_build_raises_with_the_log(podman: Podman, python_base: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {python_base}\nRUN echo about-to-fail && false\n")
    with pytest.raises(PodmanError, match=r"(?s)about-to-fail.*exit"):
        podman.build(tmp_path, "localhost/kitbridge-test-broken:latest", network_host=False)
    # No registry can be reached and nothing is pulled: a base image that is not local fails at once.
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/python:3.11-slim\n")
    with pytest.raises(PodmanError, match=r"python:3\.11-slim"):
        podman.build(tmp_path, "localhost/kitbridge-test-broken:latest", network_host=False, timeout=60)


def test_missing_podman_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PodmanError, match="podman is not installed"):
        Podman(tmp_path / "root")
