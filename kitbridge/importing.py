"""``init`` and ``import``: a source becomes a SourceTree, a profile, a generated Kitfile, and a ModelKit."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kitbridge.converters.importers.base import SourceTree, import_source
from kitbridge.converters.importers.local import materialize
from kitbridge.errors import UsageError
from kitbridge.kitfile import Kitfile, dump_kitfile, read_kitfile, validate_kitfile
from kitbridge.kitfile.generate import GenerationFacts, generate_kitfile, write_kitfile
from kitbridge.pack import PackResult, pack
from kitbridge.profile import ModelProfile, model_parameters, profile_files
from kitbridge.progress import Progress
from kitbridge.transfer import RegistryOptions, TransferResult, push


@dataclass(frozen=True)
class ImportPlan:
    """What an import will pack: the files, what they are, and the Kitfile (nothing written yet)."""

    source: str
    tree: SourceTree
    profile: ModelProfile
    kitfile: Kitfile
    kitfile_generated: bool


def default_name(tree: SourceTree) -> str:
    """A package name from the source: the HF repo name, else the folder name."""
    repo = tree.provenance.extra.get("hf.repo_id", "")
    base = repo.rsplit("/", 1)[-1] if repo else tree.root.name
    return base or "model"


def facts_for(profile: ModelProfile, tree: SourceTree) -> GenerationFacts:
    """What the profile knows, in the shape the Kitfile generator takes."""
    framework = profile.framework or profile.library
    return GenerationFacts(
        description=profile.description or profile.title,
        license=profile.license or (tree.provenance.license or ""),
        model_name=profile.title,
        framework=framework,
        format=profile.format,
        parameters=model_parameters(profile, tree.provenance.revision) or None,
        roles={k: v for k, v in profile.roles.items()},  # type: ignore[misc]
    )


def plan_import(
    source: str,
    *,
    name: str | None = None,
    kitfile: str | os.PathLike[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> ImportPlan:
    """Resolve the source, profile its files and generate (or read, with ``kitfile``) the Kitfile."""
    tree = import_source(source, include=include, exclude=exclude, revision=revision, warn=warn)
    profile = profile_files(tree.root, [f.path for f in tree.files])
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


def default_reference(name: str) -> str:
    """``<name>:latest`` in the local store, the name made a valid repository."""
    repo = _REF_CHARS.sub("-", name.lower()).strip("-._") or "model"
    return f"{repo}:latest"


def import_model(
    source: str,
    reference: str | None = None,
    *,
    kitfile: str | os.PathLike[str] | None = None,
    fmt: str = "kitops",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    dry_run: bool = False,
    push_after: bool = False,
    options: RegistryOptions | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import a source as a ModelKit: plan it, then (unless ``dry_run``) pack it and optionally push."""
    if fmt not in ("kitops", "modelpack"):
        raise UsageError(f"unknown format {fmt!r}", "use --format kitops or --format modelpack")
    plan = plan_import(
        source, kitfile=kitfile, include=include, exclude=exclude, revision=revision, warn=warn
    )
    if dry_run:
        return ImportResult(plan, None, None)
    ref = reference or default_reference(plan.kitfile.package.name or default_name(plan.tree))
    with materialize(plan.tree, warn=warn) as ctx, tempfile.TemporaryDirectory(prefix="kitbridge-kf-") as tmp:
        kf_path = Path(tmp) / "Kitfile"
        kf_path.write_text(dump_kitfile(plan.kitfile))
        packed = pack(ctx.path, ref, kitfile=kf_path, fmt=fmt, warn=warn, progress=progress)
    pushed = push(packed.reference, options=options, progress=progress) if push_after else None
    return ImportResult(plan, packed, pushed)
