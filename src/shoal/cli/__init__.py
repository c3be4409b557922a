"""The shoal command line."""

from __future__ import annotations

import typer

from ._map import map_command
from ._run import run_command

__all__ = ["app", "main"]


def _build_app() -> typer.Typer:
    app = typer.Typer(
        name="shoal",
        help="Run a large batch of LLM work as one controlled, resumable job.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command("map")(map_command)
    app.command("run")(run_command)
    from .fake_server import register

    register(app)
    return app


app = _build_app()


def main() -> None:
    app()
