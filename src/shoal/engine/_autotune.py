"""`concurrency = "auto"`: find the number of requests in flight that gives the most throughput.

A self-hosted server (vLLM, Ollama, llama.cpp) answers more per second as more requests share it,
up to its capacity; past that only latency grows. The tuner measures answers per second at one
limit over a window of answers (only while the limit is the bottleneck, i.e. callers are queued
for a slot), and moves the limit:

- start: double the limit while throughput grows by more than `gain`; at the first doubling that
  does not pay, go back to the best limit seen;
- hold and probe: after a few windows at the limit, try one step up (kept if throughput grows by
  more than `gain`) or one step down (kept if throughput stays within `gain` of the best seen at
  this level, so small losses cannot add up step after step: the same work with less queueing).
  A probe that fails is undone and the next one waits twice as long;
- a 429 or 503 cuts the limit to `cut` of itself (at most once a second) and starts over from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .._clock import Clock
from ._limiter import Limiter

__all__ = ["ConcurrencyTuner", "TunerSettings"]

ChangeSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class TunerSettings:
    start: int = 4
    maximum: int = 128
    gain: float = 0.05  # a throughput change smaller than this share is noise
    cut: float = 0.7  # share of the limit kept after a 429 or 503
    min_samples: int = 24  # answers per measurement window (at least three times the limit)
    max_hold: int = 8  # most windows between probes


class _Phase(StrEnum):
    START = "start"
    HOLD = "hold"
    PROBE = "probe"


class ConcurrencyTuner:
    def __init__(
        self,
        limiter: Limiter,
        settings: TunerSettings,
        *,
        clock: Clock,
        on_change: ChangeSink | None = None,
    ) -> None:
        self.settings = settings
        self._limiter = limiter
        self._clock = clock
        self._on_change = on_change
        self._phase = _Phase.START
        self._best: tuple[int, float] | None = None  # (limit, answers/s) during the start
        self._base_limit = limiter.limit
        self._base_rate: float | None = None
        self._peak = 0.0  # best answers/s seen since the last start; decays slowly
        self._hold = 1  # windows between probes
        self._hold_left = 1
        self._up_next = False
        self._last_cut = -math.inf
        self._skip = 0
        self._count = 0
        self._started = clock.now()
        self.measurements: list[tuple[int, float]] = []  # (limit, answers/s), for reports and tests
        limiter.set_limit(min(settings.start, settings.maximum))

    @property
    def limit(self) -> int:
        return self._limiter.limit

    def completed(self) -> None:
        """One answer arrived; call while its slot is still held."""
        limiter = self._limiter
        now = self._clock.now()
        if self._skip > 0:  # answers to requests sent under the previous limit
            self._skip -= 1
            self._started = now
            return
        if limiter.waiting == 0 and limiter.held < limiter.limit:
            # Not limited by the ceiling (paced, or the job's tail): this says nothing about it.
            self._count = 0
            self._started = now
            return
        self._count += 1
        if self._count < max(self.settings.min_samples, 3 * limiter.limit):
            return
        elapsed = now - self._started
        if elapsed <= 0:
            return
        rate = self._count / elapsed
        self._count = 0
        self._started = now
        self.measurements.append((limiter.limit, rate))
        self._decide(rate)

    def congested(self) -> None:
        """A 429 or 503: the server says it has too much; cut the limit."""
        now = self._clock.now()
        if now - self._last_cut < 1.0:
            return
        self._last_cut = now
        # Start over from the cut limit: double again while that pays.
        self._phase = _Phase.START
        self._best = None
        self._peak = 0.0
        self._set(max(1, math.floor(self.limit * self.settings.cut)), "congested", None)

    def _decide(self, rate: float) -> None:
        gain = self.settings.gain
        limit = self.limit
        # Conditions change (the server gets busier): an old peak must not block every step down.
        self._peak *= 0.99
        if self._phase is _Phase.START:
            if self._best is None or rate > self._best[1] * (1 + gain):
                self._best = (limit, rate)
                if limit < self.settings.maximum:
                    self._set(min(self.settings.maximum, limit * 2), "growing", rate)
                    return
            self._phase = _Phase.HOLD
            best_limit, best_rate = self._best
            self._base_limit, self._base_rate = best_limit, best_rate
            self._peak = max(self._peak, best_rate, rate)
            self._hold = self._hold_left = 1
            if best_limit != limit:
                self._set(best_limit, "best", rate)
            return
        if self._phase is _Phase.HOLD:
            self._base_rate = rate if self._base_rate is None else (self._base_rate + rate) / 2
            self._peak = max(self._peak, self._base_rate)
            self._hold_left -= 1
            if self._hold_left <= 0:
                self._probe(rate)
            return
        base = self._base_rate or rate
        went_up = self.limit > self._base_limit
        kept = rate > base * (1 + gain) if went_up else rate >= max(base, self._peak) * (1 - gain)
        if kept:
            self._base_limit, self._base_rate = self.limit, rate
            self._peak = max(self._peak, rate)
            self._phase = _Phase.HOLD
            self._hold = self._hold_left = 1
            self._up_next = went_up  # keep going the same way
            return
        self._phase = _Phase.HOLD
        self._hold = min(self.settings.max_hold, self._hold * 2)
        self._hold_left = self._hold
        self._set(self._base_limit, "probe undone", rate)

    def _probe(self, rate: float) -> None:
        step = max(1, self._base_limit // 8)
        up = min(self.settings.maximum, self._base_limit + step)
        down = max(1, self._base_limit - step)
        target = up if self._up_next else down
        if target == self._base_limit:
            target = down if self._up_next else up
        self._up_next = not self._up_next
        if target == self._base_limit:
            self._hold_left = self._hold
            return
        self._phase = _Phase.PROBE
        self._set(target, "probe", rate)

    def _set(self, limit: int, reason: str, rate: float | None) -> None:
        if limit == self.limit:
            return
        self._skip = self._limiter.held
        self._count = 0
        self._limiter.set_limit(limit)
        if self._on_change is not None:
            detail: dict[str, Any] = {"limit": limit, "reason": reason}
            if rate is not None:
                detail["answers_per_s"] = round(rate, 2)
            self._on_change(detail)
