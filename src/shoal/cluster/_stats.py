"""What each Ray worker has done, for the live view, `shoal status` and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..engine import Job

__all__ = ["WorkerSource", "WorkerStat", "note_workers", "workers_of"]


@dataclass(slots=True)
class WorkerStat:
    name: str  # the actor's name: shoal-<job digest>-<pid>-<slot>-<generation>
    node: str = "?"  # the Ray node id it was placed on (first 12 characters)
    done: int = 0  # requests answered (any answer, including errors the provider returned)
    running: int = 0
    busy_s: float = 0.0  # summed time its requests took on the worker
    lost: bool = False  # the actor died; its requests in flight were sent again elsewhere

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "node": self.node,
            "done": self.done,
            "running": self.running,
            "busy_s": round(self.busy_s, 3),
            "lost": self.lost,
        }


@runtime_checkable
class WorkerSource(Protocol):
    """A job's ProviderSource whose requests are sent by cluster workers."""

    def workers(self) -> list[WorkerStat]: ...


def workers_of(job: Job) -> list[WorkerStat]:
    """The job's cluster workers, live and lost; empty on the local executor."""
    providers = job.providers
    return providers.workers() if isinstance(providers, WorkerSource) else []


def note_workers(job: Job, say: Callable[[str], None]) -> None:
    """At the end of a run: one line per worker, and the same in the journal for status and the report."""
    workers = workers_of(job)
    if not workers:
        return
    job.journal.event(job.run_id, "workers", None, workers=[w.as_dict() for w in workers])
    for w in workers:
        lost = " (lost; its requests in flight went to another worker)" if w.lost else ""
        say(f"  ray worker {w.name} on node {w.node}: {w.done} requests, {w.busy_s:.1f}s busy{lost}")
