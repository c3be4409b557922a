"""A token bucket with continuous refill, the unit of every rate limit."""

from __future__ import annotations

__all__ = ["Bucket"]


class Bucket:
    """Refills at `rate` units per second up to `capacity`.

    The level may go below zero: when a call used more than it reserved, the difference is a
    debt that later refill repays before anything else is granted.
    """

    __slots__ = ("capacity", "level", "rate", "_stamp")

    def __init__(self, rate: float, capacity: float, *, level: float = 0.0, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = level
        self._stamp = now

    def refill(self, now: float) -> None:
        if now > self._stamp:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` can be taken (an amount above capacity waits for a full bucket)."""
        self.refill(now)
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)

    def drain(self) -> None:
        """Forget any saved-up allowance (after the provider said we are over)."""
        self.level = min(self.level, 0.0)

    def retune(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = min(self.level, capacity)
