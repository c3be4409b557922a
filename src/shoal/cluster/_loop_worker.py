"""The Ray actor that runs whole loops (a workflow agent with its tools) and asks the driver at each step.

A loop is an async function of a `Relay`, shipped to the actor. Whenever it needs the driver (for a
workflow agent: every model request, which the driver replays from its journal or sends under the
job's budget), it calls `relay.ask(payload)` and waits. The driver drives the exchange: `start`
returns the loop's first message, and each `answer` hands back a reply and returns the next one, so
one step costs one round trip. Many loops run on one actor at once (an async actor); their CPU-bound
tools share the actor's process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Ask", "Crashed", "Done", "LoopWorker"]


@dataclass(frozen=True, slots=True)
class Ask:
    """The loop needs the driver: `payload` in, a reply out."""

    ask_id: int
    payload: Any


@dataclass(frozen=True, slots=True)
class Done:
    value: Any
    cpu_s: float  # CPU time the worker's process has spent on loops so far (all its loops)


@dataclass(frozen=True, slots=True)
class Crashed:
    """The loop raised: a bug in the loop, not a failure of the work (that is the loop's own value)."""

    error: str


Message = Ask | Done | Crashed


class _Relay:
    def __init__(self, outbox: asyncio.Queue[Message]) -> None:
        self._outbox = outbox
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0

    async def ask(self, payload: Any) -> Any:
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        self._outbox.put_nowait(Ask(self._next_id, payload))
        return await future

    def reply(self, ask_id: int, value: Any) -> None:
        future = self._waiting.pop(ask_id, None)
        if future is not None and not future.done():
            future.set_result(value)


@dataclass
class _Loop:
    outbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    relay: _Relay = field(init=False)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.relay = _Relay(self.outbox)


class LoopWorker:
    def __init__(self) -> None:
        self._loops: dict[str, _Loop] = {}
        self._cpu_at_start = time.process_time()

    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def start(self, ticket: str, body: Callable[[_Relay], Awaitable[Any]]) -> Message:
        loop = self._loops[ticket] = _Loop()
        loop.task = asyncio.create_task(self._run(loop, body))
        return await self._next(ticket, loop)

    async def answer(self, ticket: str, ask_id: int, value: Any) -> Message:
        loop = self._loops[ticket]
        loop.relay.reply(ask_id, value)
        return await self._next(ticket, loop)

    async def abort(self, ticket: str) -> None:
        """The driver gave up on this loop (its step failed there, or the job stopped)."""
        loop = self._loops.pop(ticket, None)
        if loop is not None and loop.task is not None:
            loop.task.cancel()

    async def _next(self, ticket: str, loop: _Loop) -> Message:
        message = await loop.outbox.get()
        if not isinstance(message, Ask):
            self._loops.pop(ticket, None)
        return message

    async def _run(self, loop: _Loop, body: Callable[[_Relay], Awaitable[Any]]) -> None:
        try:
            value = await body(loop.relay)
        except Exception as exc:  # a loop's own failures are values; what reaches here is a bug
            loop.outbox.put_nowait(Crashed(f"{type(exc).__name__}: {exc}"))
            return
        loop.outbox.put_nowait(Done(value, time.process_time() - self._cpu_at_start))
