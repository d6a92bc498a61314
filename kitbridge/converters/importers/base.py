"""What an importer hands on (``SourceTree``), the ``Importer`` protocol, and the scheme registry.

Importers register through the entry-point group ``kitbridge.importers``: the entry point's *name* is
the URI scheme it serves (``hf``, ``runs``, ``models``, ``mlflow-artifacts``, ``file``) and its value
is the importer class (``package.module:Class``). Keying by scheme lets :func:`importer_for` import
only the one module a source needs (the MLflow importer is not imported to read a local folder), and
lets the "unknown scheme" message list every importer without importing any of them.

Built-in importers are registered the same way. Until the package metadata carries their entry
points (``[project.entry-points."kitbridge.importers"]`` in pyproject.toml, effective on the next
install), :data:`BUILTIN_IMPORTERS` stands in for them: :func:`importer_specs`, the one lookup
function, merges that table with what ``importlib.metadata`` finds, so a built-in listed in both
places counts once. ``KITBRIDGE_NO_PLUGINS=1`` keeps only built-ins (entry points of the kitbridge
distribution itself, and the table).
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from kitbridge.errors import KitbridgeError, UsageError
from kitbridge.kitfile.generate import Role

ENTRY_POINT_GROUP = "kitbridge.importers"
NO_PLUGINS_ENV = "KITBRIDGE_NO_PLUGINS"
LOCAL_SCHEME = "file"
"""The scheme of ``file://`` URIs; a source without a scheme (``./dir``, ``/abs``, ``dir``) uses it too."""

_DISTRIBUTION = "kitbridge"

BUILTIN_IMPORTERS: dict[str, str] = {
    "file": "kitbridge.converters.importers.local:LocalImporter",
    "hf": "kitbridge.converters.importers.huggingface:HFImporter",
    "runs": "kitbridge.converters.importers.mlflow:MLflowImporter",
    "models": "kitbridge.converters.importers.mlflow:MLflowImporter",
    "mlflow-artifacts": "kitbridge.converters.importers.mlflow:MLflowImporter",
}
"""scheme -> ``module:Class`` of the built-in importers, exactly as their entry points declare them.

Whoever adds a built-in importer adds one line here and the same line to pyproject.toml.
"""


# --- what an importer produces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: where it goes in the ModelKit and where its bytes are now."""

    path: str
    """Relative path inside the ModelKit, ``/``-separated, no ``.`` or ``..`` segments."""
    abspath: Path
    """The file to read (for a symlink, its resolved target)."""
    size: int
    sha256: str | None = None
    """Lowercase hex sha256 when the source already knows it (HF LFS, an HF cache blob name)."""
    role: Role | None = None
    """What the importer knows the file is for (``weights``, ``tokenizer``, ...); None when it does not."""
    remote: bool = False
    """The bytes were not fetched: ``abspath`` is a sparse stand-in holding only the file's header.

    Only files with a known ``sha256`` are left remote, and only when the caller said a registry
    already has that blob; they can be packed only as raw layers (see ``SourceTree.fetch``).
    """


