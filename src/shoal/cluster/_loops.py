"""A pool of LoopWorker actors: whole loops (workflow agents) placed on Ray workers.

Imported only once Ray is chosen and connected. The driver answers each step a loop asks for (for
an agent: a model request, through the job's caller and journal), so the journal, the budget and the
concurrency ceiling stay where they are; the loop's own work (an agent's tool calls and output
validation) runs on the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray
from ray.exceptions import RayActorError, RayError

from ._loop_worker import Ask, Crashed, Done, LoopWorker
from ._placing import Relay, WorkerLost
from ._pool import NAMESPACE, Replacements
from ._stats import WorkerStat, least_busy

__all__ = ["LoopPool"]

T = TypeVar("T")


class LoopPool:
    def __init__(self, *, prefix: str, count: int) -> None:
        self._prefix = f"{prefix}{os.getpid()}-{secrets.token_hex(3)}-loops-"  # as the senders' names
        # Like the senders, loop workers reserve no CPU: a workflow's other agents may still place
        # their typed tools as Ray tasks (one CPU each), which must not wait behind idle loops.
        self._actor_class: Any = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy="SPREAD")(
            LoopWorker
        )
        self._actors: list[Any] = [None] * max(1, count)
        self.stats: list[WorkerStat] = [WorkerStat("") for _ in self._actors]
        self.lost: list[WorkerStat] = []
        self._generation = 0
        self._tickets = itertools.count(1)
        self._replacements = Replacements()
        for slot in range(len(self._actors)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        self._generation += 1
        name = f"{self._prefix}{slot}-{self._generation}"
        self._actors[slot] = self._actor_class.options(name=name, namespace=NAMESPACE).remote()
        self.stats[slot] = WorkerStat(name, unit="agents")

    async def run(self, body: Callable[[Relay], Awaitable[T]], answer: Callable[[Any], Awaitable[Any]]) -> T:
        slot = least_busy(self.stats)
        actor, stat = self._actors[slot], self.stats[slot]
        ticket = f"{os.getpid()}-{next(self._tickets)}"
        stat.running += 1
        try:
            message = await actor.start.remote(ticket, body)
            while isinstance(message, Ask):
                try:
                    reply = await answer(message.payload)
                except BaseException:
                    actor.abort.remote(ticket)  # the step failed here (or the job stopped): end it there
                    raise
                message = await actor.answer.remote(ticket, message.ask_id, reply)
        except asyncio.CancelledError:
            with contextlib.suppress(RayError):
                actor.abort.remote(ticket)
            raise
        except RayActorError as exc:
            self._lost(slot, actor)
            raise WorkerLost(f"worker {stat.name} lost: {type(exc).__name__}") from None
        finally:
            stat.running -= 1
        if isinstance(message, Crashed):
            raise RuntimeError(f"on worker {stat.name}: {message.error}")
        assert isinstance(message, Done)
        stat.done += 1
        stat.busy_s = max(stat.busy_s, message.cpu_s)
        return message.value  # type: ignore[no-any-return]

    async def start(self) -> None:
        nodes = await asyncio.gather(*(actor.node.remote() for actor in self._actors))
        for stat, node in zip(self.stats, nodes, strict=True):
            stat.node = str(node)[:12]

    def _lost(self, slot: int, actor: Any) -> None:
        if self._actors[slot] is not actor:
            return  # already replaced
        old = self.stats[slot]
        old.lost = True
        self._spawn(slot)
        self.lost.append(old)
        self._replacements.watch(self._actors[slot], self.stats[slot])

    def all_stats(self) -> list[WorkerStat]:
        return [*self.lost, *self.stats]

    def close(self) -> None:
        self._replacements.cancel()
        for actor in self._actors:
            with contextlib.suppress(RayError):
                ray.kill(actor, no_restart=True)
