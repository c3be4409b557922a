"""Is the max_tokens reservation, rather than the provider, what limits throughput?

Every request reserves its prompt plus the whole max_tokens against the token budget until the
provider's count comes back (and, where unused tokens are not given back, for the minute). When
answers are much shorter than max_tokens, the reservations fill the token limit while the tokens
really used stay far below it: the job runs slower than the provider allows. The fix is a
max_tokens closer to what the answers need, which the outputs seen so far suggest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["reservation_check"]

_MIN_CALLS = 5  # answers needed before judging
_RESERVED_BUSY = 80.0  # % of a token limit the reservations fill ...
_USED_IDLE = 60.0  # ... while the tokens really counted use less than this %
_OVERSIZED = 2.0  # max_tokens at least this many times the longest answers
_HEADROOM = 1.25  # the suggestion: longest answers seen plus a quarter
_ROUND_TO = 50


def _percentile(values: Sequence[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def reservation_check(
    max_tokens: int | None,
    limits: Mapping[str, float],
    per_minute: Mapping[str, float],
    outputs: Sequence[int],
    inputs: Sequence[int],
) -> dict[str, Any] | None:
    """The figures behind the verdict, or None when there is too little to judge.

    `per_minute`: requests and tokens counted in the recent window; `outputs`/`inputs`: the
    token counts of the recent answered calls.
    """
    if not max_tokens or len(outputs) < _MIN_CALLS:
        return None
    rpm = per_minute.get("rpm", 0.0)
    longest = _percentile(outputs, 0.95)
    mean_input = sum(inputs) / len(inputs) if inputs else 0.0
    reserved = {"tpm": rpm * (mean_input + max_tokens), "otpm": rpm * max_tokens, "itpm": 0.0}
    kinds = [kind for kind in ("tpm", "otpm") if limits.get(kind)]
    reserved_percent = {kind: 100.0 * reserved[kind] / limits[kind] for kind in kinds}
    used_percent = {kind: 100.0 * per_minute.get(kind, 0.0) / limits[kind] for kind in kinds}
    limiting = [
        kind
        for kind in kinds
        if reserved_percent[kind] >= _RESERVED_BUSY
        and used_percent[kind] < _USED_IDLE
        and max_tokens >= _OVERSIZED * max(longest, 1)
    ]
    suggested = max(_ROUND_TO, math.ceil(max(outputs) * _HEADROOM / _ROUND_TO) * _ROUND_TO)
    return {
        "max_tokens": max_tokens,
        "output_p95": longest,
        "output_max": max(outputs),
        "suggested_max_tokens": min(suggested, max_tokens),
        "reserved_percent": reserved_percent,
        "used_percent": used_percent,
        "limiting": limiting,  # token limits the reservations, not the provider, hold back
    }
