"""`read_status`: one job's state, read from the journal; the one source of `shoal status --json`,
the dashboard and the live terminal view, so that they agree by construction.

Items, calls, tokens, dollars, 429s and retries come from the journal's tables; workers in
flight, the rate budgets' limits and pauses and the cost ceiling from the newest snapshot the
running job published (or from a snapshot handed in by the job's own process).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gate import GateTally
from ..journal import (
    CallOutcome,
    CallTotalsCache,
    ItemStatus,
    RunRow,
    event_counts,
    item_counts,
    item_states,
    last_event_detail,
    latest_run,
    latest_snapshot,
    reading,
    recent_calls,
    run_count,
    stage_events,
)
from ._batches import open_batches
from ._format import phase_of
from ._reservation import reservation_check
from ._tally import CallTally

__all__ = ["STATUS_VERSION", "UNASSIGNED_STAGE", "item_key", "read_status"]

STATUS_VERSION = 1
UNASSIGNED_STAGE = "(no stage)"
_RECENT_S = 60.0  # window for throughput, ETA and budget use
_MIN_WINDOW_S = 5.0
_STALE_S = 10.0  # a snapshot older than this no longer proves the job is alive
_SLACK_S = 5.0  # calls are written slightly out of created_at order
_PID_START_SLACK_S = 2.0  # /proc's boot time has whole seconds; a process starts before its run


def item_key(status: str) -> str:
    """The JSON key of an item status: "needs-review" -> "needs_review"."""
    return status.replace("-", "_")


_ITEM_KEYS = tuple(item_key(s.value) for s in ItemStatus)


def _counts() -> dict[str, int]:
    return {"total": 0, **dict.fromkeys(_ITEM_KEYS, 0)}


@dataclass(slots=True)
class _Stage:
    name: str
    first_call: int | None = None
    counts: dict[str, int] = field(default_factory=_counts)
    recent: int = 0
    tally: CallTally = field(default_factory=CallTally)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "phase": phase_of(self.name), **self.counts, **self.tally.as_dict()}


def read_status(
    journal_path: Path,
    *,
    job: str | None = None,
    live: dict[str, Any] | None = None,
    now: float | None = None,
    cache: CallTotalsCache | None = None,
) -> dict[str, Any]:
    """The status of `job` (default: the job of the newest run) as a JSON-ready dict.

    `live`: a snapshot taken in the job's own process, used instead of the newest stored one.
    `cache`: call totals kept between calls by a process that polls, so each call is read once.
    """
    now = time.time() if now is None else now
    base: dict[str, Any] = {"version": STATUS_VERSION, "now": now, "journal": str(journal_path), "job": None}
    if not journal_path.exists():
        return {**base, "note": "no journal yet: no job has run in this directory"}
    with reading(journal_path) as conn:
        run = latest_run(conn, job)
        if run is None:
            note = "the journal holds no run yet" if job is None else f"the journal holds no run of {job!r}"
            return {**base, "note": note}
        snapshot = (
            live if live is not None and live.get("run_id") == run.id else latest_snapshot(conn, run.id)
        )
        return {**base, **_Reader(conn, run, snapshot, now, cache or CallTotalsCache()).build()}


def _proc_start(pid: int) -> tuple[str, float] | None:
    """(state letter, start time on the wall clock) of a process, from Linux's /proc; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        fields = stat[stat.rindex(")") + 2 :].split()
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int, started_at: float) -> bool:
    """Whether the run's process still runs: not gone, not a zombie (killed, not yet reaped), and
    not a newer process that was given the same pid after the run's own died."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    found = _proc_start(pid)
    if found is None:
        return True
    state, started = found
    return state not in ("Z", "X") and started <= started_at + _PID_START_SLACK_S


class _Reader:
    def __init__(
        self,
        conn: sqlite3.Connection,
        run: RunRow,
        snapshot: dict[str, Any] | None,
        now: float,
        cache: CallTotalsCache,
    ):
        self.conn = conn
        self.cache = cache
        self.run = run
        self.snapshot = snapshot
        self.now = now
        self.state = self._state()
        self.live = self.state == "running"
        self.stages: dict[str, _Stage] = {}
        self.events: dict[tuple[bool, str], int] = {}
        # Per model, output and input tokens of the calls answered in the recent window.
        self.answered: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))

    def _state(self) -> str:
        if self.run.status != "running":
            return self.run.status
        fresh = self.snapshot is not None and self.now - float(self.snapshot.get("ts", 0)) <= _STALE_S
        alive = fresh or _pid_alive(self.run.pid, self.run.started_at)
        return "running" if alive else "interrupted"

    def _stage(self, name: str) -> _Stage:
        stage = self.stages.get(name)
        if stage is None:
            stage = self.stages[name] = _Stage(name)
        return stage

    def build(self) -> dict[str, Any]:
        run, snap = self.run, self.snapshot or {}
        totals, models = self._calls()
        items = self._items()
        events = self.events = self._events()
        window = min(_RECENT_S, max(_MIN_WINDOW_S, self.now - run.started_at))
        ordered = sorted(self.stages.values(), key=_stage_order(snap.get("stages") or []))
        progress = self._progress(items, window)
        workers = snap.get("workers") if self.live else None
        return {
            "job": run.job,
            "run": {
                "id": run.id,
                "status": run.status,
                "state": self.state,
                "stopping": _stopping(snap) if self.live else None,
                "command": run.command,
                "pid": run.pid,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "elapsed_s": (run.finished_at or self.now) - run.started_at,
                "runs": self._run_count(),
            },
            "items": items,
            "phases": _phases(ordered),
            "stages": [stage.as_dict() for stage in ordered],
            "workers": None if workers is None else {**workers, **_counters(snap)},
            "cluster": self._cluster(snap),
            "totals": {
                "job": {**totals["job"].as_dict(), "retries": _sum_kind(events, "retry")},
                "run": {**totals["run"].as_dict(), "retries": events.get((True, "retry"), 0)},
            },
            "models": self._models(models, snap, window),
            "cost": self._cost(totals, snap, items),
            "progress": progress,
            "gate": self._gate(),
            "batches": open_batches(self.conn, run.job, self.now),
            "snapshot": None if not snap else {"ts": snap.get("ts"), "age_s": self.now - float(snap["ts"])},
            "outages": {
                "run": events.get((True, "outage_start"), 0),
                "job": _sum_kind(events, "outage_start"),
                # Providers down right now (probing until they answer), from the live snapshot.
                "down": {
                    name: gate["down_for_s"]
                    for name, gate in ((snap.get("outages") or {}) if self.live else {}).items()
                    if gate.get("down_for_s")
                },
            },
        }

    # -- journal tables -----------------------------------------------------------------------

    def _items(self) -> dict[str, int]:
        """Per-stage item counts (into self.stages) and the job's totals."""
        since = max(self.run.started_at, self.now - _RECENT_S)
        rows = item_counts(self.conn, self.run.job, since=since)
        declared = (self.snapshot or {}).get("stages") or []
        known = {str(s) for s in declared} | set(self.stages) | {r.stage for r in rows if r.stage}
        # An item whose stage is not recorded yet counts under the job's only stage, if it has one.
        fallback = next(iter(known)) if len(known) == 1 else UNASSIGNED_STAGE
        for name in declared:
            self._stage(str(name))
        totals = _counts()
        for row in rows:
            key = item_key(row.status)
            if key not in totals:
                continue
            stage = self._stage(row.stage or fallback)
            n = row.n
            stage.counts[key] += n
            stage.counts["total"] += n
            totals[key] += n
            totals["total"] += n
            if key in ("done", "failed", "needs_review"):
                stage.recent += row.recent
        return totals

    def _calls(self) -> tuple[dict[str, CallTally], dict[str, dict[str, CallTally]]]:
        totals = {"job": CallTally(), "run": CallTally()}
        models: dict[str, dict[str, CallTally]] = defaultdict(
            lambda: {"job": CallTally(), "run": CallTally()}
        )
        groups = self.cache.refresh(self.conn, self.run.job)
        for (run_id, stage_name, model, outcome), group in groups.items():
            values = (outcome, group.n, group.input_tokens, group.output_tokens, group.cached_tokens)
            scopes = ["job", "run"] if run_id == self.run.id else ["job"]
            for scope in scopes:
                totals[scope].add_row(*values, group.cost_usd, model_s=group.latency_s, queue_s=group.queue_s)
                models[model][scope].add_row(
                    *values, group.cost_usd, model_s=group.latency_s, queue_s=group.queue_s
                )
            stage = self._stage(stage_name)
            stage.tally.add_row(*values, group.cost_usd, model_s=group.latency_s, queue_s=group.queue_s)
            first = group.first_id
            stage.first_call = first if stage.first_call is None else min(stage.first_call, first)
        return totals, models

    def _cluster(self, snap: dict[str, Any]) -> list[dict[str, Any]]:
        """Ray workers: live from the snapshot, else as the run's end left them (its "workers" event)."""
        if self.live:
            return list(snap.get("cluster") or [])
        detail = last_event_detail(self.conn, self.run.id, "workers") or {}
        return list(detail.get("workers") or [])

    def _events(self) -> dict[tuple[bool, str], int]:
        """Counts by (this run?, kind), and by (this run?, "kind@model") for per-model figures."""
        counts: dict[tuple[bool, str], int] = defaultdict(int)
        for row in event_counts(self.conn, self.run.job, self.run.id):
            counts[(row.this_run, row.kind)] += row.n
            counts[(row.this_run, f"{row.kind}@{row.model}")] += row.n
        return counts

    def _recent_usage(self, window: float) -> dict[str, dict[str, float]]:
        """Per model: requests and tokens sent in the last `window` seconds, as per-minute rates."""
        since = self.now - window
        used: dict[str, dict[str, float]] = defaultdict(
            lambda: {"rpm": 0.0, "tpm": 0.0, "itpm": 0.0, "otpm": 0.0}
        )
        for row in recent_calls(self.conn, self.run.job):
            created = row.created_at
            if created < since - _SLACK_S:
                break
            if created < since:
                continue
            entry = used[row.model]
            if row.outcome == CallOutcome.OK:
                answered = self.answered[row.model]
                answered[0].append(row.output_tokens)
                answered[1].append(row.input_tokens)
            entry["rpm"] += 1
            entry["itpm"] += row.input_tokens
            entry["otpm"] += row.output_tokens
            entry["tpm"] += row.input_tokens + row.output_tokens
        scale = 60.0 / window
        return {model: {k: v * scale for k, v in entry.items()} for model, entry in used.items()}

    def _gate(self) -> dict[str, Any] | None:
        """What a plan's quality gate did (from its "stage" events), or None for other jobs."""
        details = stage_events(self.conn, self.run.job)
        if not details:
            return None
        tally = GateTally()
        for detail in details:
            item, stage, outcome = (str(detail.get(k)) for k in ("item", "stage", "outcome"))
            tally.record(item, stage, outcome, detail)
        states = item_states(self.conn, self.run.job)
        shipped = {item for item, status in states if status == ItemStatus.DONE}
        needs_review = {item for item, status in states if status == ItemStatus.NEEDS_REVIEW}
        return {
            "lint_fixed": sorted(tally.lint_fixed),
            "flagged": sorted(tally.flagged),
            "fixed": sorted(tally.flagged & shipped),
            "escalated": sorted(tally.escalated),
            "needs_review": sorted(needs_review),
            "line": tally.line(shipped, needs_review),
        }

    def _run_count(self) -> int:
        return run_count(self.conn, self.run.job)

    # -- derived figures ------------------------------------------------------------------------

    def _models(
        self, models: dict[str, dict[str, CallTally]], snap: dict[str, Any], window: float
    ) -> list[dict[str, Any]]:
        budgets: dict[str, Any] = snap.get("models") or {}
        usage = self._recent_usage(window) if self.live else {}
        events = self.events
        out: list[dict[str, Any]] = []
        for key in sorted(set(models) | set(budgets)):
            tallies = models.get(key) or {"job": CallTally(), "run": CallTally()}
            budget = budgets.get(key)
            entry: dict[str, Any] = {
                "model": key,
                "job": {**tallies["job"].as_dict(), "retries": _sum_kind(events, f"retry@{key}")},
                "run": {**tallies["run"].as_dict(), "retries": events.get((True, f"retry@{key}"), 0)},
                "budget": None,
                "usage": None,
                "reservation": None,
            }
            if budget is not None and self.live:
                limits = {k: float(v) for k, v in (budget.get("limits") or {}).items()}
                entry["budget"] = {**budget, "limits": limits}
                rates = usage.get(key, dict.fromkeys(limits, 0.0))
                entry["usage"] = {
                    "window_s": window,
                    "per_minute": {k: rates.get(k, 0.0) for k in limits},
                    "percent": {k: 100.0 * rates.get(k, 0.0) / v for k, v in limits.items() if v > 0},
                }
                outputs, inputs = self.answered.get(key, ([], []))
                reserving = budget.get("max_tokens")
                entry["reservation"] = reservation_check(reserving, limits, rates, outputs, inputs)
            out.append(entry)
        return out

    def _progress(self, items: dict[str, int], window: float) -> dict[str, Any]:
        finished = items["done"] + items["failed"] + items["needs_review"]
        remaining = items["pending"] + items["running"]
        recent = sum(stage.recent for stage in self.stages.values())
        per_min = recent * 60.0 / window if self.live else None
        eta = None
        if self.live and remaining == 0:
            eta = 0.0
        elif self.live and recent > 0:
            eta = remaining / (recent / window)
        return {"finished": finished, "remaining": remaining, "per_minute": per_min, "eta_s": eta}

    def _cost(
        self, totals: dict[str, CallTally], snap: dict[str, Any], items: dict[str, int]
    ) -> dict[str, Any]:
        spent = totals["job"].cost_usd
        ledger: dict[str, Any] = snap.get("ledger") or {}
        finished = items["done"] + items["failed"] + items["needs_review"]
        projected = ledger.get("projected_usd")  # a job's own projection (a plan's, after each phase)
        if projected is None and items["total"] and finished and spent:
            projected = spent / finished * items["total"]
        return {
            "spent_usd": round(spent, 8),
            "run_usd": round(totals["run"].cost_usd, 8),
            "max_usd": ledger.get("max_cost_usd"),
            "reserved_usd": ledger.get("reserved_usd") if self.live else None,
            "projected_usd": None if projected is None else round(projected, 8),
            "unpriced": ledger.get("unpriced") or [],
        }


