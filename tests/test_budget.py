from __future__ import annotations

import asyncio
import random

from shoal.budget import BudgetSettings, Demand, ModelBudget
from shoal.config import ModelLimits
from shoal.providers import RateSnapshot, Usage, parse_duration, parse_rate_headers

from clocks import VirtualClock


def make_budget(limits: ModelLimits, clock: VirtualClock, **settings: float) -> ModelBudget:
    return ModelBudget(
        "openai:m", limits, clock=clock, rng=random.Random(7), settings=BudgetSettings(**settings)
    )


async def test_200_concurrent_callers_never_overdraw_either_bucket() -> None:
    clock = VirtualClock()
    rpm, tpm = 1200, 150_000
    budget = make_budget(ModelLimits(rpm=rpm, tpm=tpm), clock)
    start = clock.now()
    rng = random.Random(1)
    grants: list[tuple[float, int, int]] = []

    async def caller() -> None:
        demand = Demand(input_tokens=rng.randint(20, 400), max_tokens=rng.randint(10, 300))
        permit = await budget.acquire(demand)
        # Real usage is below the reservation most of the time, above it sometimes.
        output = max(0, int(demand.tokens * rng.uniform(0.4, 1.1)) - demand.input_tokens)
        grants.append((clock.now(), demand.tokens, demand.input_tokens + output))
        await asyncio.sleep(0)
        budget.settle(permit, Usage(input_tokens=demand.input_tokens, output_tokens=output))

    await asyncio.gather(*(caller() for _ in range(200)))

    assert len(grants) == 200
    capacity_requests = rpm / 60 * budget.settings.burst_s
    capacity_tokens = tpm / 60 * budget.settings.burst_s
    requests = used_before = 0
    for granted_at, reserved, used in sorted(grants):
        requests += 1
        elapsed = granted_at - start
        # Buckets start empty: what earlier calls used plus this reservation was refilled by now.
        assert requests <= capacity_requests + rpm / 60 * elapsed + 1e-6
        assert used_before + reserved <= capacity_tokens + tpm / 60 * elapsed + 1e-6
        used_before += used
    # Pacing, not a burst: the whole set took about as long as the binding limit implies.
    assert clock.now() - start > 200 / (rpm / 60) * 0.9


async def test_a_429_pauses_every_caller_for_retry_after() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=6000, tpm=10_000_000), clock, pause_jitter_s=0.0)
    await budget.acquire(Demand(10, 10))
    hit_at = clock.now()
    budget.rate_limited(2.5)
    granted: list[float] = []

    async def caller() -> None:
        await budget.acquire(Demand(10, 10))
        granted.append(clock.now())

    await asyncio.gather(*(caller() for _ in range(50)))
    assert len(granted) == 50
    assert min(granted) >= hit_at + 2.5
    assert budget.rate_limited_count == 1


async def test_an_isolated_429_cuts_by_its_overshoot_and_a_repeat_halves() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=600), clock, recovery_per_s=0.05, pause_jitter_s=0.0)
    assert budget.factor == 1.0
    budget.rate_limited(0.5)  # isolated: 0.5 s over, as a share of 10 s of sending
    assert budget.factor == 0.95
    budget.rate_limited(0.5)  # arrives with the first: the same event
    assert budget.factor == 0.95
    clock.t += 1.0
    assert budget.factor == 1.0  # back to full speed in a second, not 25
    clock.t += 5.0
    budget.rate_limited(1.0)  # soon after the last one: a repeat, AIMD halves
    assert budget.factor == 0.5
    clock.t += 4.0
    assert 0.65 < budget.factor < 0.75
    clock.t += 100.0
    assert budget.factor == 1.0


async def test_long_retry_after_never_freezes_the_job() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=600), clock, max_pause_s=30.0, pause_jitter_s=0.0)
    budget.rate_limited(3600.0)
    assert budget.paused_for <= 30.0
    before = clock.now()
    await budget.acquire(Demand(1, 1))
    assert clock.now() - before < 31.0


async def test_limits_are_learned_from_headers_when_not_configured() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(), clock)
    assert budget.learning
    assert budget.limits() == {}  # unknown limits are not small limits: nothing is paced yet
    budget.observe(
        RateSnapshot(
            limit_requests=5000, remaining_requests=4999, limit_tokens=800_000, remaining_tokens=799_000
        )
    )
    assert budget.limits() == {"rpm": 5000, "tpm": 800_000}


async def test_anthropic_input_and_output_limits_are_separate_buckets() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=600, itpm=6000, otpm=600), clock)
    start = clock.now()
    # Output tokens bind: 600/min = 10/s, each call reserves 100 output tokens -> 0.1 call/s after the burst.
    for _ in range(5):
        permit = await budget.acquire(Demand(input_tokens=10, max_tokens=100))
        budget.settle(permit, Usage(input_tokens=10, output_tokens=100))
    assert clock.now() - start >= 40.0


async def test_configured_limit_above_the_providers_is_lowered_by_headers() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=10_000, tpm=1_000_000), clock)
    budget.observe(RateSnapshot(limit_requests=500, limit_tokens=2_000_000, remaining_tokens=1_900_000))
    assert budget.limits() == {"rpm": 500, "tpm": 1_000_000}


async def test_provider_near_empty_pauses_until_its_reset() -> None:
    clock = VirtualClock()
    budget = make_budget(ModelLimits(rpm=600, tpm=60_000), clock, pause_jitter_s=0.0)
    budget.observe(RateSnapshot(limit_tokens=60_000, remaining_tokens=10, reset_tokens_s=3.0))
    before = clock.now()
    await budget.acquire(Demand(10, 10))
    assert clock.now() - before >= 3.0


def test_rate_headers_of_both_providers_parse() -> None:
    openai = parse_rate_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "199000",
            "x-ratelimit-reset-tokens": "1m2s",
            "retry-after-ms": "1500",
            "retry-after": "2",
        }
    )
    assert (openai.limit_requests, openai.remaining_requests, openai.limit_tokens) == (500, 499, 200000)
    assert openai.reset_requests_s == 0.12 and openai.reset_tokens_s == 62.0
    assert openai.retry_after_s == 1.5  # the precise header wins
    anthropic = parse_rate_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-input-tokens-limit": "30000",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "7000",
            "retry-after": "7",
        }
    )
    assert anthropic.limit_requests == 50
    assert (anthropic.limit_input_tokens, anthropic.limit_output_tokens) == (30000, 8000)
    assert anthropic.remaining_output_tokens == 7000 and anthropic.retry_after_s == 7.0
    assert parse_duration("6m0s") == 360.0 and parse_duration("bogus") is None
