"""``kitbridge export docker``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kitbridge.cli.app import app, out

export_app = typer.Typer(help="Turn a ModelKit into something that runs.", no_args_is_help=True)
app.add_typer(export_app, name="export")


class ModeChoice(str, Enum):
    baked = "baked"
    mounted = "mounted"


@export_app.command("docker")
def export_docker_cmd(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="The ModelKit (local, or in a registry).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="New or empty directory for the context.")],
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="auto, mlflow, llamacpp, vllm, onnxruntime, transformers, or a plugin's runtime.",
        ),
    ] = "auto",
    mode: Annotated[
        ModeChoice, typer.Option("--mode", help="baked: the model in the image; mounted: a volume.")
    ] = ModeChoice.baked,
    base_image: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--base-image", help="Default for ARG BASE_IMAGE (pin it by digest)."),
    ] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="The port the server listens on.")] = None,  # noqa: UP045
    build: Annotated[bool, typer.Option("--build", help="Build it with docker, podman or buildah.")] = False,
    tag: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("-t", "--tag", help="Image tag for --build and the README (default NAME:latest)."),
    ] = None,
) -> None:
    """Write a Docker build context that serves the ModelKit (Dockerfile, server, model, README)."""
    from kitbridge.converters.exporters.docker import export_docker

    o = out(ctx)
    result = export_docker(
        reference,
        output,
        runtime=runtime,
        mode=mode.value,
        base_image=base_image,
        port=port,
        build=build,
        tag=tag,
        options=o.registry,
    )
    text = f"wrote {result.directory} ({result.runtime}: {result.reason}; model {result.mode})"
    if result.built_with:
        text += f"\nbuilt {result.tag} with {result.built_with}"
    o.result(
        text,
        {
            "directory": str(result.directory),
            "runtime": result.runtime,
            "reason": result.reason,
            "mode": result.mode,
            "tag": result.tag,
            "files": result.files,
            "builtWith": result.built_with,
        },
    )
