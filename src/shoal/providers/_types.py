"""Plain request and response types that every provider adapter speaks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Message", "ModelReply", "ModelRequest", "Provider", "RateSnapshot", "Usage"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    # Marks the end of a prefix shared by many requests; adapters that support prompt caching
    # (Anthropic) put a cache breakpoint here.
    cache: bool = False


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str  # the model's name at its provider, without the "provider:" prefix
    messages: tuple[Message, ...]
    max_tokens: int
    schema: Mapping[str, Any] | None = None  # JSON schema: ask for structured output
    temperature: float | None = None


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


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    usage: Usage
    finish_reason: str | None = None  # "stop", "length", ... as the provider said
    rate: RateSnapshot = field(default_factory=RateSnapshot)


class Provider(Protocol):
    """One provider's adapter: a single async method over plain types.

    Implementations raise shoal.errors.ModelCallError subclasses, never SDK exceptions.
    """

    name: str

    async def complete(self, request: ModelRequest) -> ModelReply: ...

    async def aclose(self) -> None: ...
