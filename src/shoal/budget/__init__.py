"""The rate budget: one per provider model, shared by everything in the job.

`RateBudget` is the small interface the engine talks to; `ModelBudget` keeps it in this process.
A budget shared by many processes (through Redis) implements the same five methods.
"""

from __future__ import annotations

import random
from typing import Protocol

from .._clock import Clock
from .._types import RateSnapshot, Usage
from ..config import ModelLimits
from ._budget import BudgetSettings, Demand, ModelBudget, Permit

__all__ = [
    "BudgetBook",
    "BudgetSettings",
    "Demand",
    "ModelBudget",
    "Permit",
    "RateBudget",
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
