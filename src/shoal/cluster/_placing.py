"""Where an agent's typed tools run: unchanged locally, on Ray workers when the job's providers say so.

Imports no Ray: workflows call `place_tools` on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..engine import Job

__all__ = ["ToolPlacer", "place_tools"]


@runtime_checkable
class ToolPlacer(Protocol):
    def place_tool(self, function: Callable[..., Any]) -> Callable[..., Any]: ...


def place_tools(job: Job, functions: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    providers = job.providers
    if isinstance(providers, ToolPlacer):
        return [providers.place_tool(f) for f in functions]
    return list(functions)
