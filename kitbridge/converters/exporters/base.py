"""Exporter runtimes: what a Docker context needs to serve one kind of model, and the plugin registry.

A runtime (MLflow pyfunc, llama.cpp, vLLM, transformers, onnxruntime) is a class registered under
the entry-point group ``kitbridge.exporters``, keyed by its runtime name; the built-ins are listed in
:data:`BUILTIN_RUNTIMES` the same way. Each says whether it fits a ModelKit (:meth:`Runtime.detect`)
and what its part of the Dockerfile is; :mod:`kitbridge.converters.exporters.docker` writes the rest.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import PurePosixPath
from typing import Any, ClassVar, Protocol, runtime_checkable

from kitbridge.converters.importers.base import PluginWarning, plugins_disabled
from kitbridge.errors import KitbridgeError, UsageError
from kitbridge.kitfile import Kitfile

EXPORTER_GROUP = "kitbridge.exporters"
MODEL_DIR = "/opt/model"
"""Where the model lives in the container (baked in, or mounted)."""
APP_DIR = "/opt/kitbridge"
"""Where the context's server code and health check go."""
RUNTIME_UID = 10001

BUILTIN_RUNTIMES: dict[str, str] = {
    "mlflow": "kitbridge.converters.exporters.docker.mlflow_runtime:MLflowRuntime",
    "onnxruntime": "kitbridge.converters.exporters.docker.onnx_runtime:OnnxRuntime",
    "llamacpp": "kitbridge.converters.exporters.docker.llamacpp:LlamaCppRuntime",
    "vllm": "kitbridge.converters.exporters.docker.vllm:VllmRuntime",
    "transformers": "kitbridge.converters.exporters.docker.transformers_runtime:TransformersRuntime",
}
"""runtime -> ``module:Class`` of the built-in runtimes; also declared as entry points in pyproject.toml."""
AUTO_ORDER = ("mlflow", "llamacpp", "onnxruntime", "vllm")
"""The order ``--runtime auto`` tries the built-ins in (transformers is vLLM's CPU fallback, never auto)."""


@dataclass(frozen=True)
class ModelFacts:
    """What the exporter knows about a ModelKit without unpacking it."""

    kitfile: Kitfile
    reference: str
    digest: str
    files: tuple[str, ...]
    """Layer paths from the Kitfile (a directory layer shows as its path)."""
    model_path: str
    """``model.path`` (empty when the Kitfile has no model)."""
    model_format: str
    framework: str
    header: bytes = b""
    """The first bytes of the model file, when its layer is raw (GGUF magic, ONNX protobuf)."""
    mlflow: Mapping[str, Any] = field(default_factory=dict)
    """``model.parameters.mlflow`` when the ModelKit came from MLflow."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """A model's ``config.json`` facts when known (architectures, model_type)."""

    @property
    def name(self) -> str:
        """The model's name for servers and labels."""
        return self.kitfile.package.name or (self.kitfile.model.name if self.kitfile.model else "") or "model"

    def has_file(self, name: str) -> bool:
        """A top-level layer path with this name (``MLmodel``, ``config.json``)."""
        return any(PurePosixPath(f).name == name for f in self.files)

    def describe(self) -> str:
        """What detection saw, for the "no runtime fits" error."""
        parts = [
            f"model.path={self.model_path or '-'}",
            f"format={self.model_format or '-'}",
            f"framework={self.framework or '-'}",
            f"MLmodel={'yes' if self.has_file('MLmodel') or self.mlflow else 'no'}",
        ]
        return ", ".join(parts)


@dataclass(frozen=True)
class Plan:
    """A runtime's part of the context."""

    base_image: str
    port: int
    health_path: str
    entrypoint: list[str]
    install: list[str] = field(default_factory=list)
    """Dockerfile instructions run as root after the base (``RUN pip install …``)."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Context files under ``kitbridge/`` (server code, requirements), path -> text."""
    env: Mapping[str, str] = field(default_factory=dict)
    healthcheck: list[str] | None = None
    """Exec-form health check; None: kitbridge's Python probe of ``health_path``."""
    sample_request: str = ""
    """A curl command for the README (the protocol's own request shape)."""
    notes: list[str] = field(default_factory=list)
    """README paragraphs (GPU needs, protocol)."""
    build_files: Mapping[str, str] = field(default_factory=dict)
    """Model files the build needs even in mounted mode (requirements), context path -> model path."""


@runtime_checkable
class Runtime(Protocol):
    """One way of serving a model. Plugins implement it; constructible without arguments."""

    name: ClassVar[str]
    description: ClassVar[str]

    def detect(self, facts: ModelFacts) -> str | None:
        """Why this runtime fits the model (a short reason), or None when it does not."""
        ...

    def plan(self, facts: ModelFacts, *, mode: str, port: int | None, base_image: str | None) -> Plan:
        """The runtime's part of the context for this model."""
        ...


def runtime_targets() -> dict[str, str]:
    """runtime -> ``module:Class``: the built-ins, then plugins (which cannot replace a built-in)."""
    out = dict(BUILTIN_RUNTIMES)
    if plugins_disabled():
        return out
    try:
        found = list(entry_points(group=EXPORTER_GROUP))
    except Exception as e:  # unreadable metadata of some installed distribution
        warnings.warn(f"cannot read {EXPORTER_GROUP} entry points: {e}", PluginWarning, stacklevel=2)
        found = []
    for ep in found:
        out.setdefault(ep.name.lower(), ep.value.strip())
    return out


def load_runtime(name: str) -> Runtime:
    """Instantiate the runtime registered under ``name``; UsageError listing the others when unknown."""
    targets = runtime_targets()
    target = targets.get(name.lower())
    if target is None:
        raise UsageError(f"unknown runtime {name!r}", f"use auto or one of: {', '.join(sorted(targets))}")
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        runtime = obj()
    except Exception as e:  # a plugin may fail in any way
        raise KitbridgeError(
            f"the exporter runtime {name!r} ({target}) cannot be loaded: {type(e).__name__}: {e}",
            "reinstall or remove the plugin; KITBRIDGE_NO_PLUGINS=1 uses built-ins only",
        ) from e
    return runtime  # type: ignore[no-any-return]


def pick_runtime(facts: ModelFacts, requested: str) -> tuple[Runtime, str]:
    """The runtime for ``--runtime`` (``auto`` detects): the runtime and why it was chosen."""
    if requested != "auto":
        runtime = load_runtime(requested)
        return runtime, runtime.detect(facts) or f"--runtime {requested}"
    names: Sequence[str] = [*AUTO_ORDER, *sorted(n for n in runtime_targets() if n not in BUILTIN_RUNTIMES)]
    for name in names:
        runtime = load_runtime(name)
        reason = runtime.detect(facts)
        if reason:
            return runtime, reason
    raise UsageError(
        f"no runtime fits {facts.reference} ({facts.describe()})",
        f"pick one with --runtime ({', '.join(sorted(runtime_targets()))})",
    )
