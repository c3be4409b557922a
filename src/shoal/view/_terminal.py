"""The live terminal view of a running job: a Rich panel on a terminal, a log line otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.live import Live

from .._clock import Clock
from ..engine import Job
from ..journal import CallTotalsCache
from ._render import compact_line, render_status
from ._snapshot import capture
from ._status import read_status

__all__ = ["TerminalView"]

_SLICE_S = 0.1
_COST_FACTOR = 5.0


class TerminalView:
    """Polls the job (its counters in memory, its journal in a worker thread) and shows it.

    On a terminal the panel is redrawn every `refresh_s`; without one, `compact_line` is printed
    every `log_every_s`. `stop()` ends the loop after one last refresh.
    """

    def __init__(
        self,
        job: Job,
        *,
        console: Console,
        stages: Sequence[str] = (),
        refresh_s: float = 1.0,
        log_every_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.job = job
        self.console = console
        self.stages = tuple(stages)
        self.refresh_s = refresh_s
        self.log_every_s = log_every_s
        self._clock = clock or job.clock
        self._stopping = False
        self._cache = CallTotalsCache()
        self._took = 0.0  # how long the last status read took
        self.frames = 0

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    def stop(self) -> None:
        self._stopping = True

    async def status(self) -> dict[str, Any]:
        """What `shoal status --json` would say now, with this process's fresher live state."""
        live = capture(self.job, stages=self.stages)
        path, started = self.job.journal.path, time.perf_counter()
        status = await asyncio.to_thread(
            read_status, path, job=self.job.name, live=live, now=self._clock.wall(), cache=self._cache
        )
        self._took = time.perf_counter() - started
        return status

    def _next_in(self, every: float) -> float:
        """A huge journal takes a while to read: never spend more than a fifth of the time on it."""
        return max(every, _COST_FACTOR * self._took)

    async def _wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early once stop() was called."""
        deadline = self._clock.now() + seconds
        while not self._stopping:
            left = deadline - self._clock.now()
            if left <= 0:
                return
            await self._clock.sleep(min(left, _SLICE_S))

    async def _safe_status(self) -> dict[str, Any] | None:
        try:
            return await self.status()
        except Exception:  # a view must never take the job down; the next tick tries again
            return None

    async def run(self) -> None:
        if self.interactive:
            await self._run_live()
        else:
            await self._run_log()

    async def _run_live(self) -> None:
        first = await self._safe_status()
        initial = render_status(first) if first is not None else ""
        with Live(initial, console=self.console, refresh_per_second=4, redirect_stdout=False) as live:
            while True:
                final = self._stopping
                status = await self._safe_status()
                if status is not None:
                    live.update(render_status(status), refresh=True)
                    self.frames += 1
                if final:
                    return
                await self._wait(self._next_in(self.refresh_s))

    async def _run_log(self) -> None:
        while True:
            await self._wait(self._next_in(self.log_every_s))
            if self._stopping:
                return
            status = await self._safe_status()
            if status is not None:
                self.console.file.write(compact_line(status) + "\n")
                self.console.file.flush()
                self.frames += 1
