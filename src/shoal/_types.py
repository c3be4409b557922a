"""Plain types on the ground floor: what providers measure and what the budget, the ledger and
pricing count. Providers fill them from the wire; nothing here imports another shoal module."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RateSnapshot", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # part of input_tokens read from the provider's prompt cache

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """What one response's rate-limit headers said. None means the header was absent."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    limit_input_tokens: int | None = None
    remaining_input_tokens: int | None = None
    limit_output_tokens: int | None = None
    remaining_output_tokens: int | None = None
    retry_after_s: float | None = None
    reset_input_tokens_s: float | None = None
    reset_output_tokens_s: float | None = None
    # Resets given as timestamps (Anthropic): whole seconds, and the provider's clock is not ours.
    reset_from_timestamp: bool | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)
