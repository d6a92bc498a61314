"""Where blobs are known to live in remote registries, so a push can mount instead of upload.

A push or pull records ``registry -> digest -> repositories``; a later push of the same blob to
another repository of that registry asks the registry to mount it from there (no bytes sent).
The record is a hint: a mount the registry refuses falls back to an upload.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from kitbridge.oci import lock

_MAX_REPOS_PER_BLOB = 8  # a hint needs only a few places; keeps the file small


class BlobLocations:
    """A small JSON file per registry under ``<home>/locations/``, updated under a lock."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "locations"

    def _path(self, registry: str) -> Path:
        return self.dir / (registry.replace(":", "_").replace("/", "_") + ".json")

    def _read(self, path: Path) -> dict[str, list[str]]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: [r for r in v if isinstance(r, str)] for k, v in data.items() if isinstance(v, list)}

    def repositories(self, registry: str, digest: str) -> list[str]:
        """Repositories of ``registry`` that held ``digest`` when we last pushed or pulled it."""
        return self._read(self._path(registry)).get(digest, [])

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """Remember that ``repository`` on ``registry`` now holds every blob in ``digests``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(registry)
        with lock.exclusive(path.with_suffix(".lock"), timeout=30, what="blob locations"):
            data = self._read(path)
            for d in digests:
                repos = [r for r in data.get(d, []) if r != repository]
                data[d] = [repository, *repos][:_MAX_REPOS_PER_BLOB]
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, path)