@dataclass(frozen=True)
class Provenance:
    """Where a source came from: enough to say which bytes these are and under what terms."""

    source_uri: str
    """The source as a URI (``hf://org/name``, ``runs:/<id>/model``, ``file:///abs/dir``)."""
    importer: str = ""
    """The scheme of the importer that resolved it."""
    revision: str | None = None
    """The resolved immutable revision (git commit sha, MLflow run id / model version); None if none."""
    license: str | None = None
    """SPDX identifier (or the source's own license string) when the source declares one."""
    card: Mapping[str, Any] = field(default_factory=dict)
    """Model-card metadata as the source publishes it (HF ``cardData``, README front matter)."""
    params: Mapping[str, str] = field(default_factory=dict)
    """MLflow run parameters."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """MLflow run metrics (latest value of each)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Source tags (MLflow tags, HF tags as ``tag -> ""``)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Importer-specific facts, keys prefixed by the importer (``hf.repo_id``)."""
    default_tag: str | None = None
    """The tag an import gets when none is given (HF: the short commit sha); None means ``latest``."""


@dataclass(frozen=True)
class SourceTree:
    """What an importer hands on: a root directory, the files that belong to the model, their origin."""

    root: Path
    """The directory the relative paths are relative to (absolute, symlinks resolved)."""
    files: list[SourceFile]
    """Every file, in walk order (per directory sorted by name bytes, depth first)."""
    provenance: Provenance
    skipped: tuple[str, ...] = ()
    """Top-most paths under ``root`` that are left out (VCS/OS junk, ``--include``/``--exclude``, non-files).

    Empty means ``files`` is everything under ``root``.
    """
    fetch: Callable[[Sequence[str]], SourceTree] | None = field(default=None, compare=False, repr=False)
    """Fetch files that were left ``remote``: returns the tree with them local. None: nothing is remote."""

    @property
    def remote_files(self) -> list[SourceFile]:
        """Files whose bytes were not fetched."""
        return [f for f in self.files if f.remote]

    @property
    def total_size(self) -> int:
        """Bytes in all files."""
        return sum(f.size for f in self.files)

    def file(self, path: str) -> SourceFile:
        """The file at a relative path (KeyError when the tree has none)."""
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


# --- the protocol ---------------------------------------------------------------------------------------


@runtime_checkable
class Importer(Protocol):
    """A source of model files. Plugins implement this; the class must be constructible without arguments.

    ``schemes`` lists the URI schemes the importer serves (without ``:``); its entry points are
    named after them. ``resolve`` turns a source string into a :class:`SourceTree`: it may download
    into ``work_dir`` (the caller owns and cleans it; None means the importer picks a place, e.g. a
    cache), it filters files with ``include``/``exclude`` globs, and it pins ``revision`` (None: the
    source's default) to an immutable one in the provenance. It raises only kitbridge errors.
    """

    schemes: ClassVar[tuple[str, ...]]

    def resolve(
        self,
        source: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        revision: str | None = None,
        work_dir: Path | None = None,
    ) -> SourceTree: ...


# --- the registry ---------------------------------------------------------------------------------------


class PluginWarning(UserWarning):
    """An importer or exporter plugin could not be loaded (the rest of kitbridge still works)."""


@dataclass(frozen=True)
class ImporterSpec:
    """One registered importer for one scheme, not yet imported."""

    scheme: str
    target: str
    """``module:Class`` as the entry point names it."""
    distribution: str
    """The distribution that registers it (``kitbridge`` for built-ins)."""

    @property
    def builtin(self) -> bool:
        """Whether kitbridge itself ships it."""
        return self.distribution == _DISTRIBUTION

    @property
    def label(self) -> str:
        """A short name for messages: the class name and, for plugins, the distribution."""
        name = self.target.rpartition(":")[2] or self.target
        return name if self.builtin else f"{name} (from {self.distribution})"


def plugins_disabled() -> bool:
    """Whether ``KITBRIDGE_NO_PLUGINS`` asks for built-ins only."""
    return os.environ.get(NO_PLUGINS_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _entry_point_distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else "unknown distribution"


def importer_specs(group: str = ENTRY_POINT_GROUP) -> list[ImporterSpec]:
    """Every registered importer: built-ins first (by scheme), then plugins (by distribution, scheme).

    Built-ins come from the kitbridge distribution's entry points merged with
    :data:`BUILTIN_IMPORTERS`; plugins from every other distribution's entry points in ``group``,
    unless ``KITBRIDGE_NO_PLUGINS=1``.
    """
    builtins: dict[tuple[str, str], ImporterSpec] = {}
    plugins: dict[tuple[str, str], ImporterSpec] = {}
    table = BUILTIN_IMPORTERS if group == ENTRY_POINT_GROUP else {}
    for scheme, target in table.items():
        builtins[scheme, target] = ImporterSpec(scheme, target, _DISTRIBUTION)
    no_plugins = plugins_disabled()
    try:
        found = list(entry_points(group=group))
    except Exception as e:  # unreadable metadata of some installed distribution
        warnings.warn(
            f"cannot read {group} entry points: {type(e).__name__}: {e}", PluginWarning, stacklevel=2
        )
        found = []
    for ep in found:
        dist = _entry_point_distribution(ep)
        spec = ImporterSpec(ep.name.lower(), ep.value.strip(), dist)
        if spec.builtin:
            builtins.setdefault((spec.scheme, spec.target), spec)
        elif not no_plugins:
            plugins.setdefault((spec.scheme, spec.target), spec)
    return sorted(builtins.values(), key=lambda s: s.scheme) + sorted(
        plugins.values(), key=lambda s: (s.distribution, s.scheme, s.target)
    )


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def source_scheme(source: str) -> str:
    """The URI scheme of a source, lowercased; ``file`` for a plain path (``./m``, ``/abs``, ``m``)."""
    m = _SCHEME_RE.match(source)
    if m is None:
        return LOCAL_SCHEME
    scheme = m.group(1)
    if len(scheme) == 1 and os.name == "nt":
        return LOCAL_SCHEME  # a drive letter: C:\models
    return scheme.lower()


def describe_importers(specs: Sequence[ImporterSpec]) -> str:
    """``LocalImporter: file: and plain paths; HFImporter: hf:`` -- one clause per importer."""
    by_target: dict[tuple[str, str], list[str]] = {}
    labels: dict[tuple[str, str], str] = {}
    for spec in specs:
        key = (spec.distribution, spec.target)
        by_target.setdefault(key, []).append(spec.scheme)
        labels[key] = spec.label
    clauses = []
    for key, schemes in by_target.items():
        names = ", ".join(f"{s}:" for s in schemes)
        if LOCAL_SCHEME in schemes:
            names += " and plain paths"
        clauses.append(f"{labels[key]}: {names}")
    return "; ".join(clauses) if clauses else "none"


def _warn_default(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def load_importer(spec: ImporterSpec) -> Importer:
    """Import and instantiate the importer a spec names; ValueError/ImportError/... when it is broken."""
    module_name, _, attr = spec.target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"entry point value {spec.target!r} is not 'module:Class'")
    obj: Any = importlib.import_module(module_name.strip())
    for part in attr.strip().split("."):
        obj = getattr(obj, part)
    instance = obj()
    if not callable(getattr(instance, "resolve", None)):
        raise TypeError(f"{spec.target} has no resolve() method")
    schemes = getattr(instance, "schemes", None)
    if not isinstance(schemes, tuple) or not all(isinstance(s, str) for s in schemes):
        raise TypeError(f"{spec.target}.schemes must be a tuple of strings, got {schemes!r}")
    if spec.scheme not in {s.lower() for s in schemes}:
        raise TypeError(f"{spec.target} is registered for scheme {spec.scheme!r} but serves {schemes!r}")
    return instance  # type: ignore[no-any-return]


def importer_for(
    source: str,
    *,
    warn: Callable[[str], None] | None = None,
) -> Importer:
    """The importer for a source, chosen by its URI scheme (a plain path is local).

    Only the importers registered for that scheme are imported. One that fails to load is skipped
    for the next one registered for the scheme (built-ins come first, so a plugin cannot shadow a
    built-in scheme; it only stands in when the built-in fails), and reported through ``warn``
    (default: a :class:`PluginWarning`); when none loads, the error says why. An unknown scheme
    is a UsageError naming every installed importer and its schemes, unless the whole string is an
    existing local path (a folder named ``v1:final``), which the local importer then takes.
    """
    report = warn or _warn_default
    scheme = source_scheme(source)
    specs = importer_specs()
    candidates = [s for s in specs if s.scheme == scheme]
    if not candidates and scheme != LOCAL_SCHEME and os.path.exists(source):
        scheme = LOCAL_SCHEME
        candidates = [s for s in specs if s.scheme == scheme]
    failures: list[str] = []
    for spec in candidates:
        try:
            importer = load_importer(spec)
        except Exception as e:  # a plugin may fail in any way; it must not take kitbridge down
            failures.append(f"{spec.label} ({spec.target}): {type(e).__name__}: {e}")
            continue
        for problem in failures:  # reported only when another importer stood in for the broken one
            report(f"importer plugin for scheme '{scheme}:' is broken and was skipped: {problem}")
        return importer
    if failures:
        raise KitbridgeError(
            f"the importer for scheme '{scheme}:' cannot be loaded: {'; '.join(failures)}",
            "reinstall or remove the broken plugin; KITBRIDGE_NO_PLUGINS=1 uses built-in importers only",
        )
    hint = f"installed importers: {describe_importers(specs)}"
    if plugins_disabled():
        hint += f"; plugins are off ({NO_PLUGINS_ENV}=1)"
    raise UsageError(f"no importer for scheme '{scheme}:' in source {source!r}", hint)


def import_source(
    source: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    work_dir: Path | None = None,
    warn: Callable[[str], None] | None = None,
    **options: Any,
) -> SourceTree:
    """Resolve a source (``hf://org/name@rev``, ``runs:/...``, ``./dir``) into a :class:`SourceTree`.

    ``options`` are importer-specific keywords (``quant``, ``progress``, ``remote_filter``...). Each
    is passed only to an importer whose ``resolve`` takes it; a non-None option the importer does not
    take is a UsageError for options the user gave (``quant``), and silently dropped for hooks.
    """
    importer = importer_for(source, warn=warn)
    accepted = _keywords(importer.resolve)
    passed: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in accepted or "**" in accepted:
            passed[key] = value
        elif key in USER_OPTIONS:
            raise UsageError(
                f"--{key.replace('_', '-')} does not apply to {source!r}",
                f"{type(importer).__name__} does not take it; drop the option",
            )
    return importer.resolve(
        source, include=include, exclude=exclude, revision=revision, work_dir=work_dir, **passed
    )


USER_OPTIONS = frozenset({"quant", "tracking_uri", "allow_unfinished", "include_run_artifacts"})
"""Importer options that come from the command line: refusing them beats ignoring them."""


def _keywords(fn: Callable[..., Any]) -> set[str]:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {"**" if p.kind is p.VAR_KEYWORD else p.name for p in params}
