"""Provider adapters against the fake server: what goes over the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from shoal.config import ShoalConfig
from shoal.fake import FakeServer, FakeSettings
from shoal.providers import Message, ModelRequest, ProviderSet
from shoal.providers._pydantic_ai import PydanticAIProvider


async def test_shared_brief_is_marked_for_anthropic_prompt_caching() -> None:
    bodies: list[dict[str, Any]] = []

    async def keep(request: httpx2.Request) -> None:
        bodies.append(json.loads(request.content))

    with FakeServer(FakeSettings(latency_s=0.0)) as server:
        providers = ProviderSet(ShoalConfig(), {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": server.url})
        adapter = providers.get("anthropic")
        assert isinstance(adapter, PydanticAIProvider)
        adapter._http.event_hooks["request"].append(keep)
        brief = Message("system", "the format reference and the rules", cache=True)
        reply = await adapter.complete(
            ModelRequest("claude-haiku-4-5", (brief, Message("user", "task 7")), 40)
        )
        await providers.aclose()
    assert reply.text and reply.usage.output_tokens > 0
    assert reply.rate.limit_requests is None  # the server had no limits configured, so no headers
    system = bodies[0]["system"]
    assert system[-1]["text"] == "the format reference and the rules"
    assert system[-1]["cache_control"]["type"] == "ephemeral"


async def test_rate_limit_headers_reach_the_reply() -> None:
    from shoal.fake import FakeLimits

    with FakeServer(FakeSettings(limits=FakeLimits(rpm=900, tpm=90_000), latency_s=0.0)) as server:
        providers = ProviderSet(
            ShoalConfig(), {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.openai_base_url}
        )
        reply = await providers.get("openai").complete(
            ModelRequest("gpt-4o-mini", (Message("user", "hi"),), 20)
        )
        await providers.aclose()
    assert (reply.rate.limit_requests, reply.rate.limit_tokens) == (900, 90_000)
    assert reply.rate.remaining_requests is not None and reply.rate.remaining_requests < 900
