"""Option handling shared by the job commands."""

from __future__ import annotations

from ..config import ShoalConfig

__all__ = ["with_overrides"]


def with_overrides(config: ShoalConfig, concurrency: int | None, max_cost: float | None) -> ShoalConfig:
    """shoal.toml's [job] settings with the command line's --concurrency and --max-cost on top."""
    updates: dict[str, object] = {}
    if concurrency is not None:
        updates["concurrency"] = concurrency
    if max_cost is not None:
        updates["max_cost_usd"] = max_cost
    if not updates:
        return config
    job = config.job.model_validate({**config.job.model_dump(), **updates})
    return config.model_copy(update={"job": job})
