"""Where an agent's typed tools run: unchanged locally, on Ray workers when the job's providers say so.

Imports no Ray: workflows call `place_tools` on every run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..engine import Job
from ..gate import LintResult, run_lint

__all__ = ["LintPlacer", "ToolPlacer", "lint_runner", "place_tools"]

LintRunner = Callable[..., Awaitable[LintResult]]  # run_lint(command, filepath, *, cwd, timeout_s)


@runtime_checkable
class ToolPlacer(Protocol):
    def place_tool(self, function: Callable[..., Any]) -> Callable[..., Any]: ...


def place_tools(job: Job, functions: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    providers = job.providers
    if isinstance(providers, ToolPlacer):
        return [providers.place_tool(f) for f in functions]
    return list(functions)


@runtime_checkable
class LintPlacer(Protocol):
    def lint_runner(self) -> LintRunner: ...


def lint_runner(job: Job) -> LintRunner:
    """Where a plan's lint commands run: `run_lint` here, or a Ray worker with the files shipped."""
    providers = job.providers
    return providers.lint_runner() if isinstance(providers, LintPlacer) else run_lint
