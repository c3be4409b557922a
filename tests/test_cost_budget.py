"""The cost budget is used, not only guarded: near the limit calls wait instead of the job stopping."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shoal.budget import BudgetSettings
from shoal.config import JobSettings, ModelLimits, Price, ShoalConfig
from shoal.engine import CallSpec, StateDir, Stopped, StopSignal, open_job
from shoal.providers import Message, ModelRef, ModelReply, ModelRequest, Usage

from helpers import invoke_shoal, output_ids, write_records

MODEL = ModelRef("openai", "gpt-4o-mini")
# $1 per million tokens either way: a call's worst case is (prompt + max_tokens) micro-dollars.
PRICE = Price(input=1.0, output=1.0)


@dataclass
class Held:
    """Answers only when the test lets it; records how many calls were in flight at once."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def get(self, provider: str) -> Held:
        return self

    async def complete(self, request: ModelRequest) -> ModelReply:
        self.started += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return ModelReply("short answer", Usage(10, 10), "stop")

    async def aclose(self) -> None:
        return None


def spec(index: int, max_tokens: int = 990) -> CallSpec:
    request = ModelRequest(MODEL.name, (Message("user", f"record {index}"),), max_tokens)
    return CallSpec(scope=f"item-{index}", stage="map", model=MODEL, request=request)


def config(max_cost_usd: float) -> ShoalConfig:
    return ShoalConfig(
        limits={MODEL.key: ModelLimits(rpm=60_000, tpm=10_000_000)},
        prices={MODEL.key: PRICE},
        job=JobSettings(concurrency=8, max_cost_usd=max_cost_usd),
    )


def opened(workspace: Path, provider: Held, cfg: ShoalConfig):  # type: ignore[no-untyped-def]
    return open_job(
        state=StateDir(workspace),
        config=cfg,
        name="budget-job",
        command="test",
        env={},
        stop=StopSignal(),
        providers=provider,
        budget_settings=BudgetSettings(pause_jitter_s=0.0, spacing_jitter=0.0),
    )


async def wait_until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def test_a_call_that_does_not_fit_waits_for_the_calls_in_flight_instead_of_stopping(
    workspace: Path,
) -> None:
    provider = Held()
    # Each call's worst case is about $0.001; the budget holds two of them, not three.
    async with opened(workspace, provider, config(max_cost_usd=0.0025)) as job:
        calls = [asyncio.ensure_future(job.caller.call(spec(i))) for i in range(3)]
        await wait_until(lambda: provider.started == 2, "two calls sent")
        for _ in range(50):
            await asyncio.sleep(0)
        assert provider.started == 2 and not any(c.done() for c in calls)  # the third waits
        provider.release.set()
        results = await asyncio.gather(*calls)
        assert [r.text for r in results] == ["short answer"] * 3
        assert provider.most_in_flight == 2
        assert job.ledger.spent <= 0.0025 and job.ledger.reserved == 0.0
        assert job.stop.running


async def test_the_job_stops_only_when_the_next_call_does_not_fit_with_nothing_in_flight(
    workspace: Path,
) -> None:
    provider = Held()
    provider.release.set()
    async with opened(workspace, provider, config(max_cost_usd=0.0015)) as job:
        await job.caller.call(spec(0))  # costs $0.00002 of its $0.001 reservation
        await job.caller.call(spec(1))
        with pytest.raises(Stopped) as raised:
            await job.caller.call(spec(2, max_tokens=5_000))  # worst case $0.005: can never fit
        assert (job.stop.reason or "").startswith("budget: ")  # the engine drained the job itself
    message = str(raised.value)
    assert (
        "$0.000040 spent of $0.001500" in message
        and "could cost up to $0.005007, more than the $0.001460 left" in message
    )
    assert "raise --max-cost" in message
    assert provider.started == 2


@pytest.mark.timeout(120)
def test_a_map_job_spends_close_to_its_budget_and_never_over_it(workspace: Path) -> None:
    """`--max-cost 0.01` at 16 calls in flight: each call's worst case is about $0.0006, its usual
    cost about half of that; the old all-or-nothing reservation stopped near a third of the budget."""
    write_records(workspace / "in.jsonl", 60)
    (workspace / "shoal.toml").write_text("[rehearsal]\nlatency_s = 0\n[job]\nconcurrency = 16\n")
    argv = ["map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", "rehearsal", "--out", "out.jsonl"]
    budget = 0.01
    result = invoke_shoal(workspace, *argv, "--max-tokens", "1000", "--max-cost", str(budget))
    assert result.returncode == 3, result.stderr
    assert "raise --max-cost" in result.stderr and "resume with:" in result.stderr
    # Sixty records are expected to cost about $0.02: the user was told before launch.
    assert "shoal: warning: the expected cost" in result.stderr
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        spent = conn.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
    assert 0.8 * budget <= spent <= budget
    done = len(output_ids(workspace / "out.jsonl"))
    assert 0 < done < 60
