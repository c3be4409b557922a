"""Plain records that configure the fake backend and describe one call through it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ._batch_settings import FakeBatchSettings

__all__ = [
    "ALL_KINDS",
    "FakeCall",
    "FakeLimits",
    "FakeReply",
    "FakeResult",
    "FakeSettings",
    "FakeToolCall",
    "FaultRates",
    "ResultKind",
]

# Fault names as FaultRates spells them, in the order a draw walks them.
ALL_KINDS: tuple[str, ...] = ("error_500", "error_503", "drop", "hang", "empty", "truncated")
# The CLI's short spellings ("500,503,drop") for the same kinds.
_KIND_ALIASES = {"500": "error_500", "503": "error_503"}

ResultKind = Literal["ok", "rate_limited", "error", "drop", "hang", "empty", "truncated"]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class FakeLimits:
    """Per-minute limits, enforced over a short window like hosted providers do.

    Each limit is a bucket holding `limit * window_s / 60` (at least 1), refilled continuously at
    `limit / 60` per second and full at the start. A request whose prompt + max_tokens exceeds the
    token bucket can never be admitted and is refused with a 400 rather than a 429.

    `refund_unused`: whether the unused part of max_tokens goes back into the token bucket when an
    answer ends. Off by default, as OpenAI behaves: the reservation counted on arrival stands.
    """

    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 2.0
    refund_unused: bool = False

    def __post_init__(self) -> None:
        _check(self.rpm is None or self.rpm > 0, f"rpm must be positive, got {self.rpm}")
        _check(self.tpm is None or self.tpm > 0, f"tpm must be positive, got {self.tpm}")
        _check(
            math.isfinite(self.window_s) and self.window_s > 0,
            f"window_s must be positive, got {self.window_s}",
        )


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each injected fault per admitted request."""

    error_500: float = 0.0
    error_503: float = 0.0
    drop: float = 0.0
    hang: float = 0.0
    empty: float = 0.0
    truncated: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            _check(0.0 <= value <= 1.0, f"fault rate {item.name} must be within [0, 1], got {value}")
        _check(self.total <= 1.0 + 1e-9, f"fault rates add up to {self.total}, more than 1")

    @property
    def total(self) -> float:
        return float(sum(getattr(self, name) for name in ALL_KINDS))

    @classmethod
    def spread(cls, rate: float, kinds: Iterable[str] = ALL_KINDS) -> FaultRates:
        """`rate` in total, split evenly over `kinds` ("500" and "503" are accepted for the errors)."""
        names: list[str] = []
        for kind in kinds:
            name = _KIND_ALIASES.get(kind.strip(), kind.strip())
            _check(
                name in ALL_KINDS, f"unknown fault kind {kind!r}; known: 500, 503, {', '.join(ALL_KINDS[2:])}"
            )
            if name not in names:
                names.append(name)
        _check(0.0 <= rate <= 1.0, f"fault rate must be within [0, 1], got {rate}")
        if not names:
            _check(rate == 0.0, "a fault rate needs at least one fault kind")
            return cls()
        share = rate / len(names)
        return cls(**dict.fromkeys(names, share))


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A scripted function-tool call: the model asks for `tool` with `args` instead of answering."""

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(bool(self.tool), "a scripted tool call needs a tool name")


@dataclass(frozen=True, slots=True)
class FakeReply:
    """A scripted answer: used when `match` occurs in the conversation's last message.

    Matching the last message (not the whole history) lets a script answer each turn of a
    multi-turn session on its own, whatever the earlier turns said. With `call`, the answer is
    that tool call instead of the text `reply`.
    """

    match: str
    reply: str = ""
    times: int | None = None  # None: always
    call: FakeToolCall | None = None

    def __post_init__(self) -> None:
        _check(bool(self.match), "a scripted reply needs a non-empty match")
        _check(self.times is None or self.times >= 0, f"times must not be negative, got {self.times}")
        _check(self.call is None or not self.reply, "a scripted reply is either text or a tool call")


@dataclass(frozen=True, slots=True)
class FakeSettings:
    limits: FakeLimits = FakeLimits()
    faults: FaultRates = FaultRates()
    latency_s: float = 0.05
    per_token_s: float = 0.0
    jitter: float = 0.2
    hang_s: float = 600.0
    seed: int = 0
    replies: tuple[FakeReply, ...] = ()
    label: str = "[rehearsal]"
    # False: send no rate-limit headers at all (vLLM, Ollama, llama.cpp, most gateways); a 429
    # still carries retry-after.
    rate_headers: bool = True
    # Capacity: past this many requests in flight, latency grows in proportion (a saturated server).
    capacity: int | None = None
    # Outage: from this many seconds after the first request, for outage_for_s, every request gets
    # a 503 ("503") or a connection dropped before any answer ("drop").
    outage_after_s: float | None = None
    outage_for_s: float = 0.0
    outage_mode: Literal["503", "drop"] = "503"
    batch: FakeBatchSettings = FakeBatchSettings()

    def __post_init__(self) -> None:
        _check(self.latency_s >= 0, f"latency_s must not be negative, got {self.latency_s}")
        _check(self.per_token_s >= 0, f"per_token_s must not be negative, got {self.per_token_s}")
        _check(0.0 <= self.jitter <= 1.0, f"jitter must be within [0, 1], got {self.jitter}")
        _check(self.hang_s >= 0, f"hang_s must not be negative, got {self.hang_s}")
        _check(self.capacity is None or self.capacity > 0, f"capacity must be positive, got {self.capacity}")
        _check(
            self.outage_after_s is None or self.outage_after_s >= 0,
            f"outage_after_s must not be negative, got {self.outage_after_s}",
        )
        _check(self.outage_for_s >= 0, f"outage_for_s must not be negative, got {self.outage_for_s}")
        _check(
            self.outage_mode in ("503", "drop"), f"outage_mode must be 503 or drop, got {self.outage_mode}"
        )


@dataclass(frozen=True, slots=True)
class FakeCall:
    api: Literal["openai", "anthropic"]
    model: str
    prompt_text: str  # all message texts joined with "\n"
    prompt_tokens: int  # estimate_tokens over the message texts
    max_tokens: int
    schema: Mapping[str, Any] | None = None  # JSON schema of a requested structured answer
    last_message: str = ""  # the conversation's last message; "" means the whole prompt text


@dataclass(frozen=True, slots=True)
class FakeResult:
    kind: ResultKind
    status: int  # drop and hang: the status that would have been sent
    text: str  # the answer, or the error message
    finish_reason: str  # "stop" or "length"
    input_tokens: int
    output_tokens: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case rate-limit headers
    tool_call: FakeToolCall | None = None  # a scripted tool call; `text` is then its args as JSON
