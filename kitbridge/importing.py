"""``init`` and ``import``: a source becomes a SourceTree, a profile, a generated Kitfile, and a ModelKit."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitbridge.converters.importers.base import Provenance, SourceFile, SourceTree, import_source
from kitbridge.converters.importers.local import materialize
from kitbridge.converters.importers.mlflow import mlflow_parameters
from kitbridge.errors import UsageError
from kitbridge.formats.origin import PackOrigin
from kitbridge.home import home_dir
from kitbridge.kitfile import Kitfile, clean_path, dump_kitfile, read_kitfile, validate_kitfile
from kitbridge.kitfile.generate import GenerationFacts, generate_kitfile, write_kitfile
from kitbridge.oci.reference import Reference
from kitbridge.pack import PackResult, pack
from kitbridge.profile import ModelProfile, model_parameters, profile_files
from kitbridge.profile.modelcard import card_from_metadata
from kitbridge.progress import Progress
from kitbridge.provenance import options_key, provenance_annotations
from kitbridge.transfer import (
    RegistryOptions,
    TransferResult,
    push,
    push_manifest,
    registry_has_blobs,
    require_registry,
)


@dataclass(frozen=True)
class ImportPlan:
    """What an import will pack: the files, what they are, and the Kitfile (nothing written yet)."""

    source: str
    tree: SourceTree
    profile: ModelProfile
    kitfile: Kitfile
    kitfile_generated: bool


def default_name(tree: SourceTree) -> str:
    """A package name from the source: the HF repo name, the MLflow model name, else the folder name."""
    repo = tree.provenance.extra.get("hf.repo_id", "")
    base = (
        repo.rsplit("/", 1)[-1]
        if repo
        else tree.provenance.extra.get("mlflow.default_name") or tree.root.name
    )
    return base or "model"


def facts_for(profile: ModelProfile, tree: SourceTree) -> GenerationFacts:
    """What the profile knows, in the shape the Kitfile generator takes."""
    framework = profile.framework or profile.library
    roles: dict[str, Any] = dict(profile.roles)
    roles.update({f.path: f.role for f in tree.files if f.role is not None})
    params = model_parameters(profile, tree.provenance.revision)
    if tree.provenance.importer != "file":
        params["source"] = tree.provenance.source_uri
        if url := source_url(tree.provenance):
            params["sourceURL"] = url
        if ml := mlflow_parameters(tree.provenance):
            params["mlflow"] = ml
    return GenerationFacts(
        description=profile.description or profile.title,
        license=profile.license or (tree.provenance.license or ""),
        model_name=profile.title,
        framework=framework,
        format=profile.format,
        parameters=params or None,
        roles=roles,
    )


def source_url(prov: Provenance) -> str | None:
    """A web page of the source (the Hub tree at the commit, the MLflow UI page), when there is one."""
    return prov.extra.get("hf.url") or prov.extra.get("mlflow.url") or None


def with_source_facts(profile: ModelProfile, provenance: Provenance) -> ModelProfile:
    """Fill what the files did not say from what the source publishes (HF ``cardData``, pipeline tag)."""
    if not provenance.card and not provenance.extra:
        return profile
    card = card_from_metadata(provenance.card)
    task = profile.task or provenance.extra.get("hf.pipeline_tag", "") or (card.pipeline_tag or "")
    return dataclasses.replace(
        profile,
        task=task,
        license=profile.license or (card.spdx_licenses[0] if card.spdx_licenses else ""),
        framework=profile.framework
        or provenance.extra.get("hf.library_name", "")
        or (card.library_name or ""),
        languages=profile.languages or card.languages,
        base_models=profile.base_models or card.base_models,
        datasets=profile.datasets or card.datasets,
        tags=profile.tags or card.tags,
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def profile_tree(tree: SourceTree) -> ModelProfile:
    """Profile a tree's files where they are (headers only): in place, or through a view of symlinks.

    A tree whose files do not all sit at ``root/path`` (HF cache blobs, remote stand-ins) is
    profiled through a temporary directory of symlinks; files that are not there yet (a dry run
    that downloaded nothing) are left out of the profile.
    """
    if all(_same_file(tree.root / f.path, f.abspath) for f in tree.files):
        return with_source_facts(profile_files(tree.root, [f.path for f in tree.files]), tree.provenance)
    present = [f for f in tree.files if f.abspath.exists()]
    with tempfile.TemporaryDirectory(prefix="kitbridge-view-") as view:
        for f in present:
            link = Path(view) / f.path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.abspath)
        profile = profile_files(view, [f.path for f in present])
    return with_source_facts(profile, tree.provenance)


def plan_import(
    source: str,
    *,
    name: str | None = None,
    kitfile: str | os.PathLike[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    warn: Callable[[str], None] | None = None,
    work_dir: Path | None = None,
    **options: Any,
) -> ImportPlan:
    """Resolve the source, profile its files and generate (or read, with ``kitfile``) the Kitfile.

    ``options`` go to the importer when it takes them (``quant``, ``progress``, ``dry_run``,
    ``remote_filter``, ``concurrency``; see :func:`import_source`).
    """
    tree = import_source(
        source, include=include, exclude=exclude, revision=revision, work_dir=work_dir, warn=warn, **options
    )
    profile = profile_tree(tree)
    if warn is not None:
        for w in profile.warnings:
            warn(w)
    if kitfile is not None:
        kf = read_kitfile(kitfile)
        validate_kitfile(kf)
        return ImportPlan(source, tree, profile, kf, kitfile_generated=False)
    kf = generate_kitfile(tree, name=name or default_name(tree), facts=facts_for(profile, tree))
    return ImportPlan(source, tree, profile, kf, kitfile_generated=True)


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote."""

    path: Path
    kitfile: Kitfile
    profile: ModelProfile
    kitignore: Path | None


