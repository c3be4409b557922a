"""Plain request and response types that every provider adapter speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .._types import RateSnapshot, Usage

if TYPE_CHECKING:  # the agent library's types, for annotations only: importing it costs ~0.5 s
    from pydantic_ai.messages import ModelMessage, ModelResponse
    from pydantic_ai.models import Model, ModelRequestParameters
    from pydantic_ai.settings import ModelSettings

__all__ = [
    "AgentTurn",
    "Message",
    "ModelReply",
    "ModelRequest",
    "Provider",
    "RateSnapshot",
    "ToolCall",
    "TurnProvider",
    "Usage",
]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    # Marks the end of a prefix shared by many requests; adapters that support prompt caching
    # (Anthropic) put a cache breakpoint here.
    cache: bool = False


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """An agent's request as the agent library (pydantic-ai) shapes it: the conversation with its
    tool calls and results, the settings, and the tool and output definitions."""

    messages: Sequence[ModelMessage]
    settings: ModelSettings | None
    parameters: ModelRequestParameters


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str  # the model's name at its provider, without the "provider:" prefix
    messages: tuple[Message, ...]
    max_tokens: int
    schema: Mapping[str, Any] | None = None  # JSON schema: ask for structured output
    temperature: float | None = None
    # An agent's turn, sent as it is by providers that speak it (`TurnProvider`); `messages` is
    # then empty and `max_tokens` the turn's answer budget.
    turn: AgentTurn | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function-tool call a plain provider asked for instead of text (the rehearsal provider's
    scripted calls); an agent runs it and sends the result on its next turn."""

    tool: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    usage: Usage
    finish_reason: str | None = None  # "stop", "length", ... as the provider said
    rate: RateSnapshot = field(default_factory=RateSnapshot)
    # An agent turn's answer as the agent library reads it (tool calls included), and the form
    # the journal keeps to replay it; None for plain calls, whose journal form is `text`.
    response: ModelResponse | None = None
    stored: str | None = None
    tool_call: ToolCall | None = None  # from a plain provider: call this tool, `text` is its args


class Provider(Protocol):
    """One provider's adapter: a single async method over plain types.

    Implementations raise shoal.errors.ModelCallError subclasses, never SDK exceptions.
    """

    name: str

    async def complete(self, request: ModelRequest) -> ModelReply: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TurnProvider(Protocol):
    """A provider whose `complete` also sends agent turns (`ModelRequest.turn`): the hosted ones.

    `agent_model` is the agent library's model for a name, whose profile and request preparation
    are the ones the turn is sent with.
    """

    name: str

    async def complete(self, request: ModelRequest) -> ModelReply: ...

    async def aclose(self) -> None: ...

    def agent_model(self, name: str) -> Model: ...
