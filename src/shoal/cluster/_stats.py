"""What each Ray worker has done, for the live view, `shoal status` and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..engine import Job

__all__ = ["WorkerSource", "WorkerStat", "least_busy", "note_workers", "workers_of"]


@dataclass(slots=True)
class WorkerStat:
    name: str  # the actor's name: shoal-<job digest>-<pid>-<token>-[loops-]<slot>-<generation>
    node: str = "?"  # the Ray node id it was placed on (first 12 characters)
    done: int = 0  # what it finished, counted in `unit` (a request answered with an error counts)
    running: int = 0
    # Senders, lint checks, tools: summed time its work took on the worker. Loop workers run many
    # agents at once, mostly waiting on the driver: the CPU time their process spent instead.
    busy_s: float = 0.0
    lost: bool = False  # the actor died; its work in flight was dispatched again elsewhere
    unit: str = "requests"  # "requests", "agents", "tool calls" or "lint checks"
    # A replacement for a lost worker, not yet answering: its process may take seconds to start.
    starting: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "node": self.node,
            "done": self.done,
            "running": self.running,
            "busy_s": round(self.busy_s, 3),
            "lost": self.lost,
            "unit": self.unit,
        }


def least_busy(stats: list[WorkerStat]) -> int:
    """The slot to give the next piece of work: the least busy live worker, running ones first.

    A replacement still starting is picked only when no running worker is left. Work sent to it
    waits for its process to start, and a request's timeout runs meanwhile; under load that wait
    can outlast the timeout and send the request twice.
    """
    alive = [i for i, stat in enumerate(stats) if not stat.lost]
    running = [i for i in alive if not stats[i].starting] or alive
    return min(running, key=lambda i: (stats[i].running, stats[i].done))


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
        lost = f" (lost; its {w.unit} in flight went to another worker)" if w.lost else ""
        say(f"  ray worker {w.name} on node {w.node}: {w.done} {w.unit}, {w.busy_s:.1f}s busy{lost}")