def init(
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
) -> InitResult:
    """Write ``DIR/Kitfile`` describing what is in DIR (an existing Kitfile is kept unless ``force``).

    Junk the importer skips (``.git``, ``.DS_Store`` …) would still be packed by a ``code: .`` entry,
    so when there is any and no ``.kitignore`` yet, one is written that lists it.
    """
    d = Path(directory)
    if not d.is_dir():
        raise UsageError(f"{str(d)!r} is not a directory", "pass the folder that holds the model files")
    plan = plan_import(str(d), name=name, warn=warn)
    path = write_kitfile(d, plan.kitfile, force=force)
    ignore = None
    if plan.tree.skipped and not (d / ".kitignore").exists():
        ignore = d / ".kitignore"
        lines = ["# written by kitbridge init: files kitbridge never packs", *plan.tree.skipped]
        ignore.write_text("\n".join(lines) + "\n")
    return InitResult(path, plan.kitfile, plan.profile, ignore)


@dataclass(frozen=True)
class ImportResult:
    """What ``import`` did: the plan, and the pack (and push) unless it was a dry run."""

    plan: ImportPlan
    packed: PackResult | None
    pushed: TransferResult | None


_REF_CHARS = re.compile(r"[^a-z0-9._-]+")


def default_reference(name: str, tag: str | None = None) -> str:
    """``<name>:<tag>`` (default ``latest``) in the local store, the name made a valid repository."""
    repo = _REF_CHARS.sub("-", name.lower()).strip("-._") or "model"
    return f"{repo}:{tag or 'latest'}"


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    """A private scratch directory for one import (remote stand-ins), removed afterwards."""
    parent = home_dir() / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="import-", dir=parent) as d:
        yield Path(d)


def _registry_filter(
    target: Reference, options: RegistryOptions | None
) -> Callable[[Sequence[Any]], set[str]]:
    """For ``--push``: which not-yet-downloaded files the target registry already has, by their sha256."""

    def known(files: Sequence[Any]) -> set[str]:
        by_digest = {f"sha256:{f.sha256}": f.path for f in files if f.sha256}
        have = registry_has_blobs(target, sorted(by_digest), options)
        return {by_digest[d] for d in have}

    return known


def _raw_paths(kf: Kitfile, fmt: str, layer_format: str | None) -> set[str] | None:
    """Paths that will be whole raw layers of their own; None means "every single file" (ModelPack)."""
    if layer_format == "tar":
        return set()
    if fmt == "modelpack" and layer_format is None:
        return None  # single files are raw, and a model directory is split into per-file raw layers
    if layer_format == "raw":
        return {clean_path(e.path) for e in kf.layer_entries()}
    return set()


def _unpackable_remote(tree: SourceTree, kf: Kitfile, fmt: str, layer_format: str | None) -> list[str]:
    """Remote files that would not be a raw layer of their own: they must be downloaded after all."""
    raw = _raw_paths(kf, fmt, layer_format)
    entries = {clean_path(e.path) for e in kf.layer_entries()}
    out = []
    for f in tree.remote_files:
        if raw is None:
            ok = f.path in entries or (kf.model is not None and _under(f.path, clean_path(kf.model.path)))
        else:
            ok = f.path in raw
        if not ok:
            out.append(f.path)
    return out


def _under(path: str, directory: str) -> bool:
    return directory in ("", ".") or path.startswith(directory.rstrip("/") + "/")


