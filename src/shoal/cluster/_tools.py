"""Workflow agents on the cluster: whole agent loops on Ray actors, or typed tools as Ray tasks.

An agent whose tools are all typed Python functions (or who has none) runs its whole loop on a
`LoopWorker` actor: its tool calls and output validation happen there, and each model request is
asked of the driver, which replays it from the journal or sends it under the job's budget. An agent
with built-in file tools or `run` keeps its loop on the driver, because its workspace is on the
driver's disk; its typed tools still run on workers, as Ray tasks (a function of its arguments goes
to a worker and its result comes back). Tools that take pydantic-ai's RunContext need the loop's
state and stay with the loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
import time
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import ray
from ray import cloudpickle
from ray.exceptions import RayTaskError

from ..providers import Provider
from ._loops import LoopPool
from ._placing import Relay
from ._stats import WorkerStat

__all__ = ["RemoteTools", "ship_by_value"]

T = TypeVar("T")


def _call_tool(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    started = time.monotonic()
    result = function(*args, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    node = str(ray.get_runtime_context().get_node_id())[:12]
    return result, (node, os.getpid()), time.monotonic() - started


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _installed(module: ModuleType) -> bool:
    """Importable on every node that has the same packages installed (site-packages, stdlib)."""
    path = getattr(module, "__file__", None)
    if path is None:
        return True  # built into the interpreter
    parts = Path(path).resolve().parts
    return "site-packages" in parts or "dist-packages" in parts or path.startswith(sys.base_prefix)


def _takes_context(function: Callable[..., Any]) -> bool:
    parameters = list(inspect.signature(function).parameters.values())
    return bool(parameters) and "RunContext" in str(parameters[0].annotation)


def ship_by_value(value: Any) -> None:
    """A function or class from the workflow script (or a module next to it), which no worker could
    import, travels by value; an installed package's travels by name."""
    module = sys.modules.get(getattr(value, "__module__", "") or "")
    if module is not None and module.__name__ != "__main__" and not _installed(module):
        cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
        if inspect.isfunction(value):
            _resolve_annotations(value)


def _resolve_annotations(function: Callable[..., Any]) -> None:
    """A function shipped by value takes only the globals its code uses; annotations written as
    strings (`from __future__ import annotations`) would then name what the worker lacks
    (`RunContext`, a model class), so they travel resolved."""
    try:
        function.__annotations__ = typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable here too: leave them as they are
        pass


class RemoteTools:
    """A ProviderSource that is the job's own (model calls from the driver) and places agents' loops
    and tools on Ray."""

    def __init__(self, local: Any, *, prefix: str, workers: int) -> None:
        self._local = local
        self._task: Any = ray.remote(num_cpus=1)(_call_tool)
        self._nodes: dict[str, WorkerStat] = {}
        self._shipped: dict[int, Any] = {}  # id(function) -> its object ref, shipped once
        self._prefix = prefix
        self._workers = workers
        self._loops: LoopPool | None = None

    def ship_by_value(self, value: Any) -> None:
        ship_by_value(value)

    async def run_loop(
        self, body: Callable[[Relay], Awaitable[T]], answer: Callable[[Any], Awaitable[Any]]
    ) -> T:
        if self._loops is None:  # actors start with the first agent, not with the job
            self._loops = LoopPool(prefix=self._prefix, count=self._workers)
        return await self._loops.run(body, answer)

    def get(self, provider: str) -> Provider:
        provider_: Provider = self._local.get(provider)
        return provider_

    async def aclose(self) -> None:
        if self._loops is not None:
            self._loops.close()
        await self._local.aclose()

    def workers(self) -> list[WorkerStat]:
        loops = self._loops.all_stats() if self._loops is not None else []
        return [*loops, *self._nodes.values()]

    def place_tool(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` as a tool that runs on a worker, with the same name, signature and docstring."""
        if _takes_context(function):
            return function
        ship_by_value(function)
        shipped = self._shipped.get(id(function))
        if shipped is None:
            shipped = self._shipped[id(function)] = ray.put(function)

        @functools.wraps(function)
        async def on_a_worker(*args: Any, **kwargs: Any) -> Any:
            ref = self._task.remote(shipped, args, kwargs)
            try:
                result, (node, pid), took = await ref
            except asyncio.CancelledError:
                ray.cancel(ref)
                raise
            except RayTaskError as exc:
                raise exc.as_instanceof_cause() from None  # type: ignore[no-untyped-call]
            name = f"tools-{node}-{pid}"  # a worker process: Ray reuses them for tasks
            stat = self._nodes.setdefault(name, WorkerStat(name, node=node, unit="tool calls"))
            stat.done += 1
            stat.busy_s += float(took)
            return result

        return on_a_worker
