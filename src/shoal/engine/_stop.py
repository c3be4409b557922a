"""Stopping: the first interrupt drains, the second cancels; a budget stop drains too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum

__all__ = ["StopSignal", "StopState", "Stopped"]


class StopState(StrEnum):
    RUNNING = "running"
    DRAINING = "draining"  # nothing new starts; requests in flight finish
    CANCELLED = "cancelled"  # requests in flight are abandoned too


class Stopped(Exception):
    """Raised inside work that was waiting to start when the job began to drain."""


class StopSignal:
    def __init__(self) -> None:
        self.state = StopState.RUNNING
        self.reason: str | None = None
        self._event = asyncio.Event()
        self._on_cancel: list[Callable[[], None]] = []

    @property
    def running(self) -> bool:
        return self.state is StopState.RUNNING

    def drain(self, reason: str) -> None:
        if self.state is StopState.RUNNING:
            self.state = StopState.DRAINING
            self.reason = reason
            self._event.set()

    def cancel(self) -> None:
        if self.state is StopState.CANCELLED:
            return
        self.reason = self.reason or "cancelled"
        self.state = StopState.CANCELLED
        self._event.set()
        for callback in self._on_cancel:
            callback()

    def interrupt(self) -> None:
        """What Ctrl-C and SIGTERM do: drain the first time, cancel the second."""
        if self.state is StopState.RUNNING:
            self.drain("interrupted")
        else:
            self.cancel()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._on_cancel.append(callback)

    async def wait(self) -> None:
        await self._event.wait()

    def check(self) -> None:
        if not self.running:
            raise Stopped(self.reason or "stopped")
