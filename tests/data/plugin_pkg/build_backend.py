"""A PEP 517 build backend just big enough for this one package (wheels only, pure Python).

It reads the name, version and entry points from pyproject.toml with a line parser that handles
exactly the forms used there, so it runs on every Python kitbridge supports without tomllib.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = "kitbridge_example_plugin"


def _pyproject() -> tuple[str, str, dict[str, dict[str, str]]]:
    section = ""
    project: dict[str, str] = {}
    entry_points: dict[str, dict[str, str]] = {}
    for raw in (HERE / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(.+)\]", line)
        if header:
            section = header.group(1)
            continue
        pair = re.fullmatch(r'"?([\w.-]+)"?\s*=\s*"([^"]*)"', line)
        if pair is None:
            continue
        key, value = pair.groups()
        if section == "project":
            project[key] = value
        elif section.startswith("project.entry-points."):
            group = section[len("project.entry-points.") :].strip('"')
            entry_points.setdefault(group, {})[key] = value
    return project["name"], project["version"], entry_points


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    name, version, entry_points = _pyproject()
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{PACKAGE}/__init__.py": (HERE / PACKAGE / "__init__.py").read_bytes(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in entry_points.items()
        ).encode(),
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel_name = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return wheel_name
