"""The rate budget of one provider model, shared by every worker of the job.

Requests are paced, not burst: buckets start empty and refill continuously, so dispatch follows
the provider's rate from the first second. Each request reserves what the provider will count
against it (the prompt estimate plus max_tokens) and settles with the real usage afterwards.
A 429 pauses every caller of this model for retry-after plus jitter, empties the buckets and
halves the rate (AIMD); the rate then recovers linearly while no 429 arrives.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from .._clock import Clock
from ..config import ModelLimits
from ..providers._types import RateSnapshot, Usage
from ._bucket import Bucket

__all__ = ["BudgetSettings", "Demand", "ModelBudget", "Permit"]

# Without configured limits, start as a small account would and learn the rest from headers.
_CONSERVATIVE = ModelLimits(rpm=60, tpm=30_000)
_TOLERANCE_S = 1e-6
_MAX_SLICE_S = 0.25


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    burst_s: float = 1.0  # bucket capacity, in seconds of refill
    min_factor: float = 0.1  # AIMD floor: the rate never drops below this share of the limit
    decrease: float = 0.5  # multiplicative decrease on a 429
    recovery_per_s: float = 0.02  # additive increase of the share per second without a 429
    pause_jitter_s: float = 0.5  # callers resume spread over this many seconds after a pause
    max_pause_s: float = 60.0  # one retry-after never pauses the job longer than this
    spacing_jitter: float = 0.02  # random extra spacing, as a share of one request's interval


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request will be counted for."""

    input_tokens: int
    max_tokens: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.max_tokens


@dataclass(slots=True)
class Permit:
    demand: Demand
    granted_at: float
    settled: bool = False


@dataclass(slots=True)
class _Limit:
    bucket: Bucket
    per_minute: float
    learned: bool


