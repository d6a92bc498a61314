"""Where kitbridge keeps its data: ``$KITBRIDGE_HOME`` (default ``$XDG_DATA_HOME/kitbridge``)."""

from __future__ import annotations

import os
from pathlib import Path

from kitbridge.oci.store import Store


def home_dir() -> Path:
    """``$KITBRIDGE_HOME``, else ``$XDG_DATA_HOME/kitbridge``, else ``~/.local/share/kitbridge``."""
    if env := os.environ.get("KITBRIDGE_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "kitbridge"


def open_store(home: Path | None = None) -> Store:
    """The local OCI store under the home directory (created on first write)."""
    return Store((home or home_dir()) / "store")
