"""A pool of SendWorker actors behind the ProviderSource the job's caller already speaks.

Imported only once Ray is chosen and connected. The caller on the driver does everything else a
call needs (journal replay, the concurrency slot, the cost reservation, the rate permit, checks,
the journal record); `RemoteProvider.complete` is the one step that crosses to a worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from ..config import ShoalConfig
from ..errors import ModelCallError, TransientError
from ..providers import ModelReply, ModelRequest, Provider
from ._actor import SendWorker
from ._lint import RemoteLint
from ._stats import WorkerStat, least_busy

__all__ = ["NAMESPACE", "RemoteProviders", "Replacements", "WorkerPool", "job_prefix", "kill_leftovers"]

NAMESPACE = "shoal"
_STOP_GRACE_S = 5.0


def job_prefix(job_name: str) -> str:
    """Every actor of one job is named under this prefix, so a later run can find leftovers."""
    return "shoal-" + hashlib.sha256(job_name.encode()).hexdigest()[:12] + "-"


def kill_leftovers(prefix: str) -> int:
    """Kill this job's actors that an earlier driver (killed with SIGKILL) may have left alive."""
    killed = 0
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = str(entry.get("name", ""))
        if entry.get("namespace") != NAMESPACE or not name.startswith(prefix):
            continue
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            killed += 1
        except (ValueError, RayError):
            pass  # gone meanwhile
    return killed


class Replacements:
    """Replacement workers are marked starting until they first answer, so none gets work meanwhile."""

    def __init__(self) -> None:
        self._watching: set[asyncio.Task[None]] = set()  # held: a task nobody holds may be collected

    def watch(self, actor: Any, stat: WorkerStat) -> None:
        stat.starting = True
        task = asyncio.get_running_loop().create_task(_first_answer(actor, stat))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    def cancel(self) -> None:
        for task in self._watching:
            task.cancel()


async def _first_answer(actor: Any, stat: WorkerStat) -> None:
    try:
        stat.node = str(await actor.node.remote())[:12]
    except RayError:
        pass  # it died starting: the first work sent to it finds out and replaces it
    finally:
        stat.starting = False


class WorkerPool:
    def __init__(self, config: ShoalConfig, env: Mapping[str, str], *, prefix: str, count: int) -> None:
        self._config = config
        self._env = dict(env)
        # The process and a token of this pool: a second run of the job in the same process (a
        # program driving shoal as a library) must not meet the first one's names while Ray frees them.
        self._prefix = f"{prefix}{os.getpid()}-{secrets.token_hex(3)}-"
        # Senders wait on the network: they hold no CPU, so lint checks and tools (one CPU each) can
        # use every core; SPREAD puts them on different nodes.
        self._actor_class: Any = ray.remote(num_cpus=0, max_restarts=0, scheduling_strategy="SPREAD")(
            SendWorker
        )
        self._actors: list[Any] = []
        self.stats: list[WorkerStat] = []
        self.lost: list[WorkerStat] = []  # workers that died, kept for the report
        self._generation = 0
        self._replacements = Replacements()
        for slot in range(max(1, count)):
            self._actors.append(None)
            self.stats.append(WorkerStat(""))
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        self._generation += 1
        name = f"{self._prefix}{slot}-{self._generation}"
        self._actors[slot] = self._actor_class.options(name=name, namespace=NAMESPACE).remote(
            self._config, self._env
        )
        self.stats[slot] = WorkerStat(name)

    async def start(self) -> None:
        """Wait until every worker runs (the first request would wait for it anyway) and learn its node."""
        nodes = await asyncio.gather(*(actor.node.remote() for actor in self._actors))
        for stat, node in zip(self.stats, nodes, strict=True):
            stat.node = str(node)[:12]

    async def send(self, provider: str, request: ModelRequest) -> ModelReply:
        slot = least_busy(self.stats)
        actor, stat = self._actors[slot], self.stats[slot]
        ref = actor.complete.remote(provider, request)
        stat.running += 1
        try:
            answer, took = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)  # the driver's timeout or a second Ctrl-C: stop the request on the worker
            raise
        except RayActorError as exc:
            self._lost(slot, actor)
            lost = f"worker {stat.name} lost: {type(exc).__name__}"
            raise TransientError(lost, model=request.model) from None
        except RayError as exc:
            raise TransientError(f"worker {stat.name}: {type(exc).__name__}", model=request.model) from None
        finally:
            stat.running -= 1
        stat.done += 1
        stat.busy_s += float(took)
        if isinstance(answer, ModelCallError):
            raise answer
        assert isinstance(answer, ModelReply)
        return answer

    def _lost(self, slot: int, actor: Any) -> None:
        """A dead actor is replaced once; its requests in flight fail as transient and are retried."""
        if self._actors[slot] is not actor:
            return  # already replaced by another request that saw it die
        old = self.stats[slot]
        old.lost = True
        self._spawn(slot)
        self.lost.append(old)
        self._replacements.watch(self._actors[slot], self.stats[slot])

    def all_stats(self) -> list[WorkerStat]:
        return [*self.lost, *self.stats]

    async def aclose(self) -> None:
        self._replacements.cancel()
        closing = [actor.aclose.remote() for actor in self._actors]
        try:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), _STOP_GRACE_S)
        except TimeoutError:
            pass
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except RayError:
                pass


class RemoteProvider:
    def __init__(self, pool: WorkerPool, name: str) -> None:
        self._pool = pool
        self.name = name

    async def complete(self, request: ModelRequest) -> ModelReply:
        return await self._pool.send(self.name, request)

    async def aclose(self) -> None:
        """The adapters live on the workers; the pool closes them."""


class RemoteProviders:
    """The ProviderSource a job's caller uses when its requests are sent by Ray workers."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self._providers: dict[str, Provider] = {}
        self._lint: RemoteLint | None = None

    def lint_runner(self) -> RemoteLint:
        """Plans' lint commands on workers too (Ray tasks, files shipped with each check)."""
        if self._lint is None:
            self._lint = RemoteLint()
        return self._lint

    def get(self, provider: str) -> Provider:
        if provider not in self._providers:
            self._providers[provider] = RemoteProvider(self.pool, provider)
        return self._providers[provider]

    def workers(self) -> list[WorkerStat]:
        linting = list(self._lint.stats.values()) if self._lint is not None else []
        return [*self.pool.all_stats(), *linting]

    async def aclose(self) -> None:
        await self.pool.aclose()
