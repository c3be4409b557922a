"""Token buckets for per-minute limits, and the rate-limit headers that describe them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["ServerLimit", "format_duration", "rate_headers", "retry_headers"]


class ServerLimit:
    """One per-minute limit enforced over a short window.

    Hosted providers quantize a per-minute limit to a few seconds, so a burst of a whole minute's
    allowance is refused: capacity is the window's share of the limit, refilled continuously.
    """

    def __init__(self, limit: int, window_s: float, now: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.rate = limit / 60.0  # units per second
        # A window shorter than one unit's refill time must still admit one request.
        self.capacity = max(limit * window_s / 60.0, 1.0)
        self._level = self.capacity  # buckets start full, like an idle account
        self._stamp = now

    def level(self, now: float) -> float:
        if now > self._stamp:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
            self._stamp = now
        return self._level

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until the bucket holds `amount`; 0 if it does now."""
        short = amount - self.level(now)
        return 0.0 if short <= 0 else short / self.rate

    def take(self, amount: float, now: float) -> None:
        self._level = self.level(now) - amount

    def give(self, amount: float, now: float) -> None:
        self._level = min(self.capacity, self.level(now) + amount)

    def remaining(self, now: float) -> int:
        """The level as a per-minute figure, which is what provider headers report."""
        scaled = self.level(now) * 60.0 / self.window_s
        return max(0, min(self.limit, math.floor(scaled + 1e-9)))

    def reset_s(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.level(now)) / self.rate)


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: "20ms", "1.5s", "1m2s"."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _timestamp(wall: float) -> str:
    """Anthropic's reset format: an RFC 3339 UTC timestamp (milliseconds, since windows are short)."""
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rate_headers(
    api: str, requests: ServerLimit | None, tokens: ServerLimit | None, now: float, wall: float
) -> dict[str, str]:
    """Lower-case rate-limit headers in the api's style; a limit that is not configured is left out."""
    headers: dict[str, str] = {}
    if api == "openai":
        for name, bucket in (("requests", requests), ("tokens", tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
                headers[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining(now))
                headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.reset_s(now))
        return headers
    # Anthropic splits tokens into input and output limits; one tpm bucket stands for all three.
    kinds = (("requests", requests), ("tokens", tokens), ("input-tokens", tokens), ("output-tokens", tokens))
    for name, bucket in kinds:
        if bucket is not None:
            headers[f"anthropic-ratelimit-{name}-limit"] = str(bucket.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(bucket.remaining(now))
            headers[f"anthropic-ratelimit-{name}-reset"] = _timestamp(wall + bucket.reset_s(now))
    return headers


def retry_headers(wait_s: float) -> dict[str, str]:
    """retry-after in whole seconds (rounded up, as HTTP wants), and the exact figure in ms."""
    return {
        "retry-after": str(max(1, math.ceil(wait_s))),
        "retry-after-ms": str(max(1, math.ceil(wait_s * 1000))),
    }
