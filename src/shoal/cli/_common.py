"""Option handling shared by the job commands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from ..config import ShoalConfig
from ..engine import Job
from ..errors import InputError
from ..pricing import PriceBook
from ..providers import ModelRef, by_model_key

__all__ = ["ConcurrencyOption", "totals_line", "unpriced_warning", "with_overrides"]

ConcurrencyOption = Annotated[
    str | None,
    typer.Option("--concurrency", help='Requests in flight, or "auto" (found from throughput).'),
]


def _concurrency(value: str | int) -> int | str:
    if isinstance(value, int) or value.strip().lower() == "auto":
        return value if isinstance(value, int) else "auto"
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"--concurrency must be a positive integer or 'auto', not '{value}'")
    return number


def with_overrides(config: ShoalConfig, concurrency: str | int | None, max_cost: float | None) -> ShoalConfig:
    """shoal.toml's [job] settings with the command line's --concurrency and --max-cost on top."""
    updates: dict[str, object] = {}
    if concurrency is not None:
        updates["concurrency"] = _concurrency(concurrency)
    if max_cost is not None:
        updates["max_cost_usd"] = max_cost
    if not updates:
        return config
    job = config.job.model_validate({**config.job.model_dump(), **updates})
    return config.model_copy(update={"job": job})


def unpriced_warning(config: ShoalConfig, models: Iterable[ModelRef]) -> str | None:
    """A warning when a cost budget is set but some model has no known price (its cost counts as 0)."""
    if config.job.max_cost_usd is None:
        return None
    prices = PriceBook(by_model_key(config.prices, config))
    missing = sorted({ref.key for ref in models if prices.price(ref.key) is None})
    if not missing:
        return None
    return (
        f"shoal: warning: no price known for {', '.join(missing)}: its calls count as $0 against "
        "max_cost_usd (add [prices] in shoal.toml)"
    )


def totals_line(job: Job) -> str:
    """What the run sent and spent, for the summary every job command prints."""
    total = job.ledger.total
    stats = job.caller.stats
    return (
        f"{stats.sent} requests sent, {stats.replayed} replayed from the journal, {stats.retries} retries, "
        f"{stats.rate_limited} rate-limited; tokens {total.input_tokens} in / {total.output_tokens} out; "
        f"${total.cost_usd:.4f} this run (${job.ledger.spent:.4f} job total)"
    )
