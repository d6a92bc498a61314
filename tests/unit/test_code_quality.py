"""The linters are part of the test suite: a lint or type error fails the tests like any other bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_check_is_clean() -> None:
    p = _run(str(BIN / "ruff"), "check", "kitbridge", "tests", "benchmarks")
    assert p.returncode == 0, p.stdout + p.stderr


def test_ruff_format_is_clean() -> None:
    p = _run(str(BIN / "ruff"), "format", "--check", "kitbridge", "tests", "benchmarks")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_strict_is_clean() -> None:
    p = _run(str(BIN / "mypy"))
    assert p.returncode == 0, p.stdout + p.stderr
