"""The rate budget of one provider model, shared by every worker of the job.

Requests are paced, not burst: buckets start empty and refill continuously, so dispatch follows
the provider's rate from the first second. Each request reserves what the provider will count
against it (the prompt estimate plus max_tokens) and settles with the real usage afterwards; the
unused part of max_tokens comes back only where the provider is known to give it back (configured,
or seen in its headers: see _shadow.py, which corrects the buckets on every response).

Unknown limits are not small limits: with none configured, nothing is paced until a response
carries limit headers (the job's concurrency ceiling still holds).

A 429 pauses every caller of this model for retry-after plus jitter and empties the buckets. An
isolated one cuts the rate in proportion to the overshoot it reveals (retry-after as a share of
the last seconds of sending); another within a short while halves it (AIMD). The rate then recovers
linearly while no 429 arrives.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass, field

from .._clock import Clock
from .._types import RateSnapshot, Usage
from ..config import ModelLimits
from ._bucket import Bucket
from ._shadow import KINDS, Mark, Reading, Shadow, read_kind

__all__ = ["BudgetSettings", "Demand", "ModelBudget", "Permit"]

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
    overshoot_horizon_s: float = 10.0  # an isolated 429 cuts the rate by retry-after / this
    min_cut: float = 0.02  # the smallest cut of an isolated 429
    repeat_window_s: float = 30.0  # a 429 this soon after the last one's pause is a repeat: halve
    unknown_rate_window_s: float = 10.0  # with no known limit, a 429 caps the rate seen over this


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
    marks: dict[str, Mark] = field(default_factory=dict)  # per limit kind, for header corrections


@dataclass(slots=True)
class _Limit:
    bucket: Bucket
    per_minute: float
    learned: bool
    shadow: Shadow  # the provider's own bucket as far as shoal can tell
    fresh: bool = False  # learned from a response just now: set its level from that response


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
        # Give back unused max_tokens at settlement only when told to; headers correct the rest.
        self.refunds_unused = limits.refunds_unused is True
        self._limits: dict[str, _Limit] = {}
        for kind in KINDS:
            value = getattr(limits, kind)
            if value is not None:
                self._set_limit(kind, float(value), learned=False)
        self._granted = dict.fromkeys(KINDS, 0.0)  # running totals, known limits or not
        self._recent_grants: deque[float] = deque(maxlen=4096)  # only while no limit is known
        self._last_event_end = -1e9
        self.corrections = 0  # responses whose headers moved a bucket
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
            # Configured limits start empty (paced from the first request); a learned one gets
            # its level from the response that revealed it (observe: `fresh`).
            now = self._clock.now()
            level = capacity if learned else 0.0
            bucket = Bucket(rate * factor, capacity, level=level, now=now)
            self._limits[kind] = _Limit(bucket, per_minute, learned, Shadow(per_minute, now), fresh=learned)
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
        permit = Permit(demand, now)
        self._take(demand, permit)
        return permit

    def _take(self, demand: Demand, permit: Permit) -> None:
        amounts = self._amounts(demand)
        now = permit.granted_at
        granted = self._granted
        for kind in KINDS:
            granted[kind] += amounts[kind]
        limits = self._limits
        if not limits:
            self._recent_grants.append(now)
        for kind in KINDS:
            limit = limits.get(kind)
            if limit is None:
                permit.marks[kind] = Mark(None, 0.0, granted[kind])
                continue
            limit.bucket.take(amounts[kind])
            shadow = limit.shadow
            shadow.take(amounts[kind], now)
            permit.marks[kind] = Mark(shadow.deficit, shadow.correction, granted[kind])

    async def acquire(self, demand: Demand) -> Permit:
        """Wait until the request fits every bucket, then take its reservation."""
        async with self._lock:
            while True:
                now = self._clock.now()
                wait = self._wait(demand, now)
                if wait <= _TOLERANCE_S:  # float rounding must not leave us sleeping 1e-17 s forever
                    break
                # Sleep in slices: limits learned from a response meanwhile may shorten the wait.
                # A hair longer than needed: waking a hair early would leave the reservation short.
                await self._clock.sleep(min(wait + _TOLERANCE_S, _MAX_SLICE_S))
            permit = Permit(demand, now)
            self._take(demand, permit)
            spacing = self._spacing()
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
        tokens of failed requests too. The prompt is settled to the provider's count; the unused
        part of max_tokens comes back only with `refunds_unused` (the headers of later responses
        give it back where the provider does).
        """
        if permit.settled or usage is None:
            permit.settled = True
            return
        permit.settled = True
        demand = permit.demand
        prompt = demand.input_tokens - usage.input_tokens
        unused = demand.max_tokens - usage.output_tokens
        if not self.refunds_unused:
            unused = min(0, unused)  # an answer longer than max_tokens is still counted
        deltas = {"tpm": prompt + unused, "itpm": prompt, "otpm": unused}
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
            limit.shadow.adjust(-delta, now)

    # -- what the provider told us --------------------------------------------------------

    def observe(self, snapshot: RateSnapshot, permit: Permit | None = None) -> None:
        """Learn limits from headers and correct the buckets by what the provider counted.

        `permit` is the one whose response carried the headers: what was granted after it is not
        in them yet. Without it the headers are taken as describing the provider now.
        """
        if snapshot.empty:
            return
        self._learn(snapshot)
        now = self._clock.now()
        # No separate "nearly out" rule: a provider near empty shows as a large deficit, and the
        # correction puts the buckets into debt for exactly as long as its refill takes.
        self._correct(snapshot, permit, now)

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

    def _correct(self, snapshot: RateSnapshot, permit: Permit | None, now: float) -> None:
        moved = False
        for kind, limit in self._limits.items():
            reading = read_kind(snapshot, kind)
            if reading is None:
                continue
            mark = permit.marks.get(kind) if permit is not None else None
            since = self._granted[kind] - mark.granted if mark is not None else 0.0
            shadow = limit.shadow
            shadow.rate = reading.per_minute / 60.0  # the provider refills at its own rate
            if limit.fresh:
                limit.fresh = False
                self._start_from(limit, reading, since, now)
                moved = True
                continue
            error = shadow.error(reading, mark, since, now)
            if reading.band:
                error = max(0.0, abs(error) - reading.band) * (1.0 if error > 0 else -1.0)
            applied = shadow.correct(error, now)
            bucket = limit.bucket
            bucket.refill(now)
            if applied > 0:
                bucket.take(applied)  # the provider counted more than shoal did: wait for it
            elif applied < 0:
                bucket.give(-applied)  # it gave back (unused tokens) or counted less
            # A restoring force: the provider's deficit now never exceeds one burst of ours, so a
            # lump from another client finds room rather than a 429. Counting on arrival, the
            # provider has since taken what was sent after this permit and refilled meanwhile.
            deficit_now = reading.deficit - reading.band
            if permit is not None and not shadow.counts_on_answer:
                deficit_now += since - (now - permit.granted_at) * shadow.rate
            bucket.level = min(bucket.level, bucket.capacity - max(0.0, deficit_now))
            moved = moved or applied != 0
        if moved:
            self.corrections += 1

    def _start_from(self, limit: _Limit, reading: Reading, since: float, now: float) -> None:
        """A limit first seen in a response: start where the provider stood, plus what it has not seen."""
        limit.shadow.correct(reading.deficit + since, now)
        bucket = limit.bucket
        bucket.level = bucket.capacity - reading.deficit - since

    def _pause(self, now: float, seconds: float) -> None:
        seconds = min(seconds, self.settings.max_pause_s)
        until = now + seconds + self._rng.uniform(0.0, self.settings.pause_jitter_s)
        if until > self._paused_until:
            self._paused_until = until
            self.pause_count += 1

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause every caller, empty the buckets, slow down.

        An isolated 429 cuts the rate by the overshoot it reveals (retry-after as a share of the
        last `overshoot_horizon_s` of sending); a repeat within `repeat_window_s` halves it.
        """
        now = self._clock.now()
        settings = self.settings
        self.rate_limited_count += 1
        if not self._limits:
            self._cap_at_recent_rate(now)
        for limit in self._limits.values():
            limit.bucket.drain()
        wait = retry_after if retry_after is not None else 1.0
        self._pause(now, wait)
        # 429s that arrive together are one event: decrease at most once per pause.
        if now - self._last_decrease > 1.0:
            self._recover(now)
            if now - self._last_event_end <= settings.repeat_window_s:
                keep = settings.decrease
            else:
                cut = min(1.0 - settings.decrease, max(settings.min_cut, wait / settings.overshoot_horizon_s))
                keep = 1.0 - cut
            self._factor = max(settings.min_factor, self._factor * keep)
            self._factor_stamp = now
            self._last_decrease = self._paused_until
            for limit in self._limits.values():
                limit.bucket.retune(limit.per_minute / 60.0 * self._factor, limit.bucket.capacity)
        self._last_event_end = self._paused_until

    def _cap_at_recent_rate(self, now: float) -> None:
        """With no limit known, a 429 makes the request rate of the last seconds the limit."""
        window = self.settings.unknown_rate_window_s
        recent = [stamp for stamp in self._recent_grants if stamp >= now - window]
        if not recent:
            return
        span = max(now - recent[0], 1.0)
        self._set_limit("rpm", max(1.0, len(recent) / span * 60.0), learned=True)
        self._limits["rpm"].fresh = False
        self._limits["rpm"].bucket.level = 0.0
