"""Typed Python tools of workflow agents, run as Ray tasks on the cluster's workers.

The agent's loop stays on the driver (its model calls go through the caller and the journal there);
a typed tool is a function of its arguments, so its arguments go to a worker and its result comes
back. Tools that take pydantic-ai's RunContext need the driver's state and stay on the driver, as do
the built-in file tools and `run` (the agents' workspaces are on the driver's disk).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import ray
from ray import cloudpickle
from ray.exceptions import RayTaskError

from ..providers import Provider
from ._stats import WorkerStat

__all__ = ["RemoteTools"]


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


class RemoteTools:
    """A ProviderSource that is the job's own (model calls from the driver) and places tools on Ray."""

    def __init__(self, local: Any) -> None:
        self._local = local
        self._task: Any = ray.remote(num_cpus=1)(_call_tool)
        self._nodes: dict[str, WorkerStat] = {}
        self._shipped: dict[int, Any] = {}  # id(function) -> its object ref, shipped once

    def get(self, provider: str) -> Provider:
        provider_: Provider = self._local.get(provider)
        return provider_

    async def aclose(self) -> None:
        await self._local.aclose()

    def workers(self) -> list[WorkerStat]:
        return list(self._nodes.values())

    def place_tool(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function` as a tool that runs on a worker, with the same name, signature and docstring."""
        if _takes_context(function):
            return function
        module = sys.modules.get(function.__module__)
        if module is not None and module.__name__ != "__main__" and not _installed(module):
            # The workflow script (and modules next to it) are files no worker can import: by value.
            cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
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
            stat = self._nodes.setdefault(name, WorkerStat(name, node=node))
            stat.done += 1
            stat.busy_s += float(took)
            return result

        return on_a_worker
