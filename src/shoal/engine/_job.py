"""One run of a job: the state directory's lock, the journal, the budgets, the providers and the caller,
opened together and closed together."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .._clock import Clock, SystemClock
from ..budget import Budgets, BudgetSettings, open_budget_book
from ..config import ModelLimits, ShoalConfig
from ..journal import Journal, RunStatus, WorkspaceLock
from ..pricing import PriceBook
from ..providers import ProviderSet, by_model_key
from ._autotune import TunerSettings
from ._caller import ModelCaller
from ._calls import ProviderSource, RetryPolicy
from ._ledger import Ledger
from ._outage import OutageSettings
from ._stop import StopSignal
from ._streak import FailureStreak
from ._timeouts import TimeoutSettings

__all__ = ["Job", "StateDir", "open_job"]


@dataclass(frozen=True, slots=True)
class StateDir:
    """A working directory's `.shoal/` state: the journal, the lock, staged files, agent sandboxes
    and reports. (Not an agent's workspace: those are `workflows.Sandboxes` under `sandboxes`.)"""

    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / ".shoal"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "lock"

    @property
    def staging(self) -> Path:
        return self.state_dir / "staging"

    @property
    def sandboxes(self) -> Path:
        """Where workflows' agents get their working directories."""
        return self.state_dir / "workspaces"

    @property
    def reports(self) -> Path:
        return self.state_dir / "reports"


@dataclass(slots=True)
class Job:
    name: str
    run_id: int
    config: ShoalConfig
    journal: Journal
    caller: ModelCaller
    ledger: Ledger
    budgets: Budgets
    providers: ProviderSource
    stop: StopSignal
    clock: Clock
    status: RunStatus = RunStatus.RUNNING
    notes: list[str] = field(default_factory=list)
    streak: FailureStreak | None = None  # stops the job when every call fails alike


@asynccontextmanager
async def open_job(
    *,
    state: StateDir,
    config: ShoalConfig,
    name: str,
    command: str,
    env: Mapping[str, str],
    stop: StopSignal,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    providers: ProviderSource | None = None,
    budget_settings: BudgetSettings | None = None,
) -> AsyncIterator[Job]:
    clock = clock or SystemClock()
    rng = rng or random.Random()
    limits: dict[str, ModelLimits] = by_model_key(config.limits, config)
    # Before the lock and the run row: a shared budget whose Redis cannot be used is exit 2.
    budgets = await open_budget_book(
        config,
        env,
        limits,
        key_of=ProviderSet(config, env).budget_identity,
        clock=clock,
        rng=rng,
        settings=budget_settings or BudgetSettings(max_pause_s=config.job.max_pause_s),
        on_lost=stop.drain,
    )
    lock = WorkspaceLock(state.lock_path)
    try:
        lock.acquire(command)
    except BaseException:
        await budgets.aclose()
        raise
    try:
        journal = Journal.open(state.journal_path, clock)
        try:
            run_id = await journal.begin_run(name, command, os.getpid())
            settings = config.job
            ledger = Ledger(
                PriceBook.from_config(config),
                max_cost_usd=settings.max_cost_usd,
                spent_before=journal.spent(name),
            )
            providers = providers or ProviderSet(config, env)
            streak = FailureStreak(
                stop,
                limit=settings.same_failure_limit,
                on_trip=lambda reason: journal.event(run_id, "same_failure", None, reason=reason),
            )
            auto = settings.concurrency == "auto"
            caller = ModelCaller(
                job=name,
                run_id=run_id,
                providers=providers,
                budgets=budgets,
                journal=journal,
                ledger=ledger,
                stop=stop,
                policy=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    max_rate_limited=settings.max_rate_limited,
                    request_timeout_s=settings.request_timeout_s,
                ),
                concurrency=settings.max_concurrency if auto else int(settings.concurrency),
                clock=clock,
                rng=rng,
                streak=streak,
                outage_settings=OutageSettings(max_outage_s=settings.max_outage_s),
                timeout_settings=TimeoutSettings(
                    ceiling_s=settings.request_timeout_s,
                    floor_s=min(settings.request_timeout_min_s, settings.request_timeout_s),
                ),
                auto_concurrency=TunerSettings(maximum=settings.max_concurrency) if auto else None,
            )
            job = Job(name, run_id, config, journal, caller, ledger, budgets, providers, stop, clock)
            job.streak = streak
            try:
                yield job
            finally:
                await caller.aclose()
                await providers.aclose()
                status = job.status if job.status is not RunStatus.RUNNING else RunStatus.STOPPED
                await journal.finish_run(run_id, status)
        finally:
            await journal.close()
    finally:
        lock.release()
        await budgets.aclose()
