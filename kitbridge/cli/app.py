"""The ``kitbridge`` command line: a thin typer shell over the library API."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer

from kitbridge import __version__
from kitbridge.cli.output import Output
from kitbridge.errors import KitbridgeError, UsageError
from kitbridge.transfer import RegistryOptions

app = typer.Typer(
    name="kitbridge",
    help="Turn ML models into KitOps ModelKits and CNCF ModelPack OCI artifacts, and back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Global options may be written anywhere on the line (``kitbridge push x --plain-http``); main()
# moves them in front of the subcommand so that typer sees them as options of the top-level callback.
# The registry options are global because every command that may talk to a registry takes them.
_GLOBAL_FLAGS = {
    "--json",
    "-q",
    "--quiet",
    "-v",
    "--verbose",
    "--plain-http",
    "--tls-verify",
    "--no-tls-verify",
}
_GLOBAL_WITH_VALUE = {"--ca-file", "--concurrency"}


def out(ctx: typer.Context) -> Output:
    """The output sink the top-level callback put on the context."""
    root = ctx.find_root()
    if not isinstance(root.obj, Output):
        root.obj = Output()
    return root.obj


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kitbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only results and errors.")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="More detail; tracebacks on error.")
    ] = False,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Talk to registries over HTTP, not HTTPS.")
    ] = False,
    tls_verify: Annotated[
        bool, typer.Option("--tls-verify/--no-tls-verify", help="Verify registries' TLS certificates.")
    ] = True,
    ca_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--ca-file", help="PEM file of CA certificates to trust for registries."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Blobs transferred in parallel.")] = 4,
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    ctx.obj = Output(json_mode=json_output, quiet=quiet, verbose=verbose)
    if concurrency < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--concurrency")
    ctx.obj.registry = RegistryOptions(
        plain_http=plain_http,
        tls_verify=tls_verify,
        ca_file=str(ca_file) if ca_file else None,
        concurrency=concurrency,
    )


def _register() -> None:
    # Command modules register themselves on ``app`` when imported, in the order --help lists them.
    import importlib

    for module in ("cmd_import", "cmd_pack", "cmd_local", "cmd_remote", "cmd_export", "cmd_batch"):
        importlib.import_module(f"kitbridge.cli.{module}")


def _reorder_globals(argv: list[str]) -> list[str]:
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(head):
        arg = head[i]
        name, eq, value = arg.partition("=")
        if arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif name == "--tls-verify" and eq:
            # skopeo and podman users write --tls-verify=false
            front.append("--tls-verify" if value.lower() in ("true", "1", "yes") else "--no-tls-verify")
        elif name in _GLOBAL_WITH_VALUE:
            front.append(arg)
            if not eq and i + 1 < len(head):
                front.append(head[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest + tail


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the app, turn errors into one line and an exit code."""
    _register()
    args = _reorder_globals(list(sys.argv[1:] if argv is None else argv))
    verbose = "-v" in args or "--verbose" in args
    try:
        rv = app(args=args, prog_name="kitbridge", standalone_mode=False)
        if rv == 130:  # click turned a Ctrl-C into an exit code instead of raising
            raise KeyboardInterrupt
        if isinstance(rv, int) and rv:  # a command's typer.Exit(n): click returns n in this mode
            sys.exit(rv)
    except KitbridgeError as e:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"error: {e}\n")
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    except click.ClickException as e:
        # Usage errors: one line plus where to look, exit 2 like every CLI users know.
        e.show()
        sys.exit(UsageError.exit_code if isinstance(e, click.UsageError) else 1)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted (the store is unchanged; run it again: downloads resume)\n")
        sys.exit(130)
    except Exception as e:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"error: internal error: {type(e).__name__}: {e} (run with -v and report it)\n")
        sys.exit(1)
    sys.exit(0)


__all__ = ["app", "main", "out"]
