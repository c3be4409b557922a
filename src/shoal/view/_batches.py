"""Open provider batches as views show them: provider id, requests by state, age."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..journal import read_batches
from ._format import count, duration

__all__ = ["batch_lines", "open_batches"]


def open_batches(conn: sqlite3.Connection, job: str, now: float) -> list[dict[str, Any]]:
    """The job's batches not collected yet, oldest first."""
    return [
        {
            "provider": row.provider,
            "batch_id": row.batch_id,
            "model": row.model,
            "round": row.round,
            "attempt": row.attempt,
            "state": row.state.value,
            "requests": len(row.keys),
            "counts": row.counts,
            "age_s": max(0.0, now - row.created_at),
        }
        for row in read_batches(conn, job)
        if row.state.open
    ]


def batch_lines(status: dict[str, Any]) -> list[str]:
    """One line per open batch, for the terminal views."""
    lines = []
    for batch in status.get("batches") or []:
        counts = batch["counts"] or {"processing": batch["requests"]}
        by_state = ", ".join(f"{count(n)} {state}" for state, n in counts.items() if n)
        lines.append(
            f"batch {batch['provider']} {batch['batch_id'] or '(being submitted)'} [{batch['state']}]: "
            f"{count(batch['requests'])} requests ({by_state or 'waiting'}), age {duration(batch['age_s'])}"
        )
    return lines
