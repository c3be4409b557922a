"""The journal's read side: read-only SQLite, typed rows, named queries.

The orchestrator is the journal's only writer. `shoal status`, the live view, the dashboard and
the report open the file with `mode=ro`, so nothing they do can change it, even while a job runs.
Every query any of them makes is a function here, so the schema is known in one package only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CallRow",
    "EventCount",
    "EventRow",
    "ItemCount",
    "ItemRow",
    "RecentCall",
    "RunRow",
    "SnapshotRow",
    "calls_of",
    "check_readable",
    "event_counts",
    "event_detail",
    "events_of",
    "item_counts",
    "item_of_scope",
    "item_states",
    "items_of",
    "job_names",
    "last_event_detail",
    "latest_run",
    "latest_snapshot",
    "open_readonly",
    "reading",
    "recent_calls",
    "recorded_script",
    "run_count",
    "runs_of",
    "snapshots_of",
    "stage_events",
    "table_exists",
]


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    job: str
    command: str
    pid: int
    status: str
    started_at: float
    finished_at: float | None


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; raises sqlite3.OperationalError if the file cannot be opened."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=2000")
    return conn


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_readonly(path)
    try:
        yield conn
    finally:
        conn.close()


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _run(row: sqlite3.Row) -> RunRow:
    return RunRow(
        id=int(row["id"]),
        job=str(row["job"]),
        command=str(row["command"]),
        pid=int(row["pid"]),
        status=str(row["status"]),
        started_at=float(row["started_at"]),
        finished_at=None if row["finished_at"] is None else float(row["finished_at"]),
    )


def latest_run(conn: sqlite3.Connection, job: str | None = None) -> RunRow | None:
    """The most recent run of `job`, or of any job when None."""
    if not table_exists(conn, "runs"):
        return None
    if job is None:
        row = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    else:
        row = conn.execute("SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1", (job,)).fetchone()
    return None if row is None else _run(row)


def runs_of(conn: sqlite3.Connection, job: str) -> list[RunRow]:
    return [_run(row) for row in conn.execute("SELECT * FROM runs WHERE job = ? ORDER BY id", (job,))]


def last_event_detail(conn: sqlite3.Connection, run_id: int, kind: str) -> dict[str, Any] | None:
    """The detail of a run's latest event of one kind (say, "workers" at the end of a Ray run)."""
    if not table_exists(conn, "events"):
        return None
    row = conn.execute(
        "SELECT detail FROM events WHERE run_id = ? AND kind = ? ORDER BY id DESC LIMIT 1", (run_id, kind)
    ).fetchone()
    if row is None or row["detail"] is None:
        return None
    detail = json.loads(row["detail"])
    return detail if isinstance(detail, dict) else None


