"""Request timeouts learned from the latency of similar requests.

One fixed timeout has to be long enough for the slowest legitimate answer, so every hung request
costs that long. Requests are grouped by model and max_tokens (rounded up to a power of two, as
answer length drives latency); once a group has `min_samples` answers, its timeout is a high
percentile of their latency times `factor`, kept between `floor_s` and `ceiling_s`. Before that
the ceiling (the configured request_timeout_s) applies.

A timeout during which no other request of the group was answered doubles the group's stretch,
and an answer halves it (never below 1): when requests time out and nothing is answered (the
provider became much slower) the timeout climbs back towards the ceiling instead of cutting off
every answer, while a request that hung as others were answered does not move it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdaptiveTimeouts", "TimeoutSettings"]

_RESORT_EVERY = 10
# (model, max_tokens group, timeout_s, percentile latency_s) when a group's timeout moves a lot.
AdaptedSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class TimeoutSettings:
    ceiling_s: float = 120.0
    floor_s: float = 10.0
    percentile: float = 0.95
    factor: float = 3.0
    min_samples: int = 20
    window: int = 200
    report_change: float = 0.25  # journal the timeout again when it moves by this share


@dataclass(slots=True)
class _Group:
    latencies: deque[float]
    stretch: float = 1.0
    reported: float | None = None
    cached: float | None = field(default=None)  # the percentile, recomputed every few answers
    fresh: int = 0  # answers since it was computed
    answers: int = 0


class AdaptiveTimeouts:
    def __init__(self, settings: TimeoutSettings, on_adapted: AdaptedSink | None = None) -> None:
        self.settings = settings
        self._groups: dict[tuple[str, int], _Group] = {}
        self._on_adapted = on_adapted

    @staticmethod
    def bucket(max_tokens: int) -> int:
        return 1 << max(0, math.ceil(math.log2(max(1, max_tokens))))

    def _group(self, model: str, max_tokens: int) -> _Group:
        key = (model, self.bucket(max_tokens))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(deque(maxlen=self.settings.window))
        return group

    def timeout_for(self, model: str, max_tokens: int) -> float:
        """Seconds to wait for an answer to a request of this model and size."""
        settings = self.settings
        group = self._group(model, max_tokens)
        if len(group.latencies) < settings.min_samples:
            return settings.ceiling_s
        if group.cached is None:
            group.cached = self._percentile(group.latencies)
            group.fresh = 0
        learned = max(settings.floor_s, group.cached * settings.factor) * group.stretch
        return min(settings.ceiling_s, learned)

    def observe(self, model: str, max_tokens: int, latency_s: float) -> None:
        """An answer arrived after `latency_s`."""
        group = self._group(model, max_tokens)
        group.latencies.append(latency_s)
        group.answers += 1
        group.fresh += 1
        if group.fresh >= _RESORT_EVERY or len(group.latencies) <= self.settings.min_samples:
            group.cached = None  # sorting the window on every answer would cost more than it tells
        group.stretch = max(1.0, group.stretch / 2)
        self._report(model, max_tokens, group)

    def answers(self, model: str, max_tokens: int) -> int:
        """Answers counted so far in the group (to tell whether any came while a request was out)."""
        return self._group(model, max_tokens).answers

    def timed_out(self, model: str, max_tokens: int, *, answered_meanwhile: bool = False) -> None:
        group = self._group(model, max_tokens)
        if answered_meanwhile:
            return  # this request hung; the others show the provider's latency has not changed
        group.stretch = min(group.stretch * 2, 1e6)
        self._report(model, max_tokens, group)

    def _percentile(self, values: deque[float]) -> float:
        ordered = sorted(values)
        index = min(len(ordered) - 1, max(0, math.ceil(self.settings.percentile * len(ordered)) - 1))
        return ordered[index]

    def _report(self, model: str, max_tokens: int, group: _Group) -> None:
        if self._on_adapted is None or len(group.latencies) < self.settings.min_samples:
            return
        value = self.timeout_for(model, max_tokens)
        previous = group.reported
        if previous is not None and abs(value - previous) <= self.settings.report_change * previous:
            return
        group.reported = value
        assert group.cached is not None  # timeout_for filled it
        self._on_adapted(
            {
                "model": model,
                "max_tokens_group": self.bucket(max_tokens),
                "timeout_s": round(value, 3),
                "latency_s": round(group.cached, 3),
                "samples": len(group.latencies),
            }
        )
