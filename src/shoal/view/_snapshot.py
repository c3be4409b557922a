"""The live state of a running job that only the orchestrator's memory holds.

Everything else a view shows (items, calls, tokens, cost, 429s, retries) is read from the
journal's tables; this snapshot adds workers in flight, the rate budgets' current limits and
pauses, and the cost ceiling. The publisher writes one to the journal every second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..cluster import workers_of
from ..engine import Job

__all__ = ["SNAPSHOT_VERSION", "capture"]

SNAPSHOT_VERSION = 1


def capture(job: Job, *, stages: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON-ready picture of `job` now. `stages`: the stages the job declares, in order."""
    stats = job.caller.stats
    ledger = job.ledger
    models: dict[str, Any] = {}
    for budget in job.budgets.all():
        models[budget.model_key] = {
            "limits": budget.limits(),
            # Still guessing: no limits configured and no response has told them yet.
            "learning": budget.learning and not budget.limits_seen,
            "factor": round(budget.factor, 4),
            "paused_for_s": round(budget.paused_for, 3),
            "rate_limited": budget.rate_limited_count,
            "pauses": budget.pause_count,
            "max_tokens": ledger.max_tokens.get(budget.model_key),  # what each call reserves
        }
        shared = getattr(budget, "shared_view", None)
        if shared is not None:  # shared through Redis: processes on it now, this one's share
            models[budget.model_key]["shared"] = shared()
    return {
        "version": SNAPSHOT_VERSION,
        "ts": job.clock.wall(),
        "run_id": job.run_id,
        "job": job.name,
        "stop": {"state": job.stop.state.value, "reason": job.stop.reason},
        "stages": list(stages),
        "workers": {
            "in_flight": stats.in_flight,
            "waiting": stats.waiting,
            "ceiling": job.caller.concurrency,
            "limit": job.caller.limit,
            "auto": job.caller.tuner is not None,
        },
        "cluster": [worker.as_dict() for worker in workers_of(job)],  # Ray workers; empty when local
        "outages": {
            gate.provider: {
                "down_for_s": round(gate.down_for, 3),
                "outages": gate.outages,
                "probes": gate.probes,
            }
            for gate in job.caller.outages.all()
        },
        "counters": {
            "sent": stats.sent,
            "replayed": stats.replayed,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "failed": stats.failed,
        },
        "models": models,
        "ledger": {
            "run_cost_usd": ledger.total.cost_usd,
            "spent_usd": ledger.spent,
            "reserved_usd": ledger.reserved,
            "max_cost_usd": ledger.max_cost_usd,
            "unpriced": sorted(ledger.unpriced),
            "projected_usd": ledger.projected_usd,
        },
    }
