"""The shoal command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import UsageError
from ._map import map_command
from ._run import run_command

__all__ = ["app", "main"]


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # 50 ms: only for --version

        try:
            typer.echo(f"shoal {version('shoal')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("shoal (version unknown: not installed)")
        raise typer.Exit(0)


def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_show_version, is_eager=True),
    ] = False,
) -> None:
    """Run a large batch of LLM work as one controlled, resumable job."""


def _build_app() -> typer.Typer:
    app = typer.Typer(
        name="shoal",
        help="Run a large batch of LLM work as one controlled, resumable job.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_options)
    app.command("map")(map_command)
    app.command("run")(run_command)
    from ._draft import draft_command

    app.command("draft")(draft_command)
    from ._batch import cancel_command

    app.command("cancel")(cancel_command)
    from .fake_server import register

    register(app)
    from ._observe import register as register_observe

    register_observe(app)
    return app


app = _build_app()


def main() -> None:
    """Entry point: usage mistakes are one line on stderr and exit code 2, as with every user error."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except UsageError as exc:  # the job commands report their own; this catches any other command's
        print(f"shoal: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: missing or bad options, unknown commands
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"shoal: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
