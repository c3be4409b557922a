"""The rate budget: one per provider model, shared by everything in the job.

`RateBudget` is the small interface the engine talks to; `ModelBudget` keeps it in this process.
A budget shared by many processes (through Redis) implements the same five methods.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Protocol, TypeAlias

from .._clock import Clock
from .._types import RateSnapshot, Usage
from ..config import ModelLimits, ShoalConfig
from ._budget import BudgetSettings, Demand, ModelBudget, Permit
from ._redis import SharedBudget
from ._redis_book import SharedBook

__all__ = [
    "BudgetBook",
    "Budgets",
    "BudgetSettings",
    "Demand",
    "ModelBudget",
    "Permit",
    "RateBudget",
    "SharedBook",
    "SharedBudget",
    "open_budget_book",
]


class RateBudget(Protocol):
    model_key: str

    def try_acquire(self, demand: Demand) -> Permit | None: ...

    async def acquire(self, demand: Demand) -> Permit: ...

    def settle(self, permit: Permit, usage: Usage | None) -> None: ...

    def observe(self, snapshot: RateSnapshot, permit: Permit | None = None) -> None: ...

    def rate_limited(self, retry_after: float | None) -> None: ...


class BudgetBook:
    """Hands out the one budget of each provider model."""

    shared = False

    def __init__(
        self,
        limits: dict[str, ModelLimits],
        *,
        clock: Clock,
        rng: random.Random,
        settings: BudgetSettings | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._rng = rng
        self._settings = settings or BudgetSettings()
        self._budgets: dict[str, ModelBudget] = {}

    def for_model(self, model_key: str) -> ModelBudget:
        budget = self._budgets.get(model_key)
        if budget is None:
            budget = ModelBudget(
                model_key,
                self._limits.get(model_key, ModelLimits()),
                clock=self._clock,
                rng=self._rng,
                settings=self._settings,
            )
            self._budgets[model_key] = budget
        return budget

    def all(self) -> list[ModelBudget]:
        return list(self._budgets.values())

    async def aclose(self) -> None:
        """Nothing to release in this process (the shared book's counterpart closes Redis)."""


Budgets: TypeAlias = BudgetBook | SharedBook

REDIS_URL_ENV = "SHOAL_REDIS_URL"


async def open_budget_book(
    config: ShoalConfig,
    env: Mapping[str, str],
    limits: dict[str, ModelLimits],
    *,
    clock: Clock,
    rng: random.Random,
    key_of: Callable[[str], str | None],
    settings: BudgetSettings | None = None,
    on_lost: Callable[[str], None] | None = None,
) -> Budgets:
    """The job's budgets: shared through Redis when `[budget] redis_url` (or SHOAL_REDIS_URL) is set,
    else kept in this process. Raises ConfigError (exit 2) when Redis cannot be used.

    Any process on the same key (a worker of a distributed executor too) builds its book this way
    and shares the budget. `key_of(provider)` names the API key (or keyless server) a budget belongs
    to; only a salted hash of it reaches Redis. `on_lost` is called with a reason when Redis stays away past
    `[budget] redis_timeout_s` (the job should drain); close the book with `await book.aclose()`.
    """
    budget = config.budget
    url = budget.redis_url or env.get(REDIS_URL_ENV) or None
    if url is None:
        return BudgetBook(limits, clock=clock, rng=rng, settings=settings)
    shared_config = budget.model_copy(update={"redis_url": url})
    return await SharedBook.connect(
        shared_config, limits, key_of, clock=clock, rng=rng, settings=settings, on_lost=on_lost
    )
