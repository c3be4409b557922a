"""Everything the report needs, read once from the journal (read-only)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..view import RunRow, item_of_scope, latest_run, read_status, reading, runs_of, table_exists

__all__ = ["CallRow", "EventRow", "ItemRow", "LimitPoint", "ReportData", "load_report_data"]


@dataclass(frozen=True, slots=True)
class CallRow:
    id: int
    run_id: int
    created_at: float
    item: str
    stage: str
    model: str
    outcome: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_s: float
    queue_s: float


@dataclass(frozen=True, slots=True)
class ItemRow:
    index: int  # position in the order the job first recorded its items (the input order for map)
    id: str
    status: str
    stage: str | None
    error: str | None
    file: str | None


@dataclass(frozen=True, slots=True)
class LimitPoint:
    """A model's per-minute limits (configured or learned) and the share in use after 429s."""

    ts: float
    run_id: int
    model: str
    limits: dict[str, float]
    factor: float


@dataclass(frozen=True, slots=True)
class EventRow:
    ts: float
    run_id: int
    kind: str
    model: str | None
    detail: dict[str, Any]


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


def _calls(conn: sqlite3.Connection, job: str) -> list[CallRow]:
    rows = conn.execute(
        "SELECT id, run_id, created_at, scope, stage, model, outcome, input_tokens, output_tokens, "
        "cached_tokens, cost_usd, latency_s, queue_s FROM calls WHERE job = ? ORDER BY id",
        (job,),
    )
    return [
        CallRow(
            id=int(r["id"]),
            run_id=int(r["run_id"]),
            created_at=float(r["created_at"]),
            item=item_of_scope(job, str(r["scope"])),
            stage=str(r["stage"]),
            model=str(r["model"]),
            outcome=str(r["outcome"]),
            input_tokens=int(r["input_tokens"]),
            output_tokens=int(r["output_tokens"]),
            cached_tokens=int(r["cached_tokens"]),
            cost_usd=float(r["cost_usd"]),
            latency_s=float(r["latency_s"]),
            queue_s=float(r["queue_s"]),
        )
        for r in rows
    ]


def _items(conn: sqlite3.Connection, job: str) -> list[ItemRow]:
    rows = conn.execute(
        "SELECT item, status, stage, error, output FROM items WHERE job = ? ORDER BY rowid", (job,)
    )
    return [
        ItemRow(index, str(r["item"]), str(r["status"]), r["stage"], r["error"], r["output"])
        for index, r in enumerate(rows, start=1)
    ]


def _limits(conn: sqlite3.Connection, job: str) -> list[LimitPoint]:
    """Limit changes over time, from the snapshots the job's runs published (unchanged ones skipped)."""
    if not table_exists(conn, "snapshots"):
        return []
    rows = conn.execute(
        "SELECT s.ts, s.run_id, s.data FROM snapshots s JOIN runs r ON r.id = s.run_id "
        "WHERE r.job = ? ORDER BY s.ts",
        (job,),
    )
    points: list[LimitPoint] = []
    last: dict[str, tuple[dict[str, float], float]] = {}
    for row in rows:
        data = json.loads(row["data"])
        for model, budget in (data.get("models") or {}).items():
            limits = {str(k): float(v) for k, v in (budget.get("limits") or {}).items()}
            factor = float(budget.get("factor", 1.0))
            if last.get(model) != (limits, factor):
                last[model] = (limits, factor)
                points.append(LimitPoint(float(row["ts"]), int(row["run_id"]), str(model), limits, factor))
    return points


def _events(conn: sqlite3.Connection, job: str) -> list[EventRow]:
    if not table_exists(conn, "events"):
        return []
    rows = conn.execute(
        "SELECT e.ts, e.run_id, e.kind, e.model, e.detail FROM events e JOIN runs r ON r.id = e.run_id "
        "WHERE r.job = ? ORDER BY e.id",
        (job,),
    )
    events = []
    for r in rows:
        detail = json.loads(r["detail"]) if r["detail"] else {}
        events.append(
            EventRow(
                float(r["ts"]),
                int(r["run_id"]),
                str(r["kind"]),
                r["model"],
                detail if isinstance(detail, dict) else {},
            )
        )
    return events


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
        calls = _calls(conn, name)
        items = _items(conn, name)
        limits = _limits(conn, name)
        events = _events(conn, name)
        shared = _shared(conn, run.id)
    status = read_status(journal, job=name, now=now)
    return ReportData(journal, name, now, runs, status, calls, items, limits, events, shared)


def _shared(conn: sqlite3.Connection, run_id: int) -> dict[str, dict[str, Any]]:
    """The last word of a run on each budget it shared through Redis (from its last snapshot)."""
    if not table_exists(conn, "snapshots"):
        return {}
    row = conn.execute(
        "SELECT data FROM snapshots WHERE run_id = ? ORDER BY ts DESC LIMIT 1", (run_id,)
    ).fetchone()
    if row is None:
        return {}
    models = json.loads(row["data"]).get("models") or {}
    return {str(model): dict(b["shared"]) for model, b in models.items() if b.get("shared")}
