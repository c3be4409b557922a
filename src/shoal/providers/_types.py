"""Plain request and response types that every provider adapter speaks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .._types import RateSnapshot, Usage

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
