"""`--executor local|ray` on the job commands."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import ExecutorSettings, ShoalConfig
from ..errors import UsageError

__all__ = ["ExecutorOption", "with_executor"]

ExecutorOption = Annotated[
    str | None,
    typer.Option("--executor", help='Where items run: "local" or "ray" (see [executor] in shoal.toml).'),
]


def with_executor(config: ShoalConfig, executor: str | None) -> ShoalConfig:
    """shoal.toml's [executor] with the command line's --executor on top (its address stays)."""
    if executor is None:
        return config
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor must be 'local' or 'ray', not '{executor}'")
    settings = ExecutorSettings.model_validate({**config.executor.model_dump(), "kind": executor})
    return config.model_copy(update={"executor": settings})
