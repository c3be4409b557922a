"""Everything the report needs, read once from the journal (read-only)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..journal import (
    CallRow,
    EventRow,
    ItemRow,
    RunRow,
    calls_of,
    events_of,
    items_of,
    latest_run,
    latest_snapshot,
    reading,
    runs_of,
    snapshots_of,
)
from ..view import read_status

__all__ = ["CallRow", "EventRow", "ItemRow", "LimitPoint", "ReportData", "load_report_data"]


@dataclass(frozen=True, slots=True)
class LimitPoint:
    """A model's per-minute limits (configured or learned) and the share in use after 429s."""

    ts: float
    run_id: int
    model: str
    limits: dict[str, float]
    factor: float


@dataclass(frozen=True, slots=True)
class ReportData:
    journal: Path
    job: str
    generated_at: float
    runs: list[RunRow]
    status: dict[str, Any]  # read_status: the same figures as `shoal status`
    calls: list[CallRow]
    items: list[ItemRow]
    limits: list[LimitPoint]
    events: list[EventRow]
    # Budgets shared through Redis: per model, the latest run's last `shared` snapshot entry.
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)


def _limits(conn: sqlite3.Connection, job: str) -> list[LimitPoint]:
    """Limit changes over time, from the snapshots the job's runs published (unchanged ones skipped)."""
    points: list[LimitPoint] = []
    last: dict[str, tuple[dict[str, float], float]] = {}
    for row in snapshots_of(conn, job):
        data = row.data
        for model, budget in (data.get("models") or {}).items():
            limits = {str(k): float(v) for k, v in (budget.get("limits") or {}).items()}
            factor = float(budget.get("factor", 1.0))
            if last.get(model) != (limits, factor):
                last[model] = (limits, factor)
                points.append(LimitPoint(row.ts, row.run_id, str(model), limits, factor))
    return points


def load_report_data(journal: Path, *, job: str | None = None, now: float | None = None) -> ReportData | None:
    """None when the journal does not exist or holds no run (of `job`)."""
    now = time.time() if now is None else now
    if not journal.exists():
        return None
    with reading(journal) as conn:
        run = latest_run(conn, job)
        if run is None:
            return None
        name = run.job
        runs = runs_of(conn, name)
        calls = calls_of(conn, name)
        items = items_of(conn, name)
        limits = _limits(conn, name)
        events = events_of(conn, name)
        shared = _shared(conn, run.id)
    status = read_status(journal, job=name, now=now)
    return ReportData(journal, name, now, runs, status, calls, items, limits, events, shared)


def _shared(conn: sqlite3.Connection, run_id: int) -> dict[str, dict[str, Any]]:
    """The last word of a run on each budget it shared through Redis (from its last snapshot)."""
    models = (latest_snapshot(conn, run_id) or {}).get("models") or {}
    return {str(model): dict(b["shared"]) for model, b in models.items() if b.get("shared")}
