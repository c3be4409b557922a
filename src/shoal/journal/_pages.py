"""Pages of a journal as the dashboard lists them: items, calls, events, agent sessions.

Each query reads one bounded page (`limit`) from a read-only connection (see `_read`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ._read import EventRow, event_detail, item_of_scope, table_exists

__all__ = [
    "CallDetail",
    "ItemPageRow",
    "RunningItem",
    "ScopeUsage",
    "SessionRow",
    "call_page",
    "event_page",
    "item_count",
    "item_page",
    "running_items",
    "sessions_page",
    "usage_by_scope",
]


@dataclass(frozen=True, slots=True)
class CallDetail:
    """One call as the dashboard lists it."""

    id: int
    run_id: int
    item: str
    stage: str
    model: str
    outcome: str
    attempt: int
    status: int | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_s: float
    queue_s: float
    error: str | None
    created_at: float


def call_page(conn: sqlite3.Connection, job: str, *, limit: int, before: int | None) -> list[CallDetail]:
    """The newest calls of the job with an id below `before`, newest first."""
    rows = conn.execute(
        "SELECT id, run_id, scope, stage, model, outcome, attempt, status, input_tokens, "
        "output_tokens, cached_tokens, cost_usd, latency_s, queue_s, error, created_at FROM calls "
        "WHERE job = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (job, before if before is not None else 2**62, limit),
    ).fetchall()
    return [
        CallDetail(
            id=r["id"],
            run_id=r["run_id"],
            item=item_of_scope(job, str(r["scope"])),
            stage=r["stage"],
            model=r["model"],
            outcome=r["outcome"],
            attempt=r["attempt"],
            status=r["status"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cached_tokens=r["cached_tokens"],
            cost_usd=r["cost_usd"],
            latency_s=r["latency_s"],
            queue_s=r["queue_s"],
            error=r["error"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    scope: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float


def usage_by_scope(conn: sqlite3.Connection, job: str, scopes: list[str]) -> list[ScopeUsage]:
    """Calls, tokens and cost of each of `scopes` (those with calls only)."""
    if not scopes:
        return []
    marks = ", ".join("?" for _ in scopes)
    rows = conn.execute(
        "SELECT scope, count(*) AS n, sum(input_tokens) AS i, sum(output_tokens) AS o, "
        f"sum(cached_tokens) AS c, sum(cost_usd) AS usd FROM calls WHERE job = ? AND scope IN ({marks}) "
        "GROUP BY scope",
        [job, *scopes],
    )
    return [
        ScopeUsage(str(r["scope"]), int(r["n"]), int(r["i"]), int(r["o"]), int(r["c"]), float(r["usd"]))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class ItemPageRow:
    id: str
    status: str
    stage: str | None
    file: str | None
    error: str | None
    attempts: int
    updated_at: float


def item_count(conn: sqlite3.Connection, job: str, *, status: str | None = None) -> int:
    where, params = "job = ?", [job]
    if status:
        where += " AND status = ?"
        params.append(status)
    return int(conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0])


def item_page(
    conn: sqlite3.Connection, job: str, *, offset: int, limit: int, status: str | None = None
) -> list[ItemPageRow]:
    """One page of the job's items in input order."""
    where, params = "job = ?", [job]
    if status:
        where += " AND status = ?"
        params.append(status)
    rows = conn.execute(
        f"SELECT item, status, stage, output, error, attempts, updated_at FROM items WHERE {where} "
        "ORDER BY rowid LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [
        ItemPageRow(
            r["item"], r["status"], r["stage"], r["output"], r["error"], r["attempts"], r["updated_at"]
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class RunningItem:
    item: str
    stage: str | None
    since: float


def running_items(conn: sqlite3.Connection, job: str, *, limit: int) -> list[RunningItem]:
    rows = conn.execute(
        "SELECT item, stage, updated_at FROM items WHERE job = ? AND status = 'running' "
        "ORDER BY updated_at LIMIT ?",
        (job, limit),
    ).fetchall()
    return [RunningItem(r["item"], r["stage"], r["updated_at"]) for r in rows]


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    item: str
    messages: str  # JSON, as stored
    updated_at: float


def sessions_page(conn: sqlite3.Connection, job: str, *, limit: int) -> list[SessionRow]:
    """Agent sessions, most recently active first."""
    rows = conn.execute(
        "SELECT id, item, messages, updated_at FROM sessions WHERE job = ? ORDER BY updated_at DESC LIMIT ?",
        (job, limit),
    ).fetchall()
    return [SessionRow(r["id"], r["item"], r["messages"], r["updated_at"]) for r in rows]


def event_page(conn: sqlite3.Connection, job: str, *, limit: int) -> list[EventRow]:
    """The newest events of the job's runs, newest first."""
    if not table_exists(conn, "events"):
        return []
    rows = conn.execute(
        "SELECT e.id, e.run_id, e.ts, e.kind, e.model, e.detail FROM events e "
        "JOIN runs r ON r.id = e.run_id WHERE r.job = ? ORDER BY e.id DESC LIMIT ?",
        (job, limit),
    ).fetchall()
    return [
        EventRow(r["ts"], r["run_id"], r["kind"], r["model"], event_detail(r["detail"]), r["id"])
        for r in rows
    ]
