"""A virtual clock: sleeping advances time at once, so budget tests run in milliseconds."""

from __future__ import annotations

import asyncio


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += seconds
        await asyncio.sleep(0)
