"""Token usage per call, as the cost estimator reads it: the named query and its row type."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UsageRow", "iter_usage_rows", "read_usage", "usage_rows"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    scope: str
    stage: str
    model: str
    outcome: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


_SELECT = (
    "SELECT scope, stage, model, outcome, input_tokens, output_tokens, cost_usd "
    "FROM calls WHERE job = ? ORDER BY id"
)


def usage_rows(conn: sqlite3.Connection, job: str) -> list[UsageRow]:
    """Every call the journal holds for `job`, every run and outcome included."""
    return [UsageRow(*row) for row in conn.execute(_SELECT, (job,))]


def iter_usage_rows(conn: sqlite3.Connection, job: str) -> Iterator[UsageRow]:
    """The same, streamed: a job of 100,000 calls is summed without holding its rows."""
    cursor = conn.execute(_SELECT, (job,))
    try:
        for row in cursor:
            yield UsageRow(*row)
    finally:
        cursor.close()


def read_usage(path: Path, job: str) -> list[UsageRow]:
    """The same from a journal file opened read-only, before a job starts; [] if there is none yet."""
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return usage_rows(conn, job)
    except sqlite3.Error:  # an older or half-made journal: estimate without it
        return []
    finally:
        conn.close()
