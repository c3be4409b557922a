"""What each Ray worker has done, for the live view, `shoal status` and the report."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerStat"]


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
