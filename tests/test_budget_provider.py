"""The rate budget against a simulated provider (the fake backend on a virtual clock).

The provider keeps what it reserved (prompt + max_tokens) unless told to refund, reports its own
count in headers, and may share its key with another client: the budget must not overdraw it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

import pytest

from shoal._tokens import estimate_tokens
from shoal.budget import Demand, ModelBudget
from shoal.config import ModelLimits, load_config
from shoal.errors import ConfigError
from shoal.fake import FakeBackend, FakeCall, FakeLimits, FakeResult, FakeSettings
from shoal.providers import RateSnapshot, Usage, parse_rate_headers

from clocks import EventClock

WORDS = "tide reef kelp current shoal plankton coral drift swell estuary lagoon brine".split()


def backend_for(clock: EventClock, limits: FakeLimits, **kw: object) -> FakeBackend:
    settings = FakeSettings(limits=limits, latency_s=0.8, jitter=0.5, per_token_s=0.002, seed=3)
    return FakeBackend(replace(settings, **kw), clock=clock)


def budget_for(clock: EventClock, limits: ModelLimits) -> ModelBudget:
    return ModelBudget("openai:m", limits, clock=clock, rng=random.Random(7))


def make_calls(count: int, seed: int) -> list[FakeCall]:
    rng = random.Random(seed)
    calls = []
    for index in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 250)))
        prompt = f"Item {index}: {words}"
        max_tokens = rng.choice([16, 64, 128, 256, 512])
        calls.append(FakeCall("openai", "m", prompt, estimate_tokens(prompt), max_tokens))
    return calls


async def run_calls(
    budget: ModelBudget, backend: FakeBackend, calls: list[FakeCall], concurrency: int = 16
) -> list[str]:
    """Each call: acquire, send, observe the headers, settle; the result kinds in order of answer."""
    return [result.kind for result in await run_results(budget, backend, calls, concurrency)]


async def run_results(
    budget: ModelBudget, backend: FakeBackend, calls: list[FakeCall], concurrency: int = 16
) -> list[FakeResult]:
    slots = asyncio.Semaphore(concurrency)
    results: list[FakeResult] = []

    async def one(call: FakeCall) -> None:
        async with slots:
            permit = await budget.acquire(Demand(call.prompt_tokens, call.max_tokens))
            result = await backend.handle(call)
            budget.observe(parse_rate_headers(result.headers), permit)
            usage = Usage(result.input_tokens, result.output_tokens) if result.status == 200 else None
            if result.kind == "rate_limited":
                budget.rate_limited(parse_rate_headers(result.headers).retry_after_s)
            budget.settle(permit, usage)
            results.append(result)

    await asyncio.gather(*(one(call) for call in calls))
    return results


async def test_1000_mixed_calls_never_overdraw_a_provider_that_keeps_reservations() -> None:
    clock = EventClock()
    tpm = 60_000
    backend = backend_for(clock, FakeLimits(tpm=tpm, window_s=2.0))
    budget = budget_for(clock, ModelLimits(tpm=tpm))
    calls = make_calls(1000, seed=11)
    start = clock.now()
    kinds = await run_calls(budget, backend, calls)
    assert len(kinds) == 1000
    assert backend.stats["rate_limited"] == 0  # never overdrawn, not once in 1,000 calls
    assert kinds.count("ok") == 1000
    # And not by running slow: the provider's count (prompt + max_tokens) over the elapsed time.
    counted = sum(call.prompt_tokens + call.max_tokens for call in calls)
    minutes = (clock.now() - start) / 60
    assert counted / minutes / tpm > 0.95


async def test_with_limits_learned_from_headers_only_the_provider_is_not_overdrawn() -> None:
    clock = EventClock()
    tpm = 60_000
    backend = backend_for(clock, FakeLimits(tpm=tpm, window_s=10.0))
    budget = budget_for(clock, ModelLimits())
    calls = make_calls(400, seed=12)
    start = clock.now()
    kinds = await run_calls(budget, backend, calls)
    assert budget.limits() == {"tpm": tpm}
    assert backend.stats["rate_limited"] == 0 and kinds.count("ok") == 400
    counted = sum(call.prompt_tokens + call.max_tokens for call in calls)
    assert counted / ((clock.now() - start) / 60) / tpm > 0.9


async def test_a_refunding_provider_is_learned_from_its_headers() -> None:
    # The budget keeps reservations by default; a provider that gives unused tokens back shows
    # it in its headers, and the budget then sends what the refunds leave room for.
    clock = EventClock()
    tpm = 60_000
    backend = backend_for(clock, FakeLimits(tpm=tpm, window_s=2.0, refund_unused=True))
    budget = budget_for(clock, ModelLimits(tpm=tpm))
    assert not budget.refunds_unused
    calls = make_calls(600, seed=13)
    start = clock.now()
    results = await run_results(budget, backend, calls)
    minutes = (clock.now() - start) / 60
    assert backend.stats["rate_limited"] == 0 and [r.kind for r in results].count("ok") == 600
    reserved = sum(call.prompt_tokens + call.max_tokens for call in calls)
    # Faster than the reservations alone would allow: the refunds came back...
    assert reserved / minutes > 1.1 * tpm
    # ...up to nearly the limit as the provider counts it (prompt + output).
    used = sum(r.input_tokens + r.output_tokens for r in results)
    assert used / minutes > 0.9 * tpm
    assert budget.corrections > 0


async def test_another_client_on_the_key_slows_the_budget_before_any_429() -> None:
    clock = EventClock()
    tpm = 60_000
    backend = backend_for(clock, FakeLimits(tpm=tpm, window_s=2.0))
    budget = budget_for(clock, ModelLimits(tpm=tpm))
    calls = make_calls(600, seed=14)
    other_kinds: list[str] = []
    stop = asyncio.Event()

    async def other_client() -> None:
        # Starts once the job runs at full speed, then takes 400 tokens about every second.
        await clock.sleep(30.0)
        while not stop.is_set():
            result = await backend.handle(FakeCall("openai", "m", "other", 1, 399))
            other_kinds.append(result.kind)
            await clock.sleep(0.2)

    other = asyncio.ensure_future(other_client())
    start = clock.now()
    kinds = await run_calls(budget, backend, calls)
    stop.set()
    await other
    minutes = (clock.now() - start) / 60
    # shoal's calls met no 429: the provider's own count slowed the budget down first.
    assert kinds.count("rate_limited") == 0 and kinds.count("ok") == 600
    assert budget.rate_limited_count == 0 and budget.corrections > 0
    # It made room for the other client rather than crowding it out: both stayed within the
    # limit, and shoal ran at what the other client left.
    theirs = 400 * other_kinds.count("ok")
    assert other_kinds.count("ok") > 100 and theirs / minutes > 0.25 * tpm
    ours = sum(call.prompt_tokens + call.max_tokens for call in calls)
    assert ours / minutes < 0.75 * tpm
    assert (ours + theirs) / minutes < 1.02 * tpm


async def test_no_limits_and_no_headers_paces_nothing() -> None:
    clock = EventClock()
    backend = backend_for(clock, FakeLimits(), rate_headers=False)
    budget = budget_for(clock, ModelLimits())
    calls = make_calls(64, seed=15)
    in_flight = peak = 0
    slots = asyncio.Semaphore(16)

    async def one(call: FakeCall) -> None:
        nonlocal in_flight, peak
        async with slots:
            permit = await budget.acquire(Demand(call.prompt_tokens, call.max_tokens))
            in_flight += 1
            peak = max(peak, in_flight)
            result = await backend.handle(call)
            in_flight -= 1
            budget.observe(parse_rate_headers(result.headers), permit)
            budget.settle(permit, Usage(result.input_tokens, result.output_tokens))

    await asyncio.gather(*(one(call) for call in calls))
    assert peak == 16  # only the concurrency ceiling held them back
    assert budget.limits() == {} and budget.pause_count == 0


async def test_a_429_without_known_limits_pauses_and_caps_the_rate_seen() -> None:
    clock = EventClock()
    budget = budget_for(clock, ModelLimits())
    for _ in range(50):  # 50 requests in 5 s: 600 a minute
        await budget.acquire(Demand(10, 10))
        await clock.sleep(0.1)
    budget.rate_limited(2.0)
    assert budget.paused_for >= 2.0
    assert 500 <= budget.limits()["rpm"] <= 700
    assert budget.factor < 1.0


async def test_refunds_unused_setting_decides_settlement_without_headers(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text('[limits."openai:m"]\ntpm = 60000\nrefunds_unused = true\n')
    config = load_config(tmp_path / "shoal.toml")
    assert config.limits["openai:m"].refunds_unused is True
    (tmp_path / "bad.toml").write_text('[limits."openai:m"]\nrefund = true\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(tmp_path / "bad.toml")

    async def time_for(limits: ModelLimits) -> float:
        # 20 calls reserving 10 + 490 tokens that use 10 + 10, at 1,000 tokens a second.
        clock = EventClock()
        budget = budget_for(clock, limits)
        start = clock.now()
        for _ in range(20):
            permit = await budget.acquire(Demand(10, 490))
            budget.settle(permit, Usage(10, 10))
        return clock.now() - start

    kept = await time_for(ModelLimits(tpm=60_000))  # the default: no refund assumed
    refunded = await time_for(config.limits["openai:m"])
    assert kept >= 9.5  # 20 x 500 tokens at 1,000/s
    assert refunded < 1.0  # each call cost 20 tokens


def test_headers_without_rate_limits_read_as_empty() -> None:
    assert parse_rate_headers({"content-type": "application/json", "retry-after": "2"}).retry_after_s == 2.0
    assert parse_rate_headers({"content-type": "application/json"}).empty
    anthropic = parse_rate_headers({"anthropic-ratelimit-tokens-limit": "1000"})
    assert anthropic.reset_from_timestamp and not anthropic.empty


async def test_requests_sent_after_a_response_was_counted_are_not_given_back() -> None:
    # 60,000 TPM: 1,000 tokens a second, a burst of 1,000. Nothing refills meanwhile (time stands).
    clock = EventClock()
    budget = budget_for(clock, ModelLimits(tpm=60_000))
    clock.t += 1.0  # a full bucket
    first = budget.try_acquire(Demand(100, 200))
    second = budget.try_acquire(Demand(100, 200))
    assert first is not None and second is not None
    level = budget._limits["tpm"].bucket.level  # the quantity under test
    # The provider counted the first request only when it answered it: 300 taken, 0.3 s to refill.
    budget.observe(RateSnapshot(limit_tokens=60_000, remaining_tokens=59_700, reset_tokens_s=0.3), first)
    assert budget._limits["tpm"].bucket.level == pytest.approx(level)
    assert budget.corrections == 0
    # The second's answer says another 500 tokens went out on the key meanwhile (another client).
    budget.observe(RateSnapshot(limit_tokens=60_000, remaining_tokens=58_900, reset_tokens_s=1.1), second)
    assert budget._limits["tpm"].bucket.level == pytest.approx(level - 500)
    assert budget.corrections == 1


async def test_a_fixed_window_reset_with_everything_remaining_does_not_slow_the_budget() -> None:
    # Some gateways count per fixed minute: reset is the time to the window's end, however
    # little of the window is used. remaining says the provider is all but untouched.
    clock = EventClock()
    budget = budget_for(clock, ModelLimits(tpm=60_000))
    clock.t += 1.0
    permit = budget.try_acquire(Demand(100, 200))
    assert permit is not None
    level = budget._limits["tpm"].bucket.level
    budget.observe(RateSnapshot(limit_tokens=60_000, remaining_tokens=59_700, reset_tokens_s=55.0), permit)
    assert budget._limits["tpm"].bucket.level == pytest.approx(level)


class ArrivalCountingProvider:
    """A provider unlike shoal's fake: headers computed on arrival, remaining in plain tokens.

    One token bucket of `window_s` seconds; the reservation (prompt + max_tokens) is kept.
    """

    def __init__(self, clock: EventClock, tpm: int, window_s: float, latency_s: float) -> None:
        self.clock = clock
        self.tpm = tpm
        self.rate = tpm / 60
        self.capacity = self.rate * window_s
        self.level = self.capacity
        self.stamp = clock.now()
        self.latency_s = latency_s
        self.rng = random.Random(5)
        self.refused = 0

    async def handle(self, call: FakeCall) -> tuple[RateSnapshot, Usage | None]:
        now = self.clock.now()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = call.prompt_tokens + call.max_tokens
        if self.level < need:
            self.refused += 1
            return RateSnapshot(retry_after_s=(need - self.level) / self.rate), None
        self.level -= need
        # Counted on arrival: the snapshot describes the bucket now, before the answer is written.
        headers = RateSnapshot(
            limit_tokens=self.tpm,
            remaining_tokens=int(self.level),
            reset_tokens_s=(self.capacity - self.level) / self.rate,
        )
        await self.clock.sleep(self.latency_s * self.rng.uniform(0.5, 1.5))
        return headers, Usage(call.prompt_tokens, self.rng.randint(1, call.max_tokens))


@pytest.mark.parametrize("window_s", [1.0, 2.0])
async def test_long_answers_with_many_in_flight_on_a_provider_that_counts_on_arrival(window_s: float) -> None:
    # 5 s answers and 64 in flight: most of what was granted is not yet in any response's headers.
    # A 1 s window is exactly shoal's own burst: no margin at all.
    clock = EventClock()
    tpm = 60_000
    provider = ArrivalCountingProvider(clock, tpm, window_s=window_s, latency_s=5.0)
    budget = budget_for(clock, ModelLimits(tpm=tpm))
    calls = make_calls(500, seed=16)
    slots = asyncio.Semaphore(64)

    async def one(call: FakeCall) -> None:
        async with slots:
            while True:
                permit = await budget.acquire(Demand(call.prompt_tokens, call.max_tokens))
                snapshot, usage = await provider.handle(call)
                if usage is None:
                    budget.settle(permit, None)
                    budget.rate_limited(snapshot.retry_after_s)
                    continue
                budget.observe(snapshot, permit)
                budget.settle(permit, usage)
                return

    start = clock.now()
    await asyncio.gather(*(one(call) for call in calls))
    minutes = (clock.now() - start) / 60
    assert provider.refused == 0
    counted = sum(call.prompt_tokens + call.max_tokens for call in calls)
    assert counted / minutes / tpm > 0.95  # the requests in flight did not stall the budget
