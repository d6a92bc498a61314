"""``kitbridge validate`` and ``kitbridge pack``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kitbridge.cli.app import app, out
from kitbridge.kitfile import read_kitfile, validate_kitfile
from kitbridge.pack import pack


class FormatChoice(str, Enum):
    kitops = "kitops"
    modelpack = "modelpack"


class LayerFormatChoice(str, Enum):
    tar = "tar"
    raw = "raw"


class CompressionChoice(str, Enum):
    none = "none"
    gzip = "gzip"
    zstd = "zstd"


@app.command()
def validate(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A Kitfile, or a directory holding one.", show_default=False)],
) -> None:
    """Check a Kitfile's syntax, schema and kit's rules (not whether its files exist)."""
    kf = read_kitfile(path)
    validate_kitfile(kf)
    o = out(ctx)
    layers = kf.layer_entries()
    o.result(
        f"{path}: valid Kitfile ({len(layers)} layers)",
        {"valid": True, "path": str(path), "layers": len(layers)},
    )


@app.command("pack")
def pack_cmd(
    ctx: typer.Context,
    context: Annotated[Path, typer.Argument(help="The context directory to pack.", show_default=False)],
    tag: Annotated[
        str, typer.Option("-t", "--tag", help="Reference to tag the ModelKit with.", show_default=False)
    ],
    kitfile: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("-f", "--file", help="Kitfile to use (default: the one in the context)."),
    ] = None,
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Artifact format.")] = FormatChoice.kitops,
    layer_format: Annotated[
        Optional[LayerFormatChoice],  # noqa: UP045
        typer.Option(
            "--layer-format",
            help="tar: one archive per entry; raw: the file itself. Default: tar for kitops; "
            "for modelpack raw for single files, tar for directories.",
        ),
    ] = None,
    legacy_cnai: Annotated[
        bool, typer.Option("--legacy-cnai", help="ModelPack with the older vnd.cnai names (Harbor <= 2.15).")
    ] = False,
    compression: Annotated[
        CompressionChoice, typer.Option("--compression", help="Compression of tar layers.")
    ] = CompressionChoice.none,
    push_after: Annotated[
        bool, typer.Option("--push", help="Push the ModelKit to its registry afterwards.")
    ] = False,
) -> None:
    """Pack a directory into a ModelKit in the local store (and push it with --push)."""
    o = out(ctx)
    with o.progress() as bars:
        result = pack(
            context,
            tag,
            kitfile=kitfile,
            fmt=fmt.value,
            layer_format=layer_format.value if layer_format is not None else None,
            compression=compression.value,
            legacy_cnai=legacy_cnai,
            warn=o.warn,
            progress=bars,
        )
    if push_after:
        from kitbridge.cli.cmd_remote import transfer_report
        from kitbridge.transfer import push

        with o.progress() as bars:
            pushed = push(result.reference, options=o.registry, progress=bars)
        if not o.json_mode:
            transfer_report(o, "pushed", pushed)
    o.result(
        f"{result.reference.name}\n{result.manifest.digest}" if not o.quiet else result.manifest.digest,
        {
            "reference": result.reference.name,
            "digest": result.manifest.digest,
            "size": result.config.size + sum(layer.size for layer in result.layers),
            "layers": [
                {"mediaType": d.media_type, "digest": d.digest, "size": d.size, "annotations": d.annotations}
                for d in result.layers
            ],
        },
    )


@app.command("convert")
def convert_cmd(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="ModelKit or ModelPack reference in the store.", show_default=False)
    ],
    destination: Annotated[
        str, typer.Argument(help="Reference for the converted artifact.", show_default=False)
    ],
    to: Annotated[FormatChoice, typer.Option("--to", help="Target format.", show_default=False)],
    legacy_cnai: Annotated[
        bool, typer.Option("--legacy-cnai", help="ModelPack with the older vnd.cnai names (Harbor <= 2.15).")
    ] = False,
    layer_format: Annotated[
        Optional[LayerFormatChoice],  # noqa: UP045
        typer.Option(
            "--layer-format",
            help="Re-encode layers: raw turns a tar of one file into that file; tar wraps a raw file "
            "in a tar. Default: keep each layer's encoding.",
        ),
    ] = None,
) -> None:
    """Convert between KitOps and ModelPack in the local store, reusing every layer blob."""
    from kitbridge.convert import convert

    result = convert(
        source,
        destination,
        to=to.value,
        legacy_cnai=legacy_cnai,
        options=out(ctx).registry,
        layer_format=layer_format.value if layer_format is not None else None,
    )
    out(ctx).result(
        f"{result.reference.name}\n{result.manifest.digest} "
        f"({result.to}; {result.layers_reused} layer blobs reused)",
        {
            "reference": result.reference.name,
            "digest": result.manifest.digest,
            "format": result.to,
            "layersReused": result.layers_reused,
            "bytesUploaded": result.bytes_uploaded,
        },
    )
