"""The suite's one virtual clock: time moves only when code sleeps or a test moves it, never by itself.

Budget, backend and journal tests run in milliseconds on it, and a loaded machine cannot change what
they see.
"""

from __future__ import annotations

import asyncio
import heapq


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


class EventClock:
    """A virtual clock for many concurrent sleepers: each wakes at its own time, in time order.

    Time jumps to the earliest wake-up once every task is waiting (no task became ready for a few
    loop turns), so simulated latencies overlap as they would in real time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._runner: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.t + seconds, self._seq, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
        await future

    async def _run(self) -> None:
        while self._sleepers:
            quiet = 0
            while quiet < 8:  # let every ready task run until all of them wait again
                seen = self._seq
                await asyncio.sleep(0)
                quiet = quiet + 1 if seen == self._seq else 0
            wake_at, _, future = heapq.heappop(self._sleepers)
            self.t = max(self.t, wake_at)
            if not future.done():
                future.set_result(None)
