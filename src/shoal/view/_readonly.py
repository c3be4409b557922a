"""Reading a journal from another process: read-only SQLite, never a write.

The orchestrator is the journal's only writer. `shoal status`, the dashboard and the report open
the file with `mode=ro`, so nothing they do can change it, even while a job runs.
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
    "RunRow",
    "item_of_scope",
    "latest_run",
    "latest_snapshot",
    "open_readonly",
    "reading",
    "runs_of",
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
