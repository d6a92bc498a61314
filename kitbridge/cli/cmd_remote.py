"""Commands that talk to registries: push, pull, login, logout."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from kitbridge.cli.app import app, out
from kitbridge.cli.output import Output
from kitbridge.errors import UsageError
from kitbridge.transfer import TransferResult, login, logout, pull, push


def transfer_report(o: Output, verb: str, r: TransferResult) -> None:
    """One line for people, one document for --json, for a push or a pull."""
    moved = (
        f"{r.blobs_sent} blobs ({r.bytes_sent} bytes) sent"
        if verb == "pushed"
        else (f"{r.blobs_sent} blobs ({r.bytes_sent} bytes) fetched")
    )
    extra = f", {r.blobs_skipped} already there" + (f", {r.blobs_mounted} mounted" if r.blobs_mounted else "")
    o.result(
        f"{verb} {r.reference.name} {r.manifest.digest}: {moved}{extra}",
        {
            "reference": r.reference.name,
            "digest": r.manifest.digest,
            "blobsTransferred": r.blobs_sent,
            "bytesTransferred": r.bytes_sent,
            "blobsSkipped": r.blobs_skipped,
            "blobsMounted": r.blobs_mounted,
        },
    )


@app.command("push")
def push_cmd(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Reference in the local store.", show_default=False)],
    destination: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="Where to push (default: REFERENCE itself).", show_default=False),
    ] = None,
) -> None:
    """Push a ModelKit from the local store to a registry (blobs it already has are not sent)."""
    o = out(ctx)
    with o.progress() as bars:
        result = push(reference, destination, options=o.registry, progress=bars)
    transfer_report(o, "pushed", result)


@app.command("pull")
def pull_cmd(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Registry reference to pull.", show_default=False)],
) -> None:
    """Pull a ModelKit from a registry into the local store (verified, resumable)."""
    o = out(ctx)
    with o.progress() as bars:
        result = pull(reference, options=o.registry, progress=bars)
    transfer_report(o, "pulled", result)


@app.command("login")
def login_cmd(
    ctx: typer.Context,
    registry: Annotated[str, typer.Argument(help="Registry host, e.g. registry.example.com:5000.")],
    username: Annotated[str, typer.Option("-u", "--username", help="User name.", show_default=False)],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Check credentials against a registry, then save them (Docker config.json format)."""
    o = out(ctx)
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True)
    else:
        raise UsageError("no password given", "pipe it in with --password-stdin")
    if not password:
        raise UsageError("the password is empty", "pipe the password in with --password-stdin")
    where = login(registry, username, password, options=o.registry)
    o.result(f"Login Succeeded (credentials saved in {where})", {"registry": registry, "saved": str(where)})


@app.command("logout")
def logout_cmd(
    ctx: typer.Context,
    registry: Annotated[str, typer.Argument(help="Registry host.")],
) -> None:
    """Forget the saved credentials for a registry."""
    removed = logout(registry)
    out(ctx).result(
        f"Removed login credentials for {registry}" if removed else f"Not logged in to {registry}",
        {"registry": registry, "removed": removed},
    )
