"""`--job`: which job of the journal a user means. A job is named by shoal ("map:/abs/out.jsonl",
"plan:/abs/PLAN.md", "workflow:name"); users type what they know: the OUT path, the plan file,
the workflow's name or script. When nothing matches, the error lists the jobs there are."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ..journal import job_names

__all__ = ["describe_jobs", "job_names", "match_job"]


def _candidates(value: str, cwd: Path) -> list[str]:
    path = (cwd / Path(value).expanduser()).resolve()
    stem = Path(value).stem
    return [value, f"map:{path}", f"plan:{path}", f"workflow:{value}", f"workflow:{stem}"]


def match_job(conn: sqlite3.Connection, value: str, cwd: Path) -> str | None:
    """The job `value` names: its exact name, its OUT path, plan file or workflow (name or
    script), or the one job whose name ends with it. None if no job (or several) match."""
    names = [name for name, _, _ in job_names(conn)]
    for candidate in _candidates(value, cwd):
        if candidate in names:
            return candidate
    tail = [name for name in names if name.endswith(value) or name.endswith(f"/{Path(value).name}")]
    return tail[0] if len(tail) == 1 else None


def describe_jobs(conn: sqlite3.Connection) -> str:
    """One line: the jobs of the journal, for an error that says which ones exist."""
    jobs = job_names(conn)
    if not jobs:
        return "the journal holds no job yet"
    listed = [
        f"{name} ({runs} run{'s' if runs != 1 else ''}, last {time.strftime('%H:%M', time.localtime(at))})"
        for name, runs, at in jobs
    ]
    return "jobs here: " + "; ".join(listed)
