"""Counting calls, tokens and dollars along any dimension (job, run, stage, model)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..journal import CallOutcome

__all__ = ["CallTally"]


@dataclass(slots=True)
class CallTally:
    calls: int = 0
    ok: int = 0
    rate_limited: int = 0
    errors: int = 0  # every other outcome: transient, empty, truncated, invalid, rejected
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    model_s: float = 0.0  # summed latency: where time went, per call, is model_s / calls
    queue_s: float = 0.0  # summed wait for a worker slot and the rate budget

    def add_row(
        self,
        outcome: str,
        n: int,
        input_tokens: int,
        output_tokens: int,
        cached: int,
        cost: float,
        *,
        model_s: float = 0.0,
        queue_s: float = 0.0,
    ) -> None:
        self.model_s += model_s
        self.queue_s += queue_s
        self.calls += n
        if outcome == CallOutcome.OK:
            self.ok += n
        elif outcome == CallOutcome.RATE_LIMITED:
            self.rate_limited += n
        else:
            self.errors += n
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached_tokens += cached
        self.cost_usd += cost

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost_usd"] = round(self.cost_usd, 8)
        data["model_s"] = round(self.model_s, 3)
        data["queue_s"] = round(self.queue_s, 3)
        return data
