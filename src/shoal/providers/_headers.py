"""Read rate-limit headers from OpenAI- and Anthropic-style responses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from .._types import RateSnapshot

__all__ = ["parse_duration", "parse_rate_headers"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """OpenAI's reset format ("1s", "6m0s", "20ms", "1h2m3.5s") in seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _seconds_until(stamp: str, now: datetime) -> float | None:
    """Anthropic's reset format (RFC 3339 timestamp) as seconds from now."""
    try:
        moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _as_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # HTTP-date form
        from email.utils import parsedate_to_datetime

        moment = parsedate_to_datetime(value)
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _first(*values: float | None) -> float | None:
    # "0s" (a full bucket) is an answer, not a missing header.
    return next((value for value in values if value is not None), None)


def parse_rate_headers(headers: Mapping[str, str], now: Callable[[], datetime] | None = None) -> RateSnapshot:
    """Collect what the headers say; keys must be lower-case (httpx headers are case-insensitive)."""
    get = headers.get
    current = (now or (lambda: datetime.now(UTC)))()

    def anthropic_reset(kind: str) -> float | None:
        stamp = get(f"anthropic-ratelimit-{kind}-reset")
        return _seconds_until(stamp, current) if stamp else None

    def openai_reset(kind: str) -> float | None:
        text = get(f"x-ratelimit-reset-{kind}")
        return parse_duration(text) if text else None

    limit_requests = _as_int(get("x-ratelimit-limit-requests"))
    if limit_requests is None:
        limit_requests = _as_int(get("anthropic-ratelimit-requests-limit"))
    remaining_requests = _as_int(get("x-ratelimit-remaining-requests"))
    if remaining_requests is None:
        remaining_requests = _as_int(get("anthropic-ratelimit-requests-remaining"))
    limit_tokens = _as_int(get("x-ratelimit-limit-tokens"))
    if limit_tokens is None:
        limit_tokens = _as_int(get("anthropic-ratelimit-tokens-limit"))
    remaining_tokens = _as_int(get("x-ratelimit-remaining-tokens"))
    if remaining_tokens is None:
        remaining_tokens = _as_int(get("anthropic-ratelimit-tokens-remaining"))
    return RateSnapshot(
        limit_requests=limit_requests,
        remaining_requests=remaining_requests,
        reset_requests_s=_first(openai_reset("requests"), anthropic_reset("requests")),
        limit_tokens=limit_tokens,
        remaining_tokens=remaining_tokens,
        reset_tokens_s=_first(openai_reset("tokens"), anthropic_reset("tokens")),
        limit_input_tokens=_as_int(get("anthropic-ratelimit-input-tokens-limit")),
        remaining_input_tokens=_as_int(get("anthropic-ratelimit-input-tokens-remaining")),
        limit_output_tokens=_as_int(get("anthropic-ratelimit-output-tokens-limit")),
        remaining_output_tokens=_as_int(get("anthropic-ratelimit-output-tokens-remaining")),
        retry_after_s=_retry_after(headers),
        reset_input_tokens_s=anthropic_reset("input-tokens"),
        reset_output_tokens_s=anthropic_reset("output-tokens"),
        reset_from_timestamp=any(name.startswith("anthropic-ratelimit-") for name in headers) or None,
    )
