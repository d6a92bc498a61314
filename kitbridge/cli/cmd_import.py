"""``kitbridge init`` and ``kitbridge import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kitbridge.cli.app import app, out
from kitbridge.cli.cmd_pack import CompressionChoice, FormatChoice, LayerFormatChoice
from kitbridge.importing import ImportPlan, import_model, init
from kitbridge.kitfile import dump_kitfile, kitfile_json


@app.command("init")
def init_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The model folder.", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="Package name (default: the folder's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing Kitfile.")] = False,
) -> None:
    """Write DIR/Kitfile from what is in DIR: files sorted into layers, facts read from the model."""
    o = out(ctx)
    result = init(directory, name=name, force=force, warn=o.warn)
    if result.kitignore is not None:
        o.info(f"wrote {result.kitignore} (files kitbridge skips: VCS and OS junk)")
    o.result(
        f"wrote {result.path}\n\n{dump_kitfile(result.kitfile)}",
        {"path": str(result.path), "kitfile": _kitfile_doc(result.kitfile)},
    )


def _kitfile_doc(kf: Any) -> Any:
    import json

    return json.loads(kitfile_json(kf))


def _plan_doc(plan: ImportPlan) -> dict[str, Any]:
    p = plan.profile
    return {
        "source": plan.source,
        "root": str(plan.tree.root),
        "revision": plan.tree.provenance.revision,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256, "cached": _cached(plan, f.path)}
            for f in plan.tree.files
        ],
        "downloadBytes": sum(f.size for f in plan.tree.files if not _cached(plan, f.path)),
        "skipped": list(plan.tree.skipped),
        "layers": [{"kind": e.kind, "path": e.path} for e in plan.kitfile.layer_entries()],
        "profile": {
            "format": p.format,
            "framework": p.framework,
            "paramSize": p.param_size,
            "precision": p.precision,
            "license": p.license,
            "unsafePickles": {k: list(v) for k, v in p.unsafe_pickles.items()},
        },
        "kitfile": _kitfile_doc(plan.kitfile),
    }


def _cached(plan: ImportPlan, path: str) -> bool:
    f = plan.tree.file(path)
    return not f.remote and f.abspath.is_file()


def _plan_text(plan: ImportPlan) -> str:
    prov = plan.tree.provenance
    head = f"source: {plan.source}"
    if prov.revision:
        head += f" @ {prov.revision}"
    to_get = sum(f.size for f in plan.tree.files if not _cached(plan, f.path))
    total = _human(plan.tree.total_size)
    lines = [f"{head} ({len(plan.tree.files)} files, {total}; to download: {_human(to_get)})"]
    for f in plan.tree.files:
        state = "cached" if _cached(plan, f.path) else "download"
        lines.append(f"  {state:<8} {_human(f.size):>10}  {f.path}")
    for e in plan.kitfile.layer_entries():
        lines.append(f"  layer {e.kind:<10} {e.path}")
    if plan.tree.skipped:
        lines.append(f"  left out: {', '.join(plan.tree.skipped)}")
    lines += ["", dump_kitfile(plan.kitfile)]
    return "\n".join(lines)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="./dir, file://…, or a scheme an importer handles.")],
    tag: Annotated[str | None, typer.Option("-t", "--tag", help="Reference (default: NAME:latest).")] = None,
    kitfile: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("-f", "--file", help="Use this Kitfile instead of generating one."),
    ] = None,
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Artifact format.")] = FormatChoice.kitops,
    layer_format: Annotated[
        Optional[LayerFormatChoice],  # noqa: UP045
        typer.Option("--layer-format", help="tar or raw layers (default: the format's own choice)."),
    ] = None,
    compression: Annotated[
        CompressionChoice, typer.Option("--compression", help="Compression of tar layers.")
    ] = CompressionChoice.none,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only files matching GLOB.")] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Leave out files matching GLOB.")
    ] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Source revision.")] = None,  # noqa: UP045
    quant: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--quant", help="The GGUF quantization to take from a repo that has several (Q4_K_M…)."),
    ] = None,
    tracking_uri: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--tracking-uri", help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)."),
    ] = None,
    allow_unfinished: Annotated[
        bool, typer.Option("--allow-unfinished", help="MLflow: import a run that is not FINISHED.")
    ] = False,
    include_run_artifacts: Annotated[
        bool,
        typer.Option(
            "--include-run-artifacts", help="MLflow: add the run's other artifacts (run-artifacts/)."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; write nothing.")] = False,
    push_after: Annotated[bool, typer.Option("--push", help="Push after packing.")] = False,
) -> None:
    """Import a model (a folder, or any source an importer plugin handles) as a ModelKit."""
    o = out(ctx)
    with o.progress() as bars:
        result = import_model(
            source,
            tag,
            kitfile=kitfile,
            fmt=fmt.value,
            layer_format=layer_format.value if layer_format is not None else None,
            compression=compression.value,
            include=include or [],
            exclude=exclude or [],
            revision=revision,
            quant=quant,
            tracking_uri=tracking_uri,
            allow_unfinished=allow_unfinished or None,
            include_run_artifacts=include_run_artifacts or None,
            dry_run=dry_run,
            push_after=push_after,
            options=o.registry,
            progress=bars,
            warn=o.warn,
        )
    doc = _plan_doc(result.plan)
    if result.packed is None:
        o.result(_plan_text(result.plan), {"dryRun": True, **doc})
        return
    doc.update(
        reference=result.packed.reference.name,
        digest=result.packed.manifest.digest,
        stored=result.packed.tagged,
        layers=[
            {"digest": d.digest, "size": d.size, "mediaType": d.media_type} for d in result.packed.layers
        ],
    )
    if result.pushed is not None:
        doc["pushed"] = result.pushed.reference.name
        doc["uploadedBytes"] = result.pushed.bytes_sent
    if not result.packed.tagged:
        o.info(
            f"{result.packed.reference.name} is only in the registry: it reuses blobs the registry had, "
            "which were never downloaded (kitbridge pull fetches it)"
        )
    o.result(f"{result.packed.reference.name}\n{result.packed.manifest.digest}", doc)
