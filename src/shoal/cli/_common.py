"""Option handling shared by the job commands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer
from pydantic import ValidationError

from ..config import ShoalConfig
from ..engine import Job
from ..errors import InputError, UsageError
from ..pricing import PriceBook
from ..providers import ModelRef

__all__ = ["ConcurrencyOption", "refuse_unpriced", "totals_line", "with_overrides"]

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
    try:
        job = config.job.model_validate({**config.job.model_dump(), **updates})
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = {"concurrency": "--concurrency", "max_cost_usd": "--max-cost"}.get(str(first["loc"][0]), "")
        raise UsageError(f"{flag} {first['input']}: {first['msg'].lower()}") from None
    return config.model_copy(update={"job": job})


def refuse_unpriced(config: ShoalConfig, models: Iterable[ModelRef]) -> None:
    """With a cost budget, every model needs a price: a typo'd or unknown model would count as $0."""
    if config.job.max_cost_usd is None:
        return
    missing = PriceBook.from_config(config).unpriced(models)
    if missing:
        raise InputError(
            f"no price known for {', '.join(missing)}: with a cost budget every model needs one; "
            "check the model name or give its price under [prices] in shoal.toml"
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
