"""What the view says about limits: when max_tokens reservations rather than the provider hold
throughput back (and the max_tokens the answers suggest), "(learning)" only while limits are
unknown, and whole model names at 80 columns."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

from rich.console import Console

from shoal.budget import BudgetSettings, ModelBudget
from shoal.config import ModelLimits
from shoal.journal import CallRecord, Journal
from shoal.providers._types import RateSnapshot
from shoal.report._throughput import sustained_rate
from shoal.view import read_status, render_status
from shoal.view._reservation import reservation_check

from clocks import VirtualClock

JOB = "map:/tmp/out.jsonl"
MODEL = "anthropic:claude-3-5-haiku-20241022"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, at: float = T0) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    def wall(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        return None


def test_reservations_that_fill_the_token_limit_while_answers_are_short_are_named() -> None:
    outputs = [120, 150, 90, 180, 140, 160]
    inputs = [200] * 6
    check = reservation_check(4000, {"rpm": 60, "tpm": 100_000}, {"rpm": 24, "tpm": 8_400}, outputs, inputs)
    assert check is not None and check["limiting"] == ["tpm"]
    assert check["reserved_percent"]["tpm"] > 100 and check["used_percent"]["tpm"] < 10
    assert check["suggested_max_tokens"] == 250  # the longest answer (180) plus a quarter, rounded up
    # max_tokens close to what answers need, or a provider that is really busy: not the reservation.
    fitting = reservation_check(300, {"tpm": 100_000}, {"rpm": 24, "tpm": 8_400}, outputs, inputs)
    assert fitting is not None and fitting["limiting"] == []
    busy = reservation_check(4000, {"tpm": 100_000}, {"rpm": 24, "tpm": 90_000}, outputs, inputs)
    assert busy is not None and busy["limiting"] == []
    assert reservation_check(4000, {"tpm": 100_000}, {"rpm": 24}, outputs[:2], [200] * 2) is None  # too few


async def journal_with_live_snapshot(
    path: Path,
    *,
    learning: bool,
    max_tokens: int,
    at: float = T0,
    snapshot_at: float | None = None,
    cluster: list[dict[str, Any]] | None = None,
) -> None:
    """A run started at `at`: ten answers of about 100 tokens, and a snapshot of its budget."""
    journal = Journal.open(path, Clock(at))
    run_id = await journal.begin_run(JOB, "shoal map in.jsonl", os.getpid())
    for n in range(10):
        await journal.record_call(
            CallRecord(
                key=f"k{n}",
                job=JOB,
                run_id=run_id,
                scope=f"{JOB}#r{n}",
                stage="map",
                model=MODEL,
                outcome="ok",
                attempt=1,
                input_tokens=200,
                output_tokens=100 + n,
                cached_tokens=0,
                cost_usd=0.0,
                latency_s=0.5,
                queue_s=0.0,
                created_at=at + 1 + n,
            )
        )
    snapshot: dict[str, Any] = {
        "ts": at + 29 if snapshot_at is None else snapshot_at,
        "run_id": run_id,
        "stages": ["map"],
        "stop": {"state": "running", "reason": None},
        "workers": {"in_flight": 4, "waiting": 12, "ceiling": 16},
        "counters": {"sent": 10, "replayed": 0},
        "models": {
            MODEL: {
                "limits": {"rpm": 50.0, "tpm": 40_000.0},
                "learning": learning,
                "factor": 1.0,
                "paused_for_s": 0.0,
                "rate_limited": 0,
                "pauses": 0,
                "max_tokens": max_tokens,
            }
        },
        "ledger": {"max_cost_usd": None, "reserved_usd": 0.0, "unpriced": []},
        "cluster": cluster or [],
    }
    journal.snapshot(run_id, snapshot)
    await journal.close()


def rendered(status: dict[str, Any], width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width).print(render_status(status))
    return out.getvalue()


async def test_the_view_says_when_max_tokens_not_the_provider_limits_throughput(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await journal_with_live_snapshot(path, learning=False, max_tokens=2000)
    status = read_status(path, now=T0 + 30)
    check = status["models"][0]["reservation"]
    assert check["limiting"] == ["tpm"] and check["suggested_max_tokens"] == 150
    text = " ".join(rendered(status).replace("│", " ").split())
    assert f"{MODEL}: max_tokens 2,000, not the provider, limits throughput" in text
    assert "suggest max_tokens 150" in text
    assert "(learning)" not in text

    short = tmp_path / "short" / "journal.db"
    await journal_with_live_snapshot(short, learning=True, max_tokens=150)
    status = read_status(short, now=T0 + 30)
    assert status["models"][0]["reservation"]["limiting"] == []
    text = rendered(status, width=200)
    assert "not the provider" not in text and "(learning)" in text


async def test_learning_ends_once_a_response_tells_the_limits() -> None:
    budget = ModelBudget(
        MODEL, ModelLimits(), clock=VirtualClock(), rng=random.Random(1), settings=BudgetSettings()
    )
    assert budget.learning and not budget.limits_seen
    budget.observe(RateSnapshot(remaining_requests=10))  # no limit in it: still learning
    assert not budget.limits_seen
    budget.observe(RateSnapshot(limit_requests=5000, remaining_requests=4999, limit_tokens=800_000))
    assert budget.limits_seen


async def test_status_keeps_the_whole_model_name_at_80_columns(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await journal_with_live_snapshot(path, learning=False, max_tokens=2000)
    live = rendered(read_status(path, now=T0 + 30))
    assert MODEL in live and "…" not in live
    assert all(len(line) <= 80 for line in live.splitlines())
    after = rendered(read_status(path, now=T0 + 3600))  # the process is gone: the models table
    assert MODEL in after and "…" not in after


def test_the_reports_headline_rate_is_sustained_not_a_burst() -> None:
    # 100 requests a minute for three minutes, paced at 0.6 s: some 2 s buckets hold 4 requests
    # (120/min scaled up) though no minute ever holds more than 100.
    times = [m * 60 + i * 0.6 for m in range(3) for i in range(100)]
    buckets: dict[int, int] = {}
    for t in times:
        buckets[int(t // 2)] = buckets.get(int(t // 2), 0) + 1
    assert max(buckets.values()) * 30 >= 120  # what the old headline reported
    rate, how = sustained_rate(times, 180.0)
    assert rate == 100 and how == "busiest minute"
    rate, how = sustained_rate([t for t in times if t < 20], 20.0)  # a job shorter than a minute
    assert 95 <= rate <= 105 and how.startswith("mean over")