def _stopping(snap: dict[str, Any]) -> str | None:
    stop = snap.get("stop") or {}
    state = stop.get("state")
    return None if state in (None, "running") else str(state)


def _counters(snap: dict[str, Any]) -> dict[str, Any]:
    counters = snap.get("counters") or {}
    return {"sent": counters.get("sent", 0), "replayed": counters.get("replayed", 0)}


def _sum_kind(events: dict[tuple[bool, str], int], kind: str) -> int:
    return events.get((True, kind), 0) + events.get((False, kind), 0)


def _stage_order(declared: list[Any]) -> Any:
    positions = {str(name): index for index, name in enumerate(declared)}

    def key(stage: _Stage) -> tuple[int, float, str]:
        if stage.name in positions:
            return (0, positions[stage.name], stage.name)
        if stage.first_call is not None:
            return (1, stage.first_call, stage.name)
        return (2, 0, stage.name)

    return key


def _phases(stages: list[_Stage]) -> list[dict[str, Any]]:
    phases: dict[str | None, dict[str, Any]] = {}
    for stage in stages:
        name = phase_of(stage.name)
        phase = phases.get(name)
        if phase is None:
            phase = phases[name] = {"name": name, "stages": [], **_counts()}
        phase["stages"].append(stage.name)
        for key, value in stage.counts.items():
            phase[key] += value
    return list(phases.values())
