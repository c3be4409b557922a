"""Where work executes. `LocalExecutor` runs items as asyncio tasks in this process; a cluster
executor (Ray) implements the same method."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from ._stop import Stopped, StopSignal

__all__ = ["Executor", "LocalExecutor"]

T = TypeVar("T")


class Executor(Protocol):
    async def run(
        self, items: Iterable[T], work: Callable[[T], Awaitable[None]], *, stop: StopSignal
    ) -> None:
        """Run `work` on every item until done or stopped. Exceptions other than Stopped propagate."""
        ...


class LocalExecutor:
    """A fixed pool of workers pulling items in order; lazily, so 100,000 items cost no more tasks."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    async def run(
        self, items: Iterable[T], work: Callable[[T], Awaitable[None]], *, stop: StopSignal
    ) -> None:
        source = iter(items)

        async def worker() -> None:
            for item in source:  # every worker shares the one iterator
                if not stop.running:
                    return
                try:
                    await work(item)
                except Stopped:
                    return

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker()) for _ in range(self.workers)]

            def cancel_all() -> None:
                for task in tasks:
                    task.cancel()

            stop.on_cancel(cancel_all)
