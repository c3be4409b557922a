"""Call totals read incrementally: the calls table only grows, so a process that polls (the live
view, the dashboard) reads each call once instead of the whole table every second."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

__all__ = ["CallGroup", "CallTotalsCache"]


@dataclass(slots=True)
class CallGroup:
    """Calls of one (run, stage, model, outcome)."""

    n: int = 0
    first_id: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0  # summed: model time, from sending to the checked answer
    queue_s: float = 0.0  # summed: waiting for a worker slot and the rate budget


_Key = tuple[int, str, str, str]


@dataclass(slots=True)
class CallTotalsCache:
    """Totals per (run, stage, model, outcome) of one job; `refresh` reads only the new calls."""

    job: str | None = None
    fingerprint: tuple[int, float] | None = None  # the job's first run: a recreated journal resets
    last_id: int = 0
    groups: dict[_Key, CallGroup] = field(default_factory=dict)

    def refresh(self, conn: sqlite3.Connection, job: str) -> dict[_Key, CallGroup]:
        first = conn.execute(
            "SELECT id, started_at FROM runs WHERE job = ? ORDER BY id LIMIT 1", (job,)
        ).fetchone()
        fingerprint = None if first is None else (int(first[0]), float(first[1]))
        newest_row = conn.execute("SELECT max(id) FROM calls WHERE job = ?", (job,)).fetchone()[0]
        shrunk = (newest_row or 0) < self.last_id  # the journal was deleted and started again
        if job != self.job or fingerprint != self.fingerprint or shrunk:
            self.job, self.fingerprint, self.last_id, self.groups = job, fingerprint, 0, {}
        rows = conn.execute(
            "SELECT run_id, stage, model, outcome, count(*), min(id), max(id), sum(input_tokens), "
            "sum(output_tokens), sum(cached_tokens), sum(cost_usd), sum(latency_s), sum(queue_s) "
            "FROM calls WHERE job = ? AND id > ? "
            "GROUP BY run_id, stage, model, outcome",
            (job, self.last_id),
        ).fetchall()
        newest = self.last_id
        for run_id, stage, model, outcome, n, low, high, i, o, c, usd, latency, queue in rows:
            key = (int(run_id), str(stage), str(model), str(outcome))
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = CallGroup(first_id=int(low))
            group.n += int(n)
            group.input_tokens += int(i)
            group.output_tokens += int(o)
            group.cached_tokens += int(c)
            group.cost_usd += float(usd)
            group.latency_s += float(latency or 0.0)
            group.queue_s += float(queue or 0.0)
            newest = max(newest, int(high))
        self.last_id = newest
        return self.groups
