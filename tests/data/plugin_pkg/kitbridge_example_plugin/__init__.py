"""A third-party importer: ``example://NAME`` makes a one-file model whose weights hold NAME."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from kitbridge.converters.importers.base import Provenance, SourceFile, SourceTree


class ExampleImporter:
    """Serves ``example:`` and ``example-too:``; ``broken-example:`` points at a class that does not exist."""

    schemes: ClassVar[tuple[str, ...]] = ("example", "example-too")

    def resolve(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        work_dir: Path | None = None,
    ) -> SourceTree:
        root = work_dir or Path(tempfile.mkdtemp(prefix="example-importer-"))
        name = source.partition("://")[2] or "unnamed"
        weights = root / "weights.gguf"
        weights.write_text(name, encoding="utf-8")
        provenance = Provenance(source_uri=source, importer="example", revision=revision or "v1")
        files = [SourceFile("weights.gguf", weights, weights.stat().st_size, role="weights")]
        return SourceTree(root, files, provenance)


class StaticFilesRuntime:
    """A third-party exporter runtime: serves the model folder over HTTP (never chosen by auto for GGUF)."""

    name: ClassVar[str] = "static-files"
    description: ClassVar[str] = "the model folder over python -m http.server"

    def detect(self, facts: object) -> str | None:
        return "a text model" if str(getattr(facts, "model_path", "")).endswith(".txt") else None

    def plan(self, facts: object, *, mode: str, port: int | None, base_image: str | None) -> object:
        from kitbridge.converters.exporters.base import Plan

        port = port or 8000
        return Plan(
            base_image=base_image or "docker.io/library/python@sha256:" + "0" * 64,
            port=port,
            health_path="/",
            entrypoint=["python3", "-m", "http.server", str(port), "--directory", "/opt/model"],
        )
