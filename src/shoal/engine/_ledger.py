"""Money and tokens: totals per model and per stage, and the hard cost budget."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BudgetExhausted
from ..pricing import PriceBook, worst_case_cost
from ..providers._types import Usage

__all__ = ["Ledger", "Tally"]


@dataclass(slots=True)
class Tally:
    calls: int = 0
    replayed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, usage: Usage, cost: float, *, replayed: bool) -> None:
        if replayed:
            self.replayed += 1
            return  # a replayed call costs nothing now; its tokens were counted when it ran
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        self.cost_usd += cost


class Ledger:
    """Counts what the job spends and refuses a call that could take it past max_cost_usd.

    Every call in flight holds a reservation of its worst case (all input uncached, the whole
    answer budget used), so the limit holds even with many calls in flight at once.
    """

    def __init__(self, prices: PriceBook, *, max_cost_usd: float | None, spent_before: float = 0.0) -> None:
        self.prices = prices
        self.max_cost_usd = max_cost_usd
        self.spent_before = spent_before
        self.total = Tally()
        self.by_model: dict[str, Tally] = {}
        self.by_stage: dict[str, Tally] = {}
        self.reserved = 0.0
        self.unpriced: set[str] = set()
        self.max_tokens: dict[str, int] = {}  # per model, the answer budget of its latest call

    @property
    def spent(self) -> float:
        """Dollars spent by this job, earlier runs included."""
        return self.spent_before + self.total.cost_usd

    def reserve(self, model_key: str, input_tokens: int, max_tokens: int) -> float:
        self.max_tokens[model_key] = max_tokens
        worst = worst_case_cost(self.prices.price(model_key), input_tokens, max_tokens)
        if self.max_cost_usd is not None and self.spent + self.reserved + worst > self.max_cost_usd:
            raise BudgetExhausted(
                f"cost budget reached: ${self.spent:.4f} spent of ${self.max_cost_usd:.2f}; "
                f"the next call could cost up to ${worst:.4f}"
            )
        self.reserved += worst
        return worst

    def release(self, reservation: float) -> None:
        self.reserved = max(0.0, self.reserved - reservation)

    def cost_of(self, model_key: str, usage: Usage) -> float:
        cost = self.prices.cost(model_key, usage)
        if cost is None:
            self.unpriced.add(model_key)
            return 0.0
        return cost

    def record(
        self, model_key: str, stage: str, usage: Usage, cost: float, *, replayed: bool = False
    ) -> None:
        self.total.add(usage, cost, replayed=replayed)
        self.by_model.setdefault(model_key, Tally()).add(usage, cost, replayed=replayed)
        self.by_stage.setdefault(stage, Tally()).add(usage, cost, replayed=replayed)
