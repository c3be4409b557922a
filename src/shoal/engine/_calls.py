"""What one model call is, for the caller and everything that asks it for calls: the request and
its journal identity (`CallSpec`, `call_key`), any-shape requests (`Exchange`), the result, the retry
policy and the live counters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..budget import Demand
from ..errors import BadAnswer
from ..providers import ModelRef, ModelReply, ModelRequest, Provider, Usage

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse

__all__ = [
    "CallResult",
    "CallSpec",
    "CallStats",
    "Exchange",
    "ProviderSource",
    "RetryPolicy",
    "call_key",
]


class ProviderSource(Protocol):
    def get(self, provider: str) -> Provider: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5  # per call, for its own failures: bad answers, errors while others succeed
    max_rate_limited: int = 30  # 429s one call may meet before it fails
    max_provider_failures: int = 30  # failures judged the provider's (not the call's) before it fails
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    request_timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class CallSpec:
    scope: str  # the item or step this call belongs to; part of its journal key
    stage: str
    model: ModelRef
    request: ModelRequest
    retry: int = 0  # the item's retry generation (--retry-failed); part of the key when not 0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request of any shape: what identifies it, what it is counted for, how to send and check it.

    `ModelCaller.call` builds one from a CallSpec; agents build their own, whose `send` passes an
    `AgentTurn` to the same `Provider.complete` and gets the typed response back in the reply.
    """

    scope: str
    stage: str
    model: ModelRef
    key: str
    demand: Demand
    send: Callable[[], Awaitable[ModelReply]]
    check: Callable[[ModelReply], BadAnswer | None]


@dataclass(frozen=True, slots=True)
class CallResult:
    key: str
    text: str
    usage: Usage
    cost_usd: float
    replayed: bool
    attempts: int
    # What the journal keeps for this call (the reply's `stored` form, else its text), and the
    # typed response of an agent turn sent in this run (None when replayed: read `stored`).
    stored: str = ""
    response: ModelResponse | None = None


@dataclass(slots=True)
class CallStats:
    """Live counters for views and reports."""

    sent: int = 0
    replayed: int = 0
    in_flight: int = 0
    waiting: int = 0
    retries: int = 0
    rate_limited: int = 0
    failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def call_key(spec: CallSpec) -> str:
    """Identity of a call: the same scope, model, messages, schema and parameters hash the same."""
    request = spec.request
    payload = {
        "scope": spec.scope,
        "model": spec.model.key,
        "messages": [[m.role, m.content, m.cache] for m in request.messages],
        "schema": request.schema,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if spec.retry:
        payload["retry"] = spec.retry
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()
