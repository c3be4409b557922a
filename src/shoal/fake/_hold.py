"""A gate that keeps the fake's requests in flight until a test lets them go.

"While the job runs" then means a state the test set up (n answered, the rest held), not a moment
it hoped to hit: a loaded machine can make a job finish early, but not get past a closed gate.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

__all__ = ["Hold"]


class Hold:
    """Open by default. `close(after=n)` lets n more requests through, then holds every later one.

    Held requests stay open (the client sees a slow answer) until `allow` or `open` lets them go,
    first come first served. It is driven from any thread: the fake server's loop runs in a thread
    of its own while the test waits in the main one with `wait_held`.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._passes: int | None = None  # None: open; otherwise how many may still pass
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def held(self) -> int:
        """How many requests are waiting at the gate now."""
        with self._condition:
            return len(self._waiting)

    def close(self, after: int = 0) -> None:
        """Let `after` more requests through, then hold the rest."""
        if after < 0:
            raise ValueError(f"after must not be negative, got {after}")
        with self._condition:
            self._passes = after
            self._wake()

    def allow(self, count: int) -> None:
        """Let `count` more requests through (held ones first) and stay closed."""
        with self._condition:
            if self._passes is not None:
                self._passes += count
                self._wake()

    def open(self) -> None:
        """Let every held request go, and every later one through."""
        with self._condition:
            self._passes = None
            self._wake()

    def wait_held(self, count: int, timeout: float = 30.0) -> None:
        """Block the calling thread until at least `count` requests are held."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._waiting) >= count, timeout):
                raise TimeoutError(f"{len(self._waiting)} requests held after {timeout} s, expected {count}")

    async def passage(self) -> None:
        """Return at once while open or while passes are left; otherwise wait to be let through."""
        loop = asyncio.get_running_loop()
        with self._condition:
            if self._passes is None:
                return
            if self._passes > 0 and not self._waiting:
                self._passes -= 1
                return
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiting.append(entry)
            self._condition.notify_all()
        try:
            await future
        finally:
            with self._condition:
                if entry in self._waiting:  # cancelled while held (client gone, server stopping)
                    self._waiting.remove(entry)
                    self._condition.notify_all()

    def _wake(self) -> None:
        """Release waiters while passes are left; the condition's lock is held."""
        while self._waiting and (self._passes is None or self._passes > 0):
            loop, future = self._waiting.popleft()
            if self._passes is not None:
                self._passes -= 1
            try:
                loop.call_soon_threadsafe(_release, future)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass
        self._condition.notify_all()


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
