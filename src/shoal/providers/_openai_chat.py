"""Plain OpenAI chat completions straight over shoal's HTTP client, without pydantic-ai and the SDK.

A profile of `shoal map` over HTTP showed pydantic-ai and the OpenAI SDK spending most of the
process's time shaping, validating and re-validating a request that is one user message and a
response that is one string (docs/decisions.md). Requests that need more (structured output,
system prompts, cache breakpoints, tools) still go through pydantic-ai. The response goes
through the same HTTP client and hook as every other request, so rate-limit headers are read
in one place; errors are translated here into shoal's ModelCallError family, like the adapter's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import httpx2

from ..errors import ModelCallError, PermanentError, RateLimited, TransientError
from ._headers import parse_rate_headers
from ._http import capture_response
from ._types import ModelReply, ModelRequest, RateSnapshot, Usage

if TYPE_CHECKING:
    from pydantic_ai.models import Model

    from ._pydantic_ai import PydanticAIProvider

__all__ = ["OpenAIAdapter", "OpenAIChat"]

_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# As pydantic-ai maps OpenAI's finish reasons, so that checks read the same either way.
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}


class OpenAIChat:
    """`complete` for plain requests: user and assistant messages, text out."""

    def __init__(
        self,
        clients: Sequence[httpx2.AsyncClient],
        *,
        base_url: str | None,
        api_key: str,
    ) -> None:
        # Several small connection pools instead of one large one: httpcore probes every idle
        # connection of a pool each time a request starts or ends, so a pool's cost per request
        # grows with its size (the profile: a third of the process at concurrency 64).
        self._clients = tuple(clients)
        self._turn = itertools.cycle(range(len(self._clients)))
        self._url = (base_url or _DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    @staticmethod
    def handles(request: ModelRequest) -> bool:
        return (
            request.turn is None
            and request.schema is None
            and all(m.role in ("user", "assistant") and not m.cache for m in request.messages)
        )

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def complete(self, request: ModelRequest) -> ModelReply:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            # As pydantic-ai sends it through its OpenAIProvider, whose profiles all say
            # `openai_chat_supports_max_completion_tokens` (only DeepSeek, Azure and OpenRouter differ).
            "max_completion_tokens": request.max_tokens,
            "stream": False,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        with capture_response() as captured:
            try:
                response = await self._clients[next(self._turn)].post(
                    self._url, content=json.dumps(body, ensure_ascii=False).encode(), headers=self._headers
                )
                content = await response.aread()
            except (httpx2.TransportError, TimeoutError, OSError) as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}", model=request.model) from exc
        rate = parse_rate_headers(captured.headers)
        if response.status_code != 200:
            raise _error(response.status_code, content, request.model, rate)
        return _reply(content, request.model, rate)


class OpenAIAdapter:
    """The `openai` provider: plain requests go direct; anything else through pydantic-ai, which is
    imported and built on first need (importing it and the SDK costs about half a second and 40 MB
    that a map of plain prompts never needs)."""

    name = "openai"

    def __init__(self, direct: OpenAIChat, build_hosted: Callable[[], PydanticAIProvider]) -> None:
        self.direct = direct
        self._build_hosted = build_hosted
        self._hosted: PydanticAIProvider | None = None

    @property
    def hosted(self) -> PydanticAIProvider:
        """The pydantic-ai adapter, for requests of any shape (structured output, agent turns)."""
        if self._hosted is None:
            self._hosted = self._build_hosted()
        return self._hosted

    def agent_model(self, name: str) -> Model:
        return self.hosted.agent_model(name)

    async def complete(self, request: ModelRequest) -> ModelReply:
        if self.direct.handles(request):
            return await self.direct.complete(request)
        return await self.hosted.complete(request)

    async def aclose(self) -> None:
        await self.direct.aclose()
        if self._hosted is not None:
            await self._hosted.aclose()


def _reply(content: bytes, model: str, rate: RateSnapshot) -> ModelReply:
    try:
        data = json.loads(content)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason")
        return ModelReply(
            text=text if isinstance(text, str) else "",
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int(details.get("cached_tokens") or 0),
            ),
            finish_reason=_FINISH_REASONS.get(finish, finish) if isinstance(finish, str) else None,
            rate=rate,
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TransientError(f"unreadable response: {type(exc).__name__}: {exc}", model=model) from None


def _error(status: int, content: bytes, model: str, rate: RateSnapshot) -> ModelCallError:
    message = f"HTTP {status}: {_error_text(content)}"
    if status == 429:
        return RateLimited(message, model=model, status=429, retry_after=rate.retry_after_s)
    if status >= 500 or status in (408, 409):
        return TransientError(message, model=model, status=status, retry_after=rate.retry_after_s)
    if 400 <= status < 500:
        return PermanentError(message, model=model, status=status)
    return TransientError(message, model=model, status=status)


def _error_text(content: bytes) -> str:
    try:
        error = json.loads(content).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    except (ValueError, AttributeError):
        pass
    text = content.decode("utf-8", "replace").strip().splitlines()
    return text[0][:200] if text else "no body"