class ModelBudget:
    """RPM and TPM (or Anthropic's input and output TPM) buckets for one provider model."""

    def __init__(
        self,
        model_key: str,
        limits: ModelLimits,
        *,
        clock: Clock,
        rng: random.Random,
        settings: BudgetSettings | None = None,
    ) -> None:
        self.model_key = model_key
        self.settings = settings or BudgetSettings()
        self._clock = clock
        self._rng = rng
        self._lock = asyncio.Lock()  # FIFO: callers are served in arrival order
        self.learning = not limits.configured
        self.limits_seen = False  # a response has told the provider's limits (views drop "learning")
        self._configured = limits
        self._limits: dict[str, _Limit] = {}
        start = _CONSERVATIVE if self.learning else limits
        for kind in ("rpm", "tpm", "itpm", "otpm"):
            value = getattr(start, kind)
            if value is not None:
                self._set_limit(kind, float(value), learned=self.learning)
        self._factor = 1.0
        self._factor_stamp = clock.now()
        self._paused_until = 0.0
        self._last_decrease = -1e9
        self.rate_limited_count = 0
        self.pause_count = 0

    # -- limits ---------------------------------------------------------------------------

    def _set_limit(self, kind: str, per_minute: float, *, learned: bool) -> None:
        rate = per_minute / 60.0
        capacity = self._capacity(kind, rate)
        current = self._limits.get(kind)
        factor = getattr(self, "_factor", 1.0)
        if current is None:
            # Configured limits start empty (paced from the first request); a learning budget
            # starts full so that its first request goes at once and brings the real limits back.
            level = capacity if learned else 0.0
            bucket = Bucket(rate * factor, capacity, level=level, now=self._clock.now())
            self._limits[kind] = _Limit(bucket, per_minute, learned)
        else:
            current.bucket.retune(rate * factor, capacity)
            current.per_minute = per_minute
            current.learned = learned

    def _capacity(self, kind: str, rate: float) -> float:
        # At least one request's worth, else a large request could never be granted.
        floor = 1.0 if kind == "rpm" else 0.0
        return max(floor, rate * self.settings.burst_s)

    def limits(self) -> dict[str, float]:
        """Current per-minute limits, as configured or learned."""
        return {kind: limit.per_minute for kind, limit in self._limits.items()}

    @property
    def factor(self) -> float:
        """Share of the limits currently used after 429s (1.0 = full rate)."""
        self._recover(self._clock.now())
        return self._factor

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock.now())

    def _amounts(self, demand: Demand) -> dict[str, float]:
        return {
            "rpm": 1.0,
            "tpm": float(demand.tokens),
            "itpm": float(demand.input_tokens),
            "otpm": float(demand.max_tokens),
        }

    # -- acquire and settle ---------------------------------------------------------------

    def _recover(self, now: float) -> None:
        if self._factor >= 1.0:
            self._factor_stamp = now
            return
        gained = (now - self._factor_stamp) * self.settings.recovery_per_s
        if gained > 0:
            self._factor = min(1.0, self._factor + gained)
            self._factor_stamp = now
            for limit in self._limits.values():
                limit.bucket.retune(limit.per_minute / 60.0 * self._factor, limit.bucket.capacity)

    def _wait(self, demand: Demand, now: float) -> float:
        self._recover(now)
        wait = self._paused_until - now
        amounts = self._amounts(demand)
        for kind, limit in self._limits.items():
            wait = max(wait, limit.bucket.wait_for(amounts[kind], now))
        return wait

    def try_acquire(self, demand: Demand) -> Permit | None:
        """Take the reservation now if it fits and nobody is queued; None means: await acquire()."""
        if self._lock.locked():
            return None
        now = self._clock.now()
        if self._wait(demand, now) > _TOLERANCE_S:
            return None
        self._take(demand)
        return Permit(demand, now)

    def _take(self, demand: Demand) -> None:
        amounts = self._amounts(demand)
        for kind, limit in self._limits.items():
            limit.bucket.take(amounts[kind])

    async def acquire(self, demand: Demand) -> Permit:
        """Wait until the request fits every bucket, then take its reservation."""
        async with self._lock:
            while True:
                now = self._clock.now()
                wait = self._wait(demand, now)
                if wait <= _TOLERANCE_S:  # float rounding must not leave us sleeping 1e-17 s forever
                    break
                # Sleep in slices: limits learned from a response meanwhile may shorten the wait.
                await self._clock.sleep(min(wait, _MAX_SLICE_S))
            self._take(demand)
            spacing = self._spacing()
            permit = Permit(demand, now)
            if spacing > 0:
                # Random spacing keeps many workers from moving in lock-step.
                await self._clock.sleep(spacing)
        return permit

    def _spacing(self) -> float:
        rpm = self._limits.get("rpm")
        if rpm is None or self.settings.spacing_jitter <= 0:
            return 0.0
        interval = 1.0 / max(rpm.bucket.rate, 1e-9)
        return self._rng.uniform(0.0, self.settings.spacing_jitter * interval)

    def settle(self, permit: Permit, usage: Usage | None) -> None:
        """Replace the reservation with what the provider counted.

        With usage None (a failure after sending) the reservation stands: providers count
        tokens of failed requests too.
        """
        if permit.settled or usage is None:
            permit.settled = True
            return
        permit.settled = True
        demand = permit.demand
        deltas = {
            "tpm": demand.tokens - usage.input_tokens - usage.output_tokens,
            "itpm": demand.input_tokens - usage.input_tokens,
            "otpm": demand.max_tokens - usage.output_tokens,
        }
        now = self._clock.now()
        for kind, delta in deltas.items():
            limit = self._limits.get(kind)
            if limit is None or delta == 0:
                continue
            limit.bucket.refill(now)
            if delta > 0:
                limit.bucket.give(delta)
            else:
                limit.bucket.take(-delta)

    # -- what the provider told us --------------------------------------------------------

    def observe(self, snapshot: RateSnapshot) -> None:
        """Learn limits from headers and correct drift when the provider is nearly out."""
        if snapshot.empty:
            return
        self._learn(snapshot)
        now = self._clock.now()
        pause = 0.0
        if snapshot.remaining_requests is not None and snapshot.remaining_requests <= 0:
            pause = max(pause, snapshot.reset_requests_s or 1.0)
            self._drain("rpm")
        remaining_tokens = snapshot.remaining_tokens
        if remaining_tokens is not None and "tpm" in self._limits:
            # The provider's count is the truth: when it has less left than one typical request,
            # our buckets have drifted (another client, a tokenizer mismatch) and must wait.
            if remaining_tokens < self._limits["tpm"].bucket.capacity * 0.05:
                pause = max(pause, snapshot.reset_tokens_s or 1.0)
                self._drain("tpm")
        if pause > 0:
            self._pause(now, pause)

    def _learn(self, snapshot: RateSnapshot) -> None:
        learned = {
            "rpm": snapshot.limit_requests,
            "itpm": snapshot.limit_input_tokens,
            "otpm": snapshot.limit_output_tokens,
            "tpm": snapshot.limit_tokens if snapshot.limit_input_tokens is None else None,
        }
        if any(value is not None and value > 0 for value in learned.values()):
            self.limits_seen = True
        for kind, value in learned.items():
            if value is None or value <= 0:
                continue
            configured = getattr(self._configured, kind)
            current = self._limits.get(kind)
            if configured is not None and value >= configured:
                continue  # a configured limit below the provider's is the user's choice
            if current is not None and current.per_minute == value:
                continue
            self._set_limit(kind, float(value), learned=True)
        if self.learning and ("itpm" in self._limits or "otpm" in self._limits):
            # Anthropic reports input and output separately; the combined guess no longer applies.
            self._limits.pop("tpm", None)

    def _drain(self, kind: str) -> None:
        limit = self._limits.get(kind)
        if limit is not None:
            limit.bucket.drain()

    def _pause(self, now: float, seconds: float) -> None:
        seconds = min(seconds, self.settings.max_pause_s)
        until = now + seconds + self._rng.uniform(0.0, self.settings.pause_jitter_s)
        if until > self._paused_until:
            self._paused_until = until
            self.pause_count += 1

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause every caller, empty the buckets, slow down."""
        now = self._clock.now()
        self.rate_limited_count += 1
        for limit in self._limits.values():
            limit.bucket.drain()
        self._pause(now, retry_after if retry_after is not None else 1.0)
        # 429s that arrive together are one event: decrease at most once per pause.
        if now - self._last_decrease > 1.0:
            self._recover(now)
            self._factor = max(self.settings.min_factor, self._factor * self.settings.decrease)
            self._factor_stamp = now
            self._last_decrease = self._paused_until
            for limit in self._limits.values():
                limit.bucket.retune(limit.per_minute / 60.0 * self._factor, limit.bucket.capacity)
