"""The built-in `rehearsal` provider: a whole job end to end with no key and no network.

It runs the fake server's backend in-process (rate limits, latency, faults, schema-shaped JSON),
so a rehearsal exercises the same budget, journal and retry paths as a hosted model. Every
generated answer is labelled "[rehearsal]"; a scripted reply may instead ask an agent to call one
of its tools (`ModelReply.tool_call`).
"""

from __future__ import annotations

from collections.abc import Callable

from .._tokens import estimate_tokens
from ..errors import BadAnswer, PermanentError, RateLimited, TransientError
from ..fake import FakeBackend, FakeCall, FakeSettings
from ._headers import parse_rate_headers
from ._types import ModelReply, ModelRequest, ToolCall, Usage

__all__ = ["RehearsalProvider"]


class RehearsalProvider:
    name = "rehearsal"

    def __init__(self, settings_for: Callable[[str], FakeSettings]) -> None:
        self._settings_for = settings_for
        self._backends: dict[str, FakeBackend] = {}

    def backend(self, model: str) -> FakeBackend:
        backend = self._backends.get(model)
        if backend is None:
            backend = self._backends[model] = FakeBackend(self._settings_for(model))
        return backend

    async def complete(self, request: ModelRequest) -> ModelReply:
        texts = [m.content for m in request.messages]
        call = FakeCall(
            api="openai",
            model=request.model,
            prompt_text="\n".join(texts),
            prompt_tokens=estimate_tokens(*texts),
            max_tokens=request.max_tokens,
            schema=request.schema,
            last_message=texts[-1] if texts else "",
        )
        result = await self.backend(request.model).handle(call)
        rate = parse_rate_headers(result.headers)
        if result.kind == "rate_limited":
            raise RateLimited(
                "HTTP 429: rate limit", model=request.model, status=429, retry_after=rate.retry_after_s
            )
        if result.kind == "drop":
            raise TransientError("connection dropped", model=request.model)
        if result.kind == "hang":
            raise TransientError("no answer (hung)", model=request.model)
        if result.status >= 500:
            raise TransientError(
                f"HTTP {result.status}: {result.text}", model=request.model, status=result.status
            )
        if result.status >= 400:
            raise PermanentError(
                f"HTTP {result.status}: {result.text}", model=request.model, status=result.status
            )
        if result.kind not in ("ok", "empty", "truncated"):
            raise BadAnswer(f"unexpected answer kind {result.kind}", model=request.model)
        scripted = result.tool_call
        return ModelReply(
            text=result.text,
            usage=Usage(result.input_tokens, result.output_tokens),
            finish_reason=result.finish_reason,
            rate=rate,
            tool_call=None if scripted is None else ToolCall(scripted.tool, scripted.args),
        )

    async def aclose(self) -> None:
        return None
