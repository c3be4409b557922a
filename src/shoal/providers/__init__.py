"""Providers: one adapter per provider, each a single async method over plain types."""

from ._headers import parse_duration, parse_rate_headers
from ._refs import KNOWN_PROVIDERS, ModelRef, by_model_key, resolve_model
from ._registry import ProviderSet, RehearsalDefaults, load_replies
from ._rehearsal import RehearsalProvider
from ._types import (
    AgentTurn,
    Message,
    ModelReply,
    ModelRequest,
    Provider,
    RateSnapshot,
    ToolCall,
    TurnProvider,
    Usage,
)

__all__ = [
    "AgentTurn",
    "KNOWN_PROVIDERS",
    "Message",
    "ModelRef",
    "ModelReply",
    "ModelRequest",
    "Provider",
    "ProviderSet",
    "RateSnapshot",
    "RehearsalDefaults",
    "RehearsalProvider",
    "ToolCall",
    "TurnProvider",
    "Usage",
    "by_model_key",
    "load_replies",
    "parse_duration",
    "parse_rate_headers",
    "resolve_model",
]
