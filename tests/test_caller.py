"""The whole path of one call, against a scripted in-process provider."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shoal.budget import BudgetSettings
from shoal.config import JobSettings, ModelLimits, ShoalConfig
from shoal.engine import CallSpec, Job, StateDir, Stopped, StopSignal, open_job
from shoal.engine._outage import OutageBook, OutageSettings
from shoal.errors import PermanentError, RateLimited, TransientError
from shoal.providers import Message, ModelRef, ModelReply, ModelRequest, Usage

from clocks import VirtualClock

Step = Callable[[ModelRequest], ModelReply]


def ok(text: str = "fine answer", finish: str = "stop") -> Step:
    return lambda request: ModelReply(text, Usage(20, 10), finish)


def fail(exc: Exception) -> Step:
    def raise_it(request: ModelRequest) -> ModelReply:
        raise exc

    return raise_it


@dataclass
class Scripted:
    """Answers with the next step of the script; records every request it receives."""

    steps: list[Step]
    received: list[ModelRequest] = field(default_factory=list)
    name: str = "openai"

    def get(self, provider: str) -> Scripted:
        return self

    async def complete(self, request: ModelRequest) -> ModelReply:
        self.received.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return step(request)

    async def aclose(self) -> None:
        return None


MODEL = ModelRef("openai", "gpt-4o-mini")


def spec(
    prompt: str = "summarise", schema: dict[str, object] | None = None, max_tokens: int = 100
) -> CallSpec:
    request = ModelRequest(MODEL.name, (Message("user", prompt),), max_tokens, schema)
    return CallSpec(scope="item-1", stage="map", model=MODEL, request=request)


def config(**job: object) -> ShoalConfig:
    return ShoalConfig(
        limits={MODEL.key: ModelLimits(rpm=60_000, tpm=10_000_000)},
        job=JobSettings.model_validate(job),
    )


@pytest.fixture
def open_scripted(workspace: Path) -> Callable[..., object]:
    def opener(provider: Scripted, cfg: ShoalConfig | None = None) -> AsyncIterator[Job]:
        return open_job(  # type: ignore[return-value]
            state=StateDir(workspace),
            config=cfg or config(),
            name="test-job",
            command="test",
            env={},
            stop=StopSignal(),
            providers=provider,
            budget_settings=BudgetSettings(pause_jitter_s=0.0, spacing_jitter=0.0),
            clock=VirtualClock(epoch=1_700_000_000.0),  # backoffs and pauses take no real time
        )

    return opener


async def test_finished_call_is_replayed_from_the_journal_not_sent_again(open_scripted) -> None:
    provider = Scripted([ok("first answer")])
    async with open_scripted(provider) as job:
        first = await job.caller.call(spec())
    async with open_scripted(provider) as job:
        second = await job.caller.call(spec())
        changed = await job.caller.call(spec(prompt="summarise differently"))
    assert first.text == second.text == "first answer"
    assert (first.replayed, second.replayed, changed.replayed) == (False, True, False)
    assert len(provider.received) == 2  # the replayed call never reached the provider


async def test_empty_and_truncated_answers_are_retried_and_never_kept(open_scripted) -> None:
    provider = Scripted([ok(""), ok("half an ans", finish="length"), ok("whole answer")])
    async with open_scripted(provider, config(max_attempts=5)) as job:
        result = await job.caller.call(spec())
        outcomes = [row.outcome for row in job.journal.usage(job.name)]
    assert result.text == "whole answer" and result.attempts == 3
    assert outcomes == ["empty", "truncated", "ok"]


@dataclass
class Poisoned:
    """Answers every prompt but one, which always fails with a 503; a little latency so calls overlap."""

    received: list[str] = field(default_factory=list)
    down: bool = False

    def get(self, provider: str) -> Poisoned:
        return self

    async def complete(self, request: ModelRequest) -> ModelReply:
        prompt = request.messages[-1].content
        self.received.append(prompt)
        # The poisoned prompt is slower, so other answers always arrive while it is out.
        await asyncio.sleep(0.03 if prompt == "poison" else 0.005)
        if self.down or prompt == "poison":
            raise TransientError("HTTP 503", status=503)
        return ModelReply("fine answer", Usage(20, 10), "stop")

    async def aclose(self) -> None:
        return None


def scoped(scope: str, prompt: str) -> CallSpec:
    request = ModelRequest(MODEL.name, (Message("user", prompt),), 100, None)
    return CallSpec(scope=scope, stage="map", model=MODEL, request=request)


async def test_a_call_failing_while_the_provider_answers_others_spends_its_attempts(open_scripted) -> None:
    provider = Poisoned()
    async with open_scripted(provider, config(max_attempts=3)) as job:
        job.caller._policy = type(job.caller._policy)(max_attempts=3, backoff_base_s=0.01)
        for index in range(20):  # the provider is known to answer
            await job.caller.call(scoped(f"warm-{index}", f"prompt {index}"))
        done = asyncio.Event()

        async def others() -> None:
            index = 0
            while not done.is_set():
                index += 1
                await job.caller.call(scoped(f"other-{index}", f"other prompt {index}"))

        background = asyncio.create_task(others())
        try:
            with pytest.raises(TransientError):
                await job.caller.call(scoped("item-poison", "poison"))
        finally:
            done.set()
            await background
    assert provider.received.count("poison") == 3  # its own failures: max_attempts, not more


def events_of(workspace: Path, pattern: str) -> list[tuple[str, str]]:
    """Events as written once the job has closed (events are written behind the job's back)."""
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(
            "SELECT kind, detail FROM events WHERE kind LIKE ? ORDER BY id", (pattern,)
        ).fetchall()


async def test_a_provider_that_answers_nothing_drains_the_job_instead_of_failing_items(
    open_scripted, workspace: Path
) -> None:
    provider = Poisoned(down=True)
    async with open_scripted(provider, config(max_attempts=2, max_outage_s=1.5)) as job:
        job.caller._policy = type(job.caller._policy)(max_attempts=2, backoff_base_s=0.01)
        with pytest.raises(Stopped):
            await job.caller.call(spec())
        assert job.stop.reason is not None and "answered nothing" in job.stop.reason
        assert job.caller.stats.failed == 0  # resumable: the item did not fail for good
    assert [kind for kind, _ in events_of(workspace, "outage%")] == ["outage_start"]
    assert len(provider.received) > 2  # more tries than max_attempts: the outage's are not the item's


async def test_a_call_rides_out_an_outage_and_the_journal_tells_when(open_scripted, workspace: Path) -> None:
    # Five failures open the outage, then eight probes fail before the provider answers again.
    provider = Scripted([fail(TransientError("Connection error.")) for _ in range(13)] + [ok("back again")])
    async with open_scripted(provider, config(max_attempts=2)) as job:
        caller = job.caller
        caller._policy = type(caller._policy)(max_attempts=2, max_provider_failures=5, backoff_base_s=0.01)
        fast_probes = OutageSettings(probe_base_s=0.01, probe_max_s=0.05)
        caller.outages = OutageBook(
            settings=fast_probes, clock=job.clock, rng=random.Random(0), on_event=caller._event
        )
        result = await caller.call(spec())
    events = events_of(workspace, "outage%")
    assert result.text == "back again" and result.attempts == 14  # probes count against no limit
    assert [kind for kind, _ in events] == ["outage_start", "outage_end"]
    assert json.loads(events[1][1])["probes"] == 9


async def test_permanent_errors_are_not_retried(open_scripted) -> None:
    provider = Scripted([fail(PermanentError("HTTP 400: bad request", status=400))])
    async with open_scripted(provider) as job:
        with pytest.raises(PermanentError):
            await job.caller.call(spec())
    assert len(provider.received) == 1


async def test_429_pauses_the_model_and_the_request_goes_again(open_scripted) -> None:
    provider = Scripted([fail(RateLimited("HTTP 429", status=429, retry_after=0.2)), ok("after the pause")])
    async with open_scripted(provider) as job:
        result = await job.caller.call(spec())
        budget = job.budgets.for_model(MODEL.key)
        assert budget.rate_limited_count == 1 and budget.factor < 1.0
        assert job.caller.stats.rate_limited == 1
    assert result.text == "after the pause"


async def test_answer_not_matching_the_schema_is_retried(open_scripted) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    provider = Scripted([ok('{"n": "three"}'), ok("not json"), ok(json.dumps({"n": 3}))])
    async with open_scripted(provider) as job:
        result = await job.caller.call(spec(schema=schema))
    assert json.loads(result.text) == {"n": 3}
    assert len(provider.received) == 3


async def test_cost_budget_refuses_a_call_that_could_exceed_it_and_the_engine_drains(open_scripted) -> None:
    provider = Scripted([ok()])
    # gpt-4o-mini: 0.15 in / 0.60 out per million; 100k max tokens could cost $0.06.
    async with open_scripted(provider, config(max_cost_usd=0.05)) as job:
        await job.caller.call(spec(max_tokens=10))
        with pytest.raises(Stopped, match="cost budget reached"):
            await job.caller.call(spec(prompt="long one", max_tokens=100_000))
        assert job.ledger.spent > 0
        # The engine stopped the job itself: nothing new starts, and the reason names the budget.
        assert not job.stop.running and (job.stop.reason or "").startswith("budget: cost budget reached")
        with pytest.raises(Stopped):
            await job.caller.call(spec(prompt="another", max_tokens=10))
    assert len(provider.received) == 1


async def test_rehearsal_provider_answers_without_a_key(workspace: Path) -> None:
    from shoal.providers import ProviderSet

    cfg = ShoalConfig()
    ref = ModelRef("rehearsal", "demo")
    async with open_job(
        state=StateDir(workspace),
        config=cfg,
        name="r",
        command="t",
        env={},
        stop=StopSignal(),
        providers=ProviderSet(cfg, {}),
    ) as job:
        request = ModelRequest("demo", (Message("user", "Explain tides"),), 60)
        result = await job.caller.call(CallSpec("one", "map", ref, request))
    assert result.text.startswith("[rehearsal]")
    assert result.usage.output_tokens > 0 and result.cost_usd > 0