def latest_snapshot(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    """The newest live-state snapshot the run published, or None (older journals have no table)."""
    if not table_exists(conn, "snapshots"):
        return None
    row = conn.execute(
        "SELECT data FROM snapshots WHERE run_id = ? ORDER BY ts DESC LIMIT 1", (run_id,)
    ).fetchone()
    if row is None:
        return None
    data = json.loads(row["data"])
    return data if isinstance(data, dict) else None


def item_of_scope(job: str, scope: str) -> str:
    """The item a call belongs to: jobs scope their calls as "<job>#<item>" or by the item id."""
    prefix = f"{job}#"
    return scope[len(prefix) :] if scope.startswith(prefix) else scope


def check_readable(path: Path) -> None:
    """Open the file and read its catalogue; raises sqlite3.DatabaseError when it is damaged."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def job_names(conn: sqlite3.Connection) -> list[tuple[str, int, float]]:
    """Every job of the journal with its number of runs and last start, newest first."""
    if not table_exists(conn, "runs"):
        return []
    rows = conn.execute(
        "SELECT job, count(*), max(started_at) FROM runs GROUP BY job ORDER BY max(id) DESC"
    ).fetchall()
    return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]


def run_count(conn: sqlite3.Connection, job: str) -> int:
    return int(conn.execute("SELECT count(*) FROM runs WHERE job = ?", (job,)).fetchone()[0])


# -- calls ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call as the report charts it."""

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


def calls_of(conn: sqlite3.Connection, job: str) -> list[CallRow]:
    """Every call of the job, oldest first."""
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


@dataclass(frozen=True, slots=True)
class RecentCall:
    model: str
    created_at: float
    input_tokens: int
    output_tokens: int
    outcome: str


def recent_calls(conn: sqlite3.Connection, job: str) -> Iterator[RecentCall]:
    """The job's calls, newest first, read lazily: stop iterating once they are old enough."""
    rows = conn.execute(
        "SELECT model, created_at, input_tokens, output_tokens, outcome FROM calls WHERE job = ? "
        "ORDER BY id DESC",
        (job,),
    )
    for r in rows:
        yield RecentCall(
            str(r["model"]),
            float(r["created_at"]),
            int(r["input_tokens"]),
            int(r["output_tokens"]),
            str(r["outcome"]),
        )


# -- items ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemRow:
    index: int  # position in the order the job first recorded its items (the input order for map)
    id: str
    status: str
    stage: str | None
    error: str | None
    file: str | None


def items_of(conn: sqlite3.Connection, job: str, *, status: str | None = None) -> list[ItemRow]:
    """The job's items in input order (only those in `status`, if given)."""
    where, params = "job = ?", [job]
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    rows = conn.execute(
        f"SELECT item, status, stage, error, output FROM items WHERE {where} ORDER BY rowid", params
    )
    return [
        ItemRow(index, str(r["item"]), str(r["status"]), r["stage"], r["error"], r["output"])
        for index, r in enumerate(rows, start=1)
    ]


@dataclass(frozen=True, slots=True)
class ItemCount:
    stage: str | None
    status: str
    n: int
    recent: int  # of those, updated at or after `since`


def item_counts(conn: sqlite3.Connection, job: str, *, since: float = float("inf")) -> list[ItemCount]:
    """Items per (stage, status), each with how many changed since `since`."""
    rows = conn.execute(
        "SELECT stage, status, count(*) AS n, sum(updated_at >= ?) AS recent FROM items "
        "WHERE job = ? GROUP BY stage, status",
        (since, job),
    ).fetchall()
    return [ItemCount(r["stage"], str(r["status"]), int(r["n"]), int(r["recent"] or 0)) for r in rows]


def item_states(conn: sqlite3.Connection, job: str) -> list[tuple[str, str]]:
    """(item, status) of every item of the job."""
    return [
        (str(r[0]), str(r[1])) for r in conn.execute("SELECT item, status FROM items WHERE job = ?", (job,))
    ]


# -- sessions, events, snapshots ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    ts: float
    run_id: int
    kind: str
    model: str | None
    detail: dict[str, Any]
    id: int = 0


def event_detail(text: str | None) -> dict[str, Any]:
    detail = json.loads(text) if text else {}
    return detail if isinstance(detail, dict) else {}


def events_of(conn: sqlite3.Connection, job: str) -> list[EventRow]:
    """Every event of the job's runs, oldest first."""
    if not table_exists(conn, "events"):
        return []
    rows = conn.execute(
        "SELECT e.id, e.ts, e.run_id, e.kind, e.model, e.detail FROM events e JOIN runs r ON r.id = e.run_id "
        "WHERE r.job = ? ORDER BY e.id",
        (job,),
    )
    return [
        EventRow(
            float(r["ts"]),
            int(r["run_id"]),
            str(r["kind"]),
            r["model"],
            event_detail(r["detail"]),
            int(r["id"]),
        )
        for r in rows
    ]


def stage_events(conn: sqlite3.Connection, job: str) -> list[dict[str, Any]]:
    """The details of a plan's "stage" events (what its quality gate did), oldest first."""
    if not table_exists(conn, "events"):
        return []
    rows = conn.execute(
        "SELECT e.detail FROM events e JOIN runs r ON r.id = e.run_id WHERE r.job = ? AND e.kind = 'stage'",
        (job,),
    ).fetchall()
    return [json.loads(r["detail"] or "{}") for r in rows]


@dataclass(frozen=True, slots=True)
class EventCount:
    this_run: bool
    kind: str
    model: str | None
    n: int


def event_counts(conn: sqlite3.Connection, job: str, run_id: int) -> list[EventCount]:
    """Events of the job per (in run `run_id`?, kind, model)."""
    if not table_exists(conn, "events"):
        return []
    rows = conn.execute(
        "SELECT e.run_id = ? AS this_run, e.kind, e.model, count(*) AS n FROM events e "
        "JOIN runs r ON r.id = e.run_id WHERE r.job = ? GROUP BY this_run, e.kind, e.model",
        (run_id, job),
    )
    return [EventCount(bool(r["this_run"]), str(r["kind"]), r["model"], int(r["n"])) for r in rows]


def recorded_script(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    """The detail of the newest "script" event the run journaled at launch, or None."""
    if not table_exists(conn, "events"):
        return None
    row = conn.execute(
        "SELECT detail FROM events WHERE run_id = ? AND kind = 'script' ORDER BY id DESC LIMIT 1", (run_id,)
    ).fetchone()
    try:
        detail = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    return detail if isinstance(detail, dict) else None


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    ts: float
    run_id: int
    data: dict[str, Any]


def snapshots_of(conn: sqlite3.Connection, job: str) -> list[SnapshotRow]:
    """Every live-state snapshot the job's runs published, oldest first."""
    if not table_exists(conn, "snapshots"):
        return []
    rows = conn.execute(
        "SELECT s.ts, s.run_id, s.data FROM snapshots s JOIN runs r ON r.id = s.run_id "
        "WHERE r.job = ? ORDER BY s.ts",
        (job,),
    )
    return [SnapshotRow(float(r["ts"]), int(r["run_id"]), json.loads(r["data"])) for r in rows]
