"""The direct OpenAI chat path for plain requests: what goes over the wire and what comes back."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from shoal.config import ShoalConfig
from shoal.errors import PermanentError, RateLimited
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import Message, ModelRequest, ProviderSet
from shoal.providers._openai_chat import OpenAIAdapter, OpenAIChat
from shoal.providers._pydantic_ai import PydanticAIProvider


def _recording(providers: ProviderSet) -> list[dict[str, Any]]:
    """Bodies of every request the openai adapter sends, by either path."""
    bodies: list[dict[str, Any]] = []

    async def keep(request: httpx2.Request) -> None:
        bodies.append(json.loads(request.content))

    adapter = providers.get("openai")
    assert isinstance(adapter, OpenAIAdapter)
    assert isinstance(adapter.hosted, PydanticAIProvider)  # what workflows' agents send through
    for client in (adapter.hosted._http, *adapter.direct._clients):
        client.event_hooks["request"].append(keep)
    return bodies


async def test_plain_request_is_sent_as_pydantic_ai_would_shape_it() -> None:
    limits = FakeLimits(rpm=900, tpm=90_000)
    with FakeServer(FakeSettings(limits=limits, latency_s=0.0)) as server:
        providers = ProviderSet(
            ShoalConfig(), {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.openai_base_url}
        )
        bodies = _recording(providers)
        request = ModelRequest("gpt-4o-mini", (Message("user", "Explain tides."),), 40, temperature=0.2)
        reply = await providers.get("openai").complete(request)
        await providers.aclose()
    assert bodies == [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Explain tides."}],
            "max_completion_tokens": 40,
            "stream": False,
            "temperature": 0.2,
        }
    ]
    assert reply.text.strip()
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.finish_reason == "stop"
    # Rate-limit headers are read off the response, as on the pydantic-ai path.
    assert (reply.rate.limit_requests, reply.rate.limit_tokens) == (900, 90_000)
    assert reply.rate.remaining_requests is not None and reply.rate.remaining_requests < 900


async def test_requests_that_need_more_than_text_still_go_through_pydantic_ai() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    system = Message("system", "Be brief.")
    assert not OpenAIChat.handles(ModelRequest("m", (Message("user", "x"),), 10, schema=schema))
    assert not OpenAIChat.handles(ModelRequest("m", (system, Message("user", "x")), 10))
    assert OpenAIChat.handles(ModelRequest("m", (Message("user", "x"), Message("assistant", "y")), 10))
    with FakeServer(FakeSettings(latency_s=0.0)) as server:
        providers = ProviderSet(
            ShoalConfig(), {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.openai_base_url}
        )
        bodies = _recording(providers)
        reply = await providers.get("openai").complete(
            ModelRequest("gpt-4o-mini", (Message("user", "Title this."),), 60, schema=schema)
        )
        await providers.aclose()
    assert "response_format" in bodies[0]  # pydantic-ai's native structured output
    assert "title" in json.loads(reply.text)


async def test_errors_are_translated_with_the_retry_hint() -> None:
    # A one-request bucket: the second request is refused with a 429 and a retry-after.
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=1, window_s=60.0), latency_s=0.0)) as server:
        providers = ProviderSet(
            ShoalConfig(), {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.openai_base_url}
        )
        request = ModelRequest("gpt-4o-mini", (Message("user", "hi"),), 20)
        await providers.get("openai").complete(request)
        with pytest.raises(RateLimited) as limited:
            await providers.get("openai").complete(request)
        with pytest.raises(PermanentError) as rejected:  # larger than the token bucket can ever hold
            await providers.get("openai").complete(ModelRequest("gpt-4o-mini", (Message("user", "hi"),), 0))
        await providers.aclose()
    assert limited.value.status == 429 and limited.value.retry_after is not None
    assert limited.value.retry_after > 0
    assert rejected.value.status == 400 and "HTTP 400" in str(rejected.value)


async def test_plain_requests_never_build_the_pydantic_ai_adapter() -> None:
    with FakeServer(FakeSettings(latency_s=0.0)) as server:
        providers = ProviderSet(
            ShoalConfig(), {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.openai_base_url}
        )
        adapter = providers.get("openai")
        assert isinstance(adapter, OpenAIAdapter)
        await adapter.complete(ModelRequest("gpt-4o-mini", (Message("user", "hi"),), 20))
        built = adapter._hosted is not None
        await providers.aclose()
    assert not built
