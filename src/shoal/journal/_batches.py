"""The journal's record of provider batches: one row per submission, written before it is trusted.

A row is written (state `submitting`, with the call keys it will carry) before the batch is created
at the provider, and the provider's batch id is added once it is known. A run that finds a
`submitting` row looks for the batch at the provider before it submits anything again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ._store import Journal

__all__ = ["BatchBook", "BatchRow", "BatchState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    tag TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    round TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    batch_id TEXT,
    state TEXT NOT NULL,
    keys TEXT NOT NULL,
    worst_usd REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    counts TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""


class BatchState(StrEnum):
    SUBMITTING = "submitting"  # journaled; the provider may or may not have created it
    OPEN = "open"  # created at the provider, results not collected yet
    CANCELLING = "cancelling"  # cancel asked for; its finished requests are still collected
    COLLECTED = "collected"  # results journaled per call
    CANCELLED = "cancelled"  # ended by a cancel, what had finished collected
    ABANDONED = "abandoned"  # never created at the provider; its requests go into another batch

    @property
    def open(self) -> bool:
        return self in (BatchState.SUBMITTING, BatchState.OPEN, BatchState.CANCELLING)


@dataclass(slots=True)
class BatchRow:
    tag: str
    job: str
    round: str
    attempt: int
    provider: str
    model: str
    batch_id: str | None
    state: BatchState
    keys: list[str]
    worst_usd: float
    input_tokens: int
    created_at: float
    updated_at: float
    counts: dict[str, int] = field(default_factory=dict)


class BatchBook:
    """Reads and writes the batches table of one journal."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def ensure(self) -> None:
        await self._journal.write([(_SCHEMA, ())])

    async def intend(self, row: BatchRow) -> None:
        """Journal a batch before it is submitted; returns once it is on disk."""
        await self._journal.write(
            [
                (
                    "INSERT INTO batches (tag, job, round, attempt, provider, model, batch_id, state, keys, "
                    "worst_usd, input_tokens, counts, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.tag,
                        row.job,
                        row.round,
                        row.attempt,
                        row.provider,
                        row.model,
                        row.batch_id,
                        row.state.value,
                        json.dumps(row.keys),
                        row.worst_usd,
                        row.input_tokens,
                        json.dumps(row.counts),
                        row.created_at,
                        row.updated_at,
                    ),
                )
            ]
        )

    async def opened(self, tag: str, batch_id: str, now: float) -> None:
        await self._journal.write(
            [
                (
                    "UPDATE batches SET batch_id = ?, state = ?, updated_at = ? WHERE tag = ?",
                    (batch_id, BatchState.OPEN.value, now, tag),
                )
            ]
        )

    async def set_state(self, tag: str, state: BatchState, now: float) -> None:
        await self._journal.write(
            [("UPDATE batches SET state = ?, updated_at = ? WHERE tag = ?", (state.value, now, tag))]
        )

    def progress(self, tag: str, counts: dict[str, int], now: float) -> None:
        """Latest counts by state, for status views; nobody waits for them to reach the disk."""
        self._journal.write_nowait(
            [("UPDATE batches SET counts = ?, updated_at = ? WHERE tag = ?", (json.dumps(counts), now, tag))]
        )

    def rows(self, job: str | None = None, round_name: str | None = None) -> list[BatchRow]:
        return read_batches(self._journal._reader, job, round_name)


def read_batches(
    conn: sqlite3.Connection, job: str | None = None, round_name: str | None = None
) -> list[BatchRow]:
    """Batch rows from a journal connection; none where the journal predates batches."""
    sql = "SELECT * FROM batches WHERE 1=1"
    params: list[Any] = []
    if job is not None:
        sql += " AND job = ?"
        params.append(job)
    if round_name is not None:
        sql += " AND round = ?"
        params.append(round_name)
    try:
        found = list(conn.execute(sql + " ORDER BY created_at, tag", params))
    except sqlite3.OperationalError:  # no batches table: no batch was ever submitted here
        return []
    return [
        BatchRow(
            tag=r["tag"],
            job=r["job"],
            round=r["round"],
            attempt=int(r["attempt"]),
            provider=r["provider"],
            model=r["model"],
            batch_id=r["batch_id"],
            state=BatchState(r["state"]),
            keys=list(json.loads(r["keys"])),
            worst_usd=float(r["worst_usd"]),
            input_tokens=int(r["input_tokens"]),
            created_at=float(r["created_at"]),
            updated_at=float(r["updated_at"]),
            counts=dict(json.loads(r["counts"] or "{}")),
        )
        for r in found
    ]
