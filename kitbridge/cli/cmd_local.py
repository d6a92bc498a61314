"""Commands over the local store: unpack, inspect, info, list, tag, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kitbridge.cli.app import app, out
from kitbridge.errors import UsageError
from kitbridge.kitfile import dump_kitfile
from kitbridge.modelkits import info, inspect, list_modelkits, remove, tag
from kitbridge.unpack import unpack


def human_size(n: int) -> str:
    """Sizes as ``kit list`` shows them (binary units, one decimal)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@app.command("unpack")
def unpack_cmd(
    ctx: typer.Context,
    reference: Annotated[
        str, typer.Argument(help="ModelKit reference in the local store.", show_default=False)
    ],
    directory: Annotated[
        Path, typer.Option("-d", "--dir", help="Directory to unpack into.", show_default=False)
    ],
    filters: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--filter",
            help="type1,type2[:name,…] with types kitfile, model, datasets, code, docs, prompts. Repeatable.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("-o", "--overwrite", help="Replace existing files.")] = False,
    ignore_existing: Annotated[
        bool, typer.Option("--ignore-existing", help="Keep existing files and skip them.")
    ] = False,
) -> None:
    """Extract a ModelKit's files (and Kitfile) into a directory; nothing is written on error."""
    if overwrite and ignore_existing:
        raise UsageError("--overwrite and --ignore-existing exclude each other", "pick one")
    o = out(ctx)
    with o.progress() as bars:
        result = unpack(
            reference,
            directory,
            filters=filters or [],
            overwrite=overwrite,
            ignore_existing=ignore_existing,
            options=o.registry,
            progress=bars,
        )
    o.result(
        f"unpacked {len(result.files)} files to {directory}",
        {"reference": result.reference.name, "directory": str(directory), "files": result.files},
    )


@app.command("inspect")
def inspect_cmd(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Reference in the local store.", show_default=False)],
    remote: Annotated[bool, typer.Option("--remote", help="Read the manifest from the registry.")] = False,
) -> None:
    """Print the manifest JSON (and its digest)."""
    o = out(ctx)
    if remote:
        from kitbridge.transfer import remote_manifest

        data, digest = remote_manifest(reference, o.registry)
    else:
        data, digest = inspect(reference)
    manifest = json.loads(data)
    o.result(
        json.dumps({"digest": digest, "manifest": manifest}, indent=2),
        {"digest": digest, "manifest": manifest},
    )


@app.command("info")
def info_cmd(
    ctx: typer.Context,
    reference: Annotated[
        str, typer.Argument(help="ModelKit reference in the local store.", show_default=False)
    ],
) -> None:
    """Print the ModelKit's Kitfile as YAML."""
    o = out(ctx)
    kf = info(reference)
    text = dump_kitfile(kf)
    if o.json_mode:
        from kitbridge.kitfile import kitfile_json

        o.result(None, json.loads(kitfile_json(kf)))
    else:
        o.result(text)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    repository: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="A registry repository: list its tags instead.", show_default=False),
    ] = None,
) -> None:
    """List the ModelKits in the local store, or the tags of a registry repository."""
    o = out(ctx)
    if repository is not None:
        from kitbridge.transfer import remote_tags

        tags = remote_tags(repository, o.registry)
        text = "\n".join(tags) if tags else f"no tags in {repository}"
        o.result(text, {"repository": repository, "tags": tags})
        return
    rows = list_modelkits()
    data = [
        {
            "reference": r.reference.name,
            "repository": r.reference.repo_name,
            "tag": r.reference.tag,
            "name": r.name,
            "size": r.size,
            "digest": r.digest,
        }
        for r in rows
    ]
    table = [("REPOSITORY", "TAG", "NAME", "SIZE", "DIGEST")]
    for r in rows:
        repo = r.reference.repo_name.removeprefix("localhost/")
        table.append((repo, r.reference.tag or "<none>", r.name, human_size(r.size), r.digest))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)
    text = "\n".join(lines)
    o.result(text, data)


@app.command("tag")
def tag_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Existing reference.", show_default=False)],
    destination: Annotated[str, typer.Argument(help="New reference.", show_default=False)],
) -> None:
    """Give a stored ModelKit another reference."""
    dst = tag(source, destination)
    out(ctx).result(dst.name, {"source": source, "reference": dst.name})


@app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Reference to remove.", show_default=False)],
) -> None:
    """Remove a reference; blobs nothing else uses are deleted."""
    o = out(ctx)
    desc, deleted = remove(reference)
    if deleted is None:
        o.warn(
            "another kitbridge process is writing the store; unused blobs will be deleted by a later remove"
        )
    o.result(
        f"removed {reference} ({desc.digest}); {len(deleted or [])} blobs deleted",
        {"reference": reference, "digest": desc.digest, "deletedBlobs": deleted or []},
    )
