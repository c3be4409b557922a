"""What the dashboard lists besides the status: items, calls, events, agents and the job's source.

Every function opens the journal read-only, reads one page and closes it again.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..journal import (
    call_page,
    event_page,
    item_count,
    item_of_scope,
    item_page,
    latest_run,
    reading,
    recorded_script,
    running_items,
    sessions_page,
    usage_by_scope,
)

__all__ = ["JournalView"]

_MAX_PAGE = 1000
_MAX_SOURCE_BYTES = 256_000
_STEP_CHARS = 160


def _page(limit: int) -> int:
    return max(1, min(_MAX_PAGE, limit))


@dataclass(frozen=True, slots=True)
class JournalView:
    """Read-only lists of one journal, for the job `job` (default: the newest run's job)."""

    path: Path
    job: str | None = None

    def _job(self, conn: sqlite3.Connection) -> str | None:
        run = latest_run(conn, self.job)
        return None if run is None else run.job

    def items(self, *, offset: int = 0, limit: int = 200, status: str | None = None) -> dict[str, Any]:
        """Items in input order, each with the tokens and cost of its calls."""
        if not self.path.exists():
            return {"total": 0, "items": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"total": 0, "items": []}
            total = item_count(conn, job, status=status)
            rows = item_page(conn, job, offset=max(0, offset), limit=_page(limit), status=status)
            usage = self._usage(conn, job, [str(r.id) for r in rows])
            items = [{**asdict(r), **usage.get(str(r.id), _no_usage())} for r in rows]
        return {"total": total, "offset": max(0, offset), "items": items}

    @staticmethod
    def _usage(conn: sqlite3.Connection, job: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        scopes = [*ids, *(f"{job}#{i}" for i in ids)]
        usage: dict[str, dict[str, Any]] = {}
        for row in usage_by_scope(conn, job, scopes):
            entry = usage.setdefault(item_of_scope(job, row.scope), _no_usage())
            entry["calls"] += row.calls
            entry["input_tokens"] += row.input_tokens
            entry["output_tokens"] += row.output_tokens
            entry["cached_tokens"] += row.cached_tokens
            entry["cost_usd"] += row.cost_usd
        return usage

    def calls(self, *, limit: int = 200, before: int | None = None) -> dict[str, Any]:
        """The newest calls: tokens, cost, latency and outcome of each attempt."""
        if not self.path.exists():
            return {"calls": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"calls": []}
            rows = call_page(conn, job, limit=_page(limit), before=before)
        return {"calls": [asdict(row) for row in rows]}

    def events(self, *, limit: int = 200) -> dict[str, Any]:
        """The newest events of the job's runs (429s, retries, and whatever else jobs record)."""
        if not self.path.exists():
            return {"events": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"events": []}
            rows = event_page(conn, job, limit=_page(limit))
        events = []
        for row in rows:
            detail = dict(row.detail)
            if isinstance(detail.get("scope"), str):
                detail["item"] = item_of_scope(job, detail.pop("scope"))
            event = {"id": row.id, "run_id": row.run_id, "ts": row.ts, "kind": row.kind, "model": row.model}
            events.append({**event, "detail": detail})
        return {"events": events}

    def agents(self, *, limit: int = 50) -> dict[str, Any]:
        """Agent sessions, most recently active first, each with its current step; running items."""
        if not self.path.exists():
            return {"agents": [], "running": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"agents": [], "running": []}
            rows = sessions_page(conn, job, limit=_page(limit))
            running = running_items(conn, job, limit=_page(limit))
        agents = []
        for row in rows:
            messages = json.loads(row.messages)
            steps = messages if isinstance(messages, list) else []
            agents.append(
                {
                    "id": row.id,
                    "item": row.item,
                    "messages": len(steps),
                    "step": _describe_step(steps[-1]) if steps else "",
                    "updated_at": row.updated_at,
                }
            )
        return {
            "agents": agents,
            "running": [{"id": r.item, "stage": r.stage, "since": r.since} for r in running],
        }

    def source(self) -> dict[str, Any]:
        """The command of the newest run and the plan, workflow script or prompt it ran."""
        if not self.path.exists():
            return {"command": None, "kind": None, "path": None, "text": None}
        with reading(self.path) as conn:
            run = latest_run(conn, self.job)
            recorded = None if run is None else _recorded_script(conn, run.id)
        if run is None:
            return {"command": None, "kind": None, "path": None, "text": None}
        if recorded is not None:  # the script as it was at launch (or as `shoal draft` wrote it)
            return {"command": run.command, **recorded}
        workspace = self.path.resolve().parent.parent
        return {"command": run.command, **_source_of(run.command, workspace)}


def _recorded_script(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    """The "script" event a run journaled at launch: {"kind", "path", "text"}, or None."""
    detail = recorded_script(conn, run_id)
    if detail is None or not isinstance(detail.get("text"), str):
        return None
    text = detail["text"][:_MAX_SOURCE_BYTES]
    return {"kind": detail.get("source"), "path": detail.get("path"), "text": text}


def _no_usage() -> dict[str, Any]:
    return {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0}


def _describe_step(message: Any) -> str:
    """A short line for an agent's newest message (pydantic-ai's JSON form, or anything else)."""
    if isinstance(message, dict) and isinstance(message.get("parts"), list) and message["parts"]:
        part = message["parts"][-1]
        if isinstance(part, dict):
            kind = str(part.get("part_kind") or message.get("kind") or "message")
            if part.get("tool_name"):
                return f"{kind}: {part['tool_name']}"
            content = part.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            return f"{kind}: {text[:_STEP_CHARS]}"
    text = message if isinstance(message, str) else json.dumps(message)
    return text[:_STEP_CHARS]


def _read_text(path: Path) -> str | None:
    try:
        data = path.read_bytes()[:_MAX_SOURCE_BYTES]
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def _source_of(command: str, workspace: Path) -> dict[str, Any]:
    """`shoal run FILE`: the file; `shoal map`: the prompt template (inline or from its file)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return {"kind": None, "path": None, "text": None}
    # The command as typed: `shoal ...`, `.venv/bin/shoal ...` or `python -m shoal ...`.
    args = argv[3:] if len(argv) >= 3 and argv[1] == "-m" else argv[1:]
    if len(args) >= 2 and args[0] == "run":
        target = workspace / args[1]
        kind = "workflow" if target.suffix == ".py" else "plan"
        return {"kind": kind, "path": args[1], "text": _read_text(target)}
    if args and args[0] == "map":
        for flag, value in zip(args, args[1:], strict=False):
            if flag == "--prompt":
                return {"kind": "prompt", "path": None, "text": value}
            if flag == "--prompt-file":
                return {"kind": "prompt", "path": value, "text": _read_text(workspace / value)}
    return {"kind": None, "path": None, "text": None}
