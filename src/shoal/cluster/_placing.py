"""Where an agent's loop, its typed tools and a plan's lint checks run: here, or on Ray workers when
the job's providers say so.

Imports no Ray: workflows and plans ask on every run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..engine import Job
from ..errors import RunError
from ..gate import LintResult, run_lint

__all__ = [
    "LintPlacer",
    "LoopPlacer",
    "Relay",
    "ToolPlacer",
    "WorkerLost",
    "lint_runner",
    "loop_placer",
    "place_tools",
]

T = TypeVar("T")

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


class WorkerLost(RunError):
    """The Ray worker running a loop died mid-loop; the driver dispatches the loop again."""


class Relay(Protocol):
    """A loop's line to the driver: `ask` sends a payload and waits for the driver's reply."""

    async def ask(self, payload: Any) -> Any: ...


@runtime_checkable
class LoopPlacer(Protocol):
    def ship_by_value(self, value: Any) -> None:
        """Send a function or class of the workflow script (which no worker can import) by value."""
        ...

    async def run_loop(
        self, body: Callable[[Relay], Awaitable[T]], answer: Callable[[Any], Awaitable[Any]]
    ) -> T:
        """Run `body` on a worker, answering each of its asks with `answer` here, on the driver.

        `answer` raising aborts the loop on the worker and raises here; a worker that dies raises
        WorkerLost."""
        ...


def loop_placer(job: Job) -> LoopPlacer | None:
    """Where whole loops (workflow agents) can run: Ray workers, or None (here, on the driver)."""
    providers = job.providers
    return providers if isinstance(providers, LoopPlacer) else None
