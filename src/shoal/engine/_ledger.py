"""Money and tokens: totals per model and per stage, and the hard cost budget."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .._types import Usage
from ..errors import BudgetExhausted
from ..pricing import PriceBook, worst_case_cost

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


def _usd(value: float) -> str:
    """Dollars with enough digits that two different small amounts never print alike."""
    return f"${value:.4f}" if value >= 0.1 else f"${value:.6f}"


class Ledger:
    """Counts what the job spends and keeps it under max_cost_usd.

    Every call in flight holds a reservation of its worst case (all input uncached, the whole
    answer budget used), so the limit holds even with many calls in flight at once. Near the
    limit a call whose worst case does not fit waits for the calls in flight to settle (they
    usually cost far less than they reserved), so concurrency falls instead of the job stopping;
    only a call that does not fit with nothing in flight stops the job.
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
        self.projected_usd: float | None = None  # the job's latest cost projection, when it makes one
        self._holders = 0  # reservations outstanding: calls in flight that may still cost money
        self._waiters: list[asyncio.Future[None]] = []
        self.max_tokens: dict[str, int] = {}  # per model, the answer budget of its latest call

    @property
    def spent(self) -> float:
        """Dollars spent by this job, earlier runs included."""
        return self.spent_before + self.total.cost_usd

    def worst_case(self, model_key: str, input_tokens: int, max_tokens: int) -> float:
        return worst_case_cost(self.prices.price(model_key), input_tokens, max_tokens)

    def try_reserve(self, model_key: str, input_tokens: int, max_tokens: int) -> float | None:
        """Reserve a call's worst case if it fits now; None if it must wait for calls in flight.

        Raises BudgetExhausted when it does not fit even with nothing in flight.
        """
        self.max_tokens[model_key] = max_tokens
        worst = self.worst_case(model_key, input_tokens, max_tokens)
        if self.max_cost_usd is None or self.spent + self.reserved + worst <= self.max_cost_usd:
            self.reserved += worst
            self._holders += 1
            return worst
        if self._holders == 0:
            left = max(0.0, self.max_cost_usd - self.spent)
            raise BudgetExhausted(
                f"cost budget reached: {_usd(self.spent)} spent of {_usd(self.max_cost_usd)}; the next call "
                f"could cost up to {_usd(worst)}, more than the {_usd(left)} left; raise --max-cost "
                "(or max_cost_usd in shoal.toml) and run the same command to go on"
            )
        return None

    async def reserve(self, model_key: str, input_tokens: int, max_tokens: int) -> float:
        """Reserve a call's worst case, waiting while calls in flight hold the rest of the budget."""
        while True:
            reservation = self.try_reserve(model_key, input_tokens, max_tokens)
            if reservation is not None:
                return reservation
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def release(self, reservation: float) -> None:
        self.reserved = max(0.0, self.reserved - reservation)
        self._holders = max(0, self._holders - 1)
        if self._holders == 0:
            self.reserved = 0.0  # no float residue once nothing is in flight
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each re-checks: the spent money is recorded before the release
            if not waiter.done():
                waiter.set_result(None)

    def reserve_batch(self, worst: float, *, what: str, force: bool = False) -> float:
        """Reserve a whole batch's worst case before it is submitted; BudgetExhausted if it does not fit.

        `force` holds the reservation whatever the limit: for batches submitted by an earlier run,
        whose money may still be spent. Released with `release` once the batch is collected.
        """
        if (
            not force
            and self.max_cost_usd is not None
            and self.spent + self.reserved + worst > self.max_cost_usd
        ):
            left = max(0.0, self.max_cost_usd - self.spent - self.reserved)
            raise BudgetExhausted(
                f"cost budget: {what} could cost up to {_usd(worst)}, more than the {_usd(left)} left of "
                f"{_usd(self.max_cost_usd)} ({_usd(self.spent)} spent); nothing was submitted; "
                "raise --max-cost (or max_cost_usd in shoal.toml) and run the same command to go on"
            )
        self.reserved += worst
        self._holders += 1
        return worst

    def batch_worst_case(self, model_key: str, input_tokens: int, max_tokens: int) -> float:
        price = self.prices.batch_price(model_key)
        return worst_case_cost(price, input_tokens, max_tokens)

    def batch_cost_of(self, model_key: str, usage: Usage) -> float:
        cost = self.prices.batch_cost(model_key, usage)
        if cost is None:
            self.unpriced.add(model_key)
            return 0.0
        return cost

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
