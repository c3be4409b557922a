"""The CLI side of provider batch APIs: `--batch` for job commands, and `shoal cancel`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer

from ..config import ShoalConfig, load_config
from ..engine import Job, StateDir
from ..engine._batch import BatchRound
from ..engine._batch_cancel import cancel_open_batches
from ..errors import InputError
from ..estimate import Estimate, _money
from ..journal import BatchBook, Journal, WorkspaceLock
from ..pricing import PriceBook
from ..providers import ModelRef
from ..providers._batch import BATCH_PROVIDERS, BatchProviderSet
from ._runtime import run_async, say

__all__ = [
    "batch_config",
    "batch_round",
    "cancel_command",
    "cancel_job_batches",
    "estimate_lines",
    "launch_estimate",
    "maybe_batch_round",
    "with_fallback",
]

Fallback = Literal["batch", "online"]


def batch_config(config: ShoalConfig, batch: bool, fallback: Fallback | None, models: list[ModelRef]) -> bool:
    """Whether the job runs through batch APIs (--batch or [job] batch); checks its models can."""
    use = batch or config.job.batch
    if use:
        unable = sorted({ref.key for ref in models if ref.provider not in BATCH_PROVIDERS})
        if unable:
            raise InputError(
                f"--batch: {', '.join(unable)} has no batch API; batch rounds need openai or anthropic models"
            )
    elif fallback is not None:
        raise InputError("--batch-fallback needs --batch (or batch = true under [job] in shoal.toml)")
    return use


def with_fallback(config: ShoalConfig, fallback: Fallback | None) -> ShoalConfig:
    if fallback is None:
        return config
    return config.model_copy(update={"batch": config.batch.model_copy(update={"fallback": fallback})})


@asynccontextmanager
async def batch_round(job: Job, env: Mapping[str, str]) -> AsyncIterator[BatchRound]:
    adapters = BatchProviderSet(job.config, env)
    try:
        yield BatchRound(job, adapters, job.config.batch)
    finally:
        await adapters.aclose()


async def cancel_job_batches(job: Job, env: Mapping[str, str]) -> int:
    """Cancel the open batches of one job; how many."""
    adapters = BatchProviderSet(job.config, env)
    try:
        await BatchBook(job.journal).ensure()
        rows = await cancel_open_batches(job.name, BatchBook(job.journal), adapters)
    finally:
        await adapters.aclose()
    for row in rows:
        say(f"cancel: {row.provider} batch {row.batch_id} ({len(row.keys)} requests) of {row.job}")
    return len(rows)


def cancel_command(
    job_name: Annotated[
        str | None, typer.Option("--job", help="Cancel only this job's batches (default: every job's).")
    ] = None,
    config_path: Annotated[Path | None, typer.Option("--config", help="shoal.toml to use.")] = None,
) -> None:
    """Cancel the open provider batches of this workspace's jobs; a rerun collects what they finished."""

    async def main(stop: object) -> int:
        config = load_config(config_path)
        workspace = StateDir(Path.cwd())
        if not workspace.journal_path.exists():
            raise InputError(
                "no journal here (.shoal/journal.db): nothing was ever submitted from this directory"
            )
        lock = WorkspaceLock(workspace.lock_path)
        lock.acquire("shoal cancel")
        try:
            journal = Journal.open(workspace.journal_path)
            adapters = BatchProviderSet(config, os.environ)
            try:
                book = BatchBook(journal)
                await book.ensure()
                rows = await cancel_open_batches(job_name, book, adapters)
            finally:
                await adapters.aclose()
                await journal.close()
        finally:
            lock.release()
        for row in rows:
            say(f"cancel: {row.provider} batch {row.batch_id} ({len(row.keys)} requests) of {row.job}")
        say(f"cancel: {len(rows)} open batch(es) cancelled")
        return 0

    raise typer.Exit(run_async(main))


def launch_estimate(
    estimate_at: Callable[[PriceBook], Estimate], prices: PriceBook, *, batch: bool
) -> tuple[Estimate, list[str]]:
    """The estimate a job is held to (at batch prices with --batch) and the lines that show it:
    the online estimate, then with --batch the batch one beside it."""
    estimate = estimate_at(prices)
    lines = [estimate.line()]
    if batch:
        online, estimate = estimate, estimate_at(prices.batch_view())
        lines.append(estimate_lines(online, estimate))
    return estimate, lines


def estimate_lines(online: Estimate, batch: Estimate) -> str:
    """The pre-launch estimate of a batch run, beside the same run online."""
    saving = online.expected_usd - batch.expected_usd
    return (
        f"batch: about {_money(batch.expected_usd)} expected, {_money(batch.worst_usd)} at worst "
        f"(online: {_money(online.expected_usd)} expected, {_money(online.worst_usd)} at worst; "
        f"saves about {_money(saving)}); answers arrive within 24h, usually minutes"
    )


@asynccontextmanager
async def maybe_batch_round(
    job: Job, env: Mapping[str, str], enabled: bool
) -> AsyncIterator[BatchRound | None]:
    if not enabled:
        yield None
        return
    async with batch_round(job, env) as rounds:
        yield rounds
