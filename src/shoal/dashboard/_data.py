"""What the dashboard lists besides the status: items, calls, events, agents and the job's source.

Every function opens the journal read-only, reads one page and closes it again.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..view import item_of_scope, latest_run, reading, table_exists

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
            where, params = "job = ?", [job]
            if status:
                where += " AND status = ?"
                params.append(status)
            total = int(conn.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0])
            rows = conn.execute(
                f"SELECT item, status, stage, output, error, attempts, updated_at FROM items WHERE {where} "
                "ORDER BY rowid LIMIT ? OFFSET ?",
                [*params, _page(limit), max(0, offset)],
            ).fetchall()
            usage = self._usage(conn, job, [str(r["item"]) for r in rows])
            items = [
                {
                    "id": r["item"],
                    "status": r["status"],
                    "stage": r["stage"],
                    "file": r["output"],
                    "error": r["error"],
                    "attempts": r["attempts"],
                    "updated_at": r["updated_at"],
                    **usage.get(str(r["item"]), _no_usage()),
                }
                for r in rows
            ]
        return {"total": total, "offset": max(0, offset), "items": items}

    @staticmethod
    def _usage(conn: sqlite3.Connection, job: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        scopes = [*ids, *(f"{job}#{i}" for i in ids)]
        marks = ", ".join("?" for _ in scopes)
        rows = conn.execute(
            "SELECT scope, count(*) AS n, sum(input_tokens) AS i, sum(output_tokens) AS o, "
            f"sum(cached_tokens) AS c, sum(cost_usd) AS usd FROM calls WHERE job = ? AND scope IN ({marks}) "
            "GROUP BY scope",
            [job, *scopes],
        )
        usage: dict[str, dict[str, Any]] = {}
        for row in rows:
            entry = usage.setdefault(item_of_scope(job, str(row["scope"])), _no_usage())
            entry["calls"] += int(row["n"])
            entry["input_tokens"] += int(row["i"])
            entry["output_tokens"] += int(row["o"])
            entry["cached_tokens"] += int(row["c"])
            entry["cost_usd"] += float(row["usd"])
        return usage

    def calls(self, *, limit: int = 200, before: int | None = None) -> dict[str, Any]:
        """The newest calls: tokens, cost, latency and outcome of each attempt."""
        if not self.path.exists():
            return {"calls": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"calls": []}
            rows = conn.execute(
                "SELECT id, run_id, scope, stage, model, outcome, attempt, status, input_tokens, "
                "output_tokens, cached_tokens, cost_usd, latency_s, queue_s, error, created_at FROM calls "
                "WHERE job = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (job, before if before is not None else 2**62, _page(limit)),
            ).fetchall()
        calls = []
        for row in rows:
            call = dict(row)
            call["item"] = item_of_scope(job, str(call.pop("scope")))
            calls.append(call)
        return {"calls": calls}

    def events(self, *, limit: int = 200) -> dict[str, Any]:
        """The newest events of the job's runs (429s, retries, and whatever else jobs record)."""
        if not self.path.exists():
            return {"events": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None or not table_exists(conn, "events"):
                return {"events": []}
            rows = conn.execute(
                "SELECT e.id, e.run_id, e.ts, e.kind, e.model, e.detail FROM events e "
                "JOIN runs r ON r.id = e.run_id WHERE r.job = ? ORDER BY e.id DESC LIMIT ?",
                (job, _page(limit)),
            ).fetchall()
        events = []
        for row in rows:
            event = dict(row)
            detail = json.loads(event["detail"]) if event["detail"] else {}
            if isinstance(detail, dict) and isinstance(detail.get("scope"), str):
                detail["item"] = item_of_scope(job, detail.pop("scope"))
            event["detail"] = detail
            events.append(event)
        return {"events": events}

    def agents(self, *, limit: int = 50) -> dict[str, Any]:
        """Agent sessions, most recently active first, each with its current step; running items."""
        if not self.path.exists():
            return {"agents": [], "running": []}
        with reading(self.path) as conn:
            job = self._job(conn)
            if job is None:
                return {"agents": [], "running": []}
            rows = conn.execute(
                "SELECT id, item, messages, updated_at FROM sessions WHERE job = ? "
                "ORDER BY updated_at DESC LIMIT ?",
                (job, _page(limit)),
            ).fetchall()
            running = conn.execute(
                "SELECT item, stage, updated_at FROM items WHERE job = ? AND status = 'running' "
                "ORDER BY updated_at LIMIT ?",
                (job, _page(limit)),
            ).fetchall()
        agents = []
        for row in rows:
            messages = json.loads(row["messages"])
            steps = messages if isinstance(messages, list) else []
            agents.append(
                {
                    "id": row["id"],
                    "item": row["item"],
                    "messages": len(steps),
                    "step": _describe_step(steps[-1]) if steps else "",
                    "updated_at": row["updated_at"],
                }
            )
        return {
            "agents": agents,
            "running": [{"id": r["item"], "stage": r["stage"], "since": r["updated_at"]} for r in running],
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
    if not table_exists(conn, "events"):
        return None
    row = conn.execute(
        "SELECT detail FROM events WHERE run_id = ? AND kind = 'script' ORDER BY id DESC LIMIT 1", (run_id,)
    ).fetchone()
    try:
        detail = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    if not isinstance(detail, dict) or not isinstance(detail.get("text"), str):
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
