"""The adjustable limiter and `concurrency = "auto"`, against a simulated server in virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

from shoal.engine._autotune import ConcurrencyTuner, TunerSettings
from shoal.engine._limiter import Limiter


class EventClock:
    """Discrete-event time: sleepers wake in order of their deadlines, time jumps between them."""

    def __init__(self) -> None:
        self.t = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.t + max(0.0, seconds), next(self._seq), future))
        await future

    async def run_until(self, end: float) -> None:
        while self.t < end:
            for _ in range(4):  # let woken tasks run up to their next sleep
                await asyncio.sleep(0)
            if not self._timers:
                return
            when, _, future = heapq.heappop(self._timers)
            self.t = max(self.t, when)
            future.set_result(None)


class CapacityServer:
    """Latency grows in proportion to the requests in flight past `capacity`, like the fake server."""

    def __init__(self, clock: EventClock, capacity: int, latency_s: float) -> None:
        self.clock, self.capacity, self.latency_s = clock, capacity, latency_s
        self.in_flight = 0
        self.answered: list[float] = []

    async def request(self) -> None:
        self.in_flight += 1
        await self.clock.sleep(self.latency_s * max(1.0, self.in_flight / self.capacity))
        self.answered.append(self.clock.t)


async def run_auto(capacity: int, seconds: float, maximum: int = 128) -> tuple[ConcurrencyTuner, list[Any]]:
    clock = EventClock()
    server = CapacityServer(clock, capacity, latency_s=0.1)
    limiter = Limiter(maximum)
    changes: list[dict[str, Any]] = []
    tuner = ConcurrencyTuner(limiter, TunerSettings(maximum=maximum), clock=clock, on_change=changes.append)

    async def worker() -> None:
        while True:
            await limiter.acquire()
            try:
                await server.request()
                tuner.completed()
            finally:
                server.in_flight -= 1
                limiter.release()

    workers = [asyncio.create_task(worker()) for _ in range(maximum)]
    await clock.run_until(seconds)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    late = [t for t in server.answered if t >= seconds / 2]
    return tuner, [len(late) / (seconds / 2), changes]


async def test_auto_finds_the_capacity_and_keeps_most_of_the_best_throughput() -> None:
    tuner, (late_rate, changes) = await run_auto(capacity=16, seconds=120.0)
    best = 16 / 0.1  # answers per second at or past the capacity
    assert late_rate >= 0.9 * best
    assert 12 <= tuner.limit <= 64  # near the capacity, far below the maximum of 128
    assert changes[0] == {"limit": 8, "reason": "growing", "answers_per_s": changes[0]["answers_per_s"]}


async def test_auto_stays_low_on_a_small_server() -> None:
    tuner, (late_rate, _) = await run_auto(capacity=3, seconds=60.0)
    assert late_rate >= 0.9 * 3 / 0.1
    assert tuner.limit <= 12


async def test_a_429_or_503_cuts_the_limit() -> None:
    limiter = Limiter(100)
    clock = EventClock()
    tuner = ConcurrencyTuner(limiter, TunerSettings(start=40, maximum=100), clock=clock)
    assert limiter.limit == 40
    tuner.congested()
    assert limiter.limit == 28
    tuner.congested()  # the same second: one event
    assert limiter.limit == 28
    clock.t += 2
    tuner.congested()
    assert limiter.limit == 19


async def test_the_limiter_follows_its_limit_while_held() -> None:
    limiter = Limiter(2)
    await limiter.acquire()
    await limiter.acquire()
    third = asyncio.create_task(limiter.acquire())
    fourth = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not third.done() and limiter.waiting == 2
    limiter.set_limit(3)  # raising the limit admits a waiter at once
    await asyncio.sleep(0)
    assert third.done() and not fourth.done() and limiter.held == 3
    limiter.set_limit(1)  # lowering it takes effect as slots come back
    limiter.release()
    limiter.release()
    await asyncio.sleep(0)
    assert not fourth.done() and limiter.held == 1
    fourth.cancel()  # a cancelled waiter leaves no slot taken
    await asyncio.gather(fourth, return_exceptions=True)
    limiter.release()
    assert limiter.held == 0 and limiter.waiting == 0
    await limiter.acquire()
    assert limiter.held == 1
