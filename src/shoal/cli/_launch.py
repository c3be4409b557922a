"""One launch path for the job commands (map, map --roles, plan and workflow runs).

Every job command does the same around its own checks and its run: capture the command line to
resume with, apply --concurrency and --max-cost over shoal.toml, check each model's provider and
price, open the job in its state directory, and after the run print the first failures and the line
that says how to resume or rerun. `Launch` does those once; the commands keep only what differs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..cluster import RayTarget, executor_providers, executor_tools, note_workers, ray_target
from ..config import ShoalConfig, load_config
from ..engine import Job, ProviderSource, StateDir, StopSignal, open_job
from ..providers import ModelRef, ProviderSet
from ._batch import Fallback, with_fallback
from ._common import refuse_unpriced, with_overrides
from ._executor import with_executor
from ._runtime import resume_argv, say

__all__ = ["SHOWN_FAILURES", "Launch"]

SHOWN_FAILURES = 20  # failures listed one per line after a run; the rest are counted


@dataclass(frozen=True, slots=True)
class Launch:
    argv: list[str]  # the command as typed, to resume with
    config: ShoalConfig  # shoal.toml with the command line's overrides on top
    providers: ProviderSet
    state: StateDir
    cluster: RayTarget | None = None  # where items run: None is this process (the local executor)

    @classmethod
    def prepare(
        cls,
        *,
        config_path: Path | None,
        concurrency: str | int | None,
        max_cost: float | None,
        argv: list[str] | None = None,
        config: ShoalConfig | None = None,
        executor: str | None = None,
        batch_fallback: Fallback | None = None,
    ) -> Launch:
        """`config` when the caller has already loaded it (with the same overrides); `executor` is
        --executor over shoal.toml's [executor] (a Ray cluster is checked here: exit 2 if unusable);
        `batch_fallback` is --batch-fallback over [batch] fallback."""
        if config is None:
            config = with_overrides(load_config(config_path), concurrency, max_cost)
        config = with_fallback(with_executor(config, executor), batch_fallback)
        return cls(
            argv=argv or resume_argv(),
            config=config,
            providers=ProviderSet(config, os.environ),
            state=StateDir(Path.cwd()),
            cluster=ray_target(config, os.environ),
        )

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def root(self) -> Path:
        return self.state.root

    def check_models(self, models: Iterable[ModelRef]) -> None:
        """Every model's provider is usable (its key is set), and priced when a cost budget is set."""
        refs = list(dict.fromkeys(models))
        for ref in refs:
            self.providers.check(ref)
        refuse_unpriced(self.config, refs)

    @asynccontextmanager
    async def open(
        self, name: str, stop: StopSignal, *, remote: Literal["calls", "agents"] = "calls"
    ) -> AsyncIterator[Job]:
        """The job, its items placed by the executor: on Ray, model calls go to workers ("calls",
        map and plans) or workflow agents' loops do ("agents"), asking the driver for each model request;
        the driver journals."""
        placed: AbstractAsyncContextManager[ProviderSource]
        if remote == "calls":
            placed = executor_providers(
                self.cluster,
                self.config,
                os.environ,
                job_name=name,
                state_dir=self.state.state_dir,
                local=self.providers,
            )
        else:
            placed = executor_tools(
                self.cluster, job_name=name, state_dir=self.state.state_dir, local=self.providers
            )
        async with (
            placed as providers,
            open_job(
                state=self.state,
                config=self.config,
                name=name,
                command=self.command,
                env=os.environ,
                stop=stop,
                providers=providers,
            ) as job,
        ):
            yield job
            note_workers(job, say)

    def failures(self, failed: Mapping[str, str], count: int, *, where: str) -> None:
        """The first failures, one per line, then how many more (and `where` to see them)."""
        for name, reason in list(failed.items())[:SHOWN_FAILURES]:
            say(f"  failed: {name}: {reason}")
        if count > SHOWN_FAILURES:
            say(f"  ... and {count - SHOWN_FAILURES} more failed (see {where})")

    def ended(self, what: str, *, stopped: str | None, halted: str | None = None) -> None:
        """The closing line of a run that did not finish: how to go on."""
        if halted:
            say(f"{what}: halted: {halted}; fix the cause, then rerun: {self.command}")
        elif stopped:
            say(f"{what}: stopped ({stopped}); resume with: {self.command}")
