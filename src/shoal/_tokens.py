"""Token estimates made before a request is sent.

Providers count tokens with their own tokenizers; before sending we only need an estimate
that errs high, because the rate budget reserves it and settles with the real usage later.
"""

from __future__ import annotations

__all__ = ["estimate_tokens"]

# English prose averages about four characters per token; 3.5 errs on the high side.
_CHARS_PER_TOKEN = 3.5
# Every message carries a few tokens of framing (role, separators).
_MESSAGE_OVERHEAD = 4


def estimate_tokens(*texts: str) -> int:
    """Estimated token count of the given message texts, framing included."""
    total = 0
    for text in texts:
        total += int(len(text) / _CHARS_PER_TOKEN) + 1 + _MESSAGE_OVERHEAD
    return total
