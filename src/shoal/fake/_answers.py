"""Deterministic fake answers: placeholder prose and schema-shaped JSON, derived from the prompt.

The same prompt always gets the same answer, so reruns and resumed jobs can be compared.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from typing import Any

from .._tokens import estimate_tokens
from ._schema import SchemaFaker

__all__ = ["chars_for_tokens", "cut_to_tokens", "json_answer", "prompt_digest", "prose", "prose_tokens"]

_WORDS = (
    "the batch runs every record through the same prompt and keeps each answer in order while the "
    "budget holds steady under load so a summary of this item notes its main point its context and a "
    "short detail about what changed why it matters and which parts need review before release"
).split()

# estimate_tokens adds this much framing to every text, whatever its length.
_FRAMING = estimate_tokens("")
_CHARS_PER_TOKEN = 3.5


def prompt_digest(prompt_text: str) -> bytes:
    return hashlib.sha256(prompt_text.encode("utf-8", "surrogatepass")).digest()


def _rng(digest: bytes) -> random.Random:
    return random.Random(int.from_bytes(digest[:8], "big"))


def prose_tokens(max_tokens: int, digest: bytes) -> int:
    """Length of an unscripted prose answer: 30-90 % of max_tokens, fixed per prompt."""
    share = 0.3 + 0.6 * (int.from_bytes(digest[8:16], "big") / 2**64)
    return max(1, round(max_tokens * share))


def chars_for_tokens(tokens: int) -> int:
    """How many characters estimate_tokens counts as `tokens` tokens."""
    return max(0, math.ceil((tokens - _FRAMING) * _CHARS_PER_TOKEN))


def prose(label: str, digest: bytes, tokens: int, *, finished: bool = True) -> str:
    """Placeholder prose of about `tokens` tokens (by estimate_tokens), starting with `label`.

    `finished=False` gives text cut mid-sentence, as a model stopped by its token limit leaves it.
    """
    length = chars_for_tokens(tokens)
    if length <= len(label):
        return label
    rng = _rng(digest)
    words = [label]
    size = len(label)
    while size < length + 1:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    text = " ".join(words)
    if not finished:
        return text[:length]
    return text[: length - 1].rstrip() + "."


def json_answer(schema: Mapping[str, Any], label: str, digest: bytes) -> str:
    """Compact JSON that validates against `schema`."""
    value = SchemaFaker(schema, label, _rng(digest)).value()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def cut_to_tokens(text: str, tokens: int) -> str:
    """The start of `text` that estimate_tokens counts as at most `tokens` tokens."""
    return text[: chars_for_tokens(tokens)]
