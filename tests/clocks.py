"""The suite's one virtual clock: time moves only when code sleeps or a test moves it, never by itself.

Budget, backend and journal tests run in milliseconds on it, and a loaded machine cannot change what
they see.
"""

from __future__ import annotations

import asyncio


class VirtualClock:
    """`now()` starts at `start`; `wall()` is `epoch + now()` (seconds since 1970, for headers)."""

    def __init__(self, start: float = 1000.0, *, epoch: float = 0.0) -> None:
        self.t = start
        self.epoch = epoch

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.epoch + self.t

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += seconds
        await asyncio.sleep(0)


class GatedClock(VirtualClock):
    """Every sleep lasts until the test sets `gate`: requests stay in flight meanwhile."""

    def __init__(self, start: float = 1000.0, *, epoch: float = 0.0) -> None:
        super().__init__(start, epoch=epoch)
        self.gate = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self.gate.wait()