def _origin(plan: ImportPlan, remote: Sequence[SourceFile], options: str = "") -> PackOrigin:
    prov = plan.tree.provenance
    return PackOrigin(
        annotations=provenance_annotations(plan.source, prov.revision, options),
        source_url=source_url(prov) or (prov.source_uri if prov.importer != "file" else None),
        revision=prov.revision,
        profile=plan.profile,
        digests={f.path: f"sha256:{f.sha256}" for f in plan.tree.files if f.sha256},
        remote={f.path: f"sha256:{f.sha256}" for f in remote if f.sha256},
        file_mtime=_rfc3339(prov.extra.get("hf.lastModified")),
    )


def _rfc3339(iso: str | None) -> str | None:
    """``2024-01-02T03:04:05+00:00`` (Python's isoformat) as ``2024-01-02T03:04:05Z``."""
    if not iso:
        return None
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def import_model(
    source: str,
    reference: str | None = None,
    *,
    kitfile: str | os.PathLike[str] | None = None,
    fmt: str = "kitops",
    layer_format: str | None = None,
    compression: str = "none",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    quant: str | None = None,
    tracking_uri: str | None = None,
    allow_unfinished: bool | None = None,
    include_run_artifacts: bool | None = None,
    dry_run: bool = False,
    push_after: bool = False,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import a source as a ModelKit: plan it, then (unless ``dry_run``) pack it and optionally push.

    With ``push_after`` and raw layers, files the importer has not downloaded yet and the target
    registry already holds (by sha256) are not downloaded at all: the manifest is pushed over the
    registry's blobs, and the ModelKit is not tagged in the local store (it lacks those blobs).
    """
    if fmt not in ("kitops", "modelpack"):
        raise UsageError(f"unknown format {fmt!r}", "use --format kitops or --format modelpack")
    if layer_format not in (None, "tar", "raw"):
        raise UsageError(f"unknown layer format {layer_format!r}", "use --layer-format tar or raw")
    target = Reference.parse(reference) if reference else None
    if push_after and target is not None:
        require_registry(target)  # before any byte is downloaded
    with _work_dir() as work:
        remote_filter = None
        if push_after and target is not None and _raw_paths_possible(fmt, layer_format):
            remote_filter = _registry_filter(target, options)
        plan = plan_import(
            source,
            kitfile=kitfile,
            include=include,
            exclude=exclude,
            revision=revision,
            warn=warn,
            work_dir=work,
            quant=quant,
            tracking_uri=tracking_uri,
            allow_unfinished=allow_unfinished,
            include_run_artifacts=include_run_artifacts,
            progress=progress,
            dry_run=True if dry_run else None,
            remote_filter=remote_filter,
            concurrency=options.concurrency if options is not None else None,
        )
        if dry_run:
            return ImportResult(plan, None, None)
        late = _unpackable_remote(plan.tree, plan.kitfile, fmt, layer_format)
        if late:
            assert plan.tree.fetch is not None
            plan = dataclasses.replace(plan, tree=plan.tree.fetch(late))
        remote = plan.tree.remote_files
        name = plan.kitfile.package.name or default_name(plan.tree)
        ref = reference or default_reference(name, plan.tree.provenance.default_tag)
        with (
            materialize(plan.tree, warn=warn) as ctx,
            tempfile.TemporaryDirectory(prefix="kitbridge-kf-") as tmp,
        ):
            kf_path = Path(tmp) / "Kitfile"
            kf_path.write_text(dump_kitfile(plan.kitfile))
            packed = pack(
                ctx.path,
                ref,
                kitfile=kf_path,
                fmt=fmt,
                layer_format=layer_format,  # type: ignore[arg-type]
                compression=compression,  # type: ignore[arg-type]
                warn=warn,
                progress=progress,
                origin=_origin(
                    plan,
                    remote,
                    import_options_key(
                        fmt, layer_format, compression, include, exclude, quant, include_run_artifacts
                    ),
                ),
            )
    if not push_after:
        return ImportResult(plan, packed, None)
    if packed.tagged:
        return ImportResult(plan, packed, push(packed.reference, options=options, progress=progress))
    pushed = push_manifest(packed.manifest, packed.reference, options=options, progress=progress)
    return ImportResult(plan, packed, pushed)


def import_options_key(
    fmt: str,
    layer_format: str | None = None,
    compression: str = "none",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    quant: str | None = None,
    include_run_artifacts: bool | None = None,
) -> str:
    """The options an import records on its manifest (batch compares them before redoing an import)."""
    return options_key(
        format=fmt,
        layer_format=layer_format,
        compression=compression if compression != "none" else None,
        include=list(include),
        exclude=list(exclude),
        quant=quant,
        include_run_artifacts=include_run_artifacts,
    )


def _raw_paths_possible(fmt: str, layer_format: str | None) -> bool:
    return layer_format == "raw" or (fmt == "modelpack" and layer_format is None)
