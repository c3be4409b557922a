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


async def test_an_agent_turn_takes_the_same_seam_and_comes_back_typed() -> None:
    """Agents send through `Provider.complete` like single calls; the reply carries the typed
    response (tool calls included) and the form the journal replays, not JSON in `text`."""
    from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, UserPromptPart
    from pydantic_ai.messages import ModelRequest as PaiRequest
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from shoal.providers import AgentTurn, TurnProvider
    from shoal.providers._http import make_http_client
    from shoal.providers._openai_chat import OpenAIAdapter, OpenAIChat
    from shoal.workflows._model import load_response

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(tool_name="read_file", args={"path": "a.md"})])

    hosted = PydanticAIProvider(
        "openai", lambda name: FunctionModel(answer, model_name=name), make_http_client(5.0)
    )
    direct = OpenAIChat([make_http_client(5.0)], base_url="http://127.0.0.1:9", api_key="k")
    adapter = OpenAIAdapter(direct, lambda: hosted)
    turn = AgentTurn(
        [PaiRequest(parts=[UserPromptPart(content="read a.md")])], None, ModelRequestParameters()
    )
    request = ModelRequest("scripted", (), 100, turn=turn)
    assert isinstance(adapter, TurnProvider) and isinstance(hosted, TurnProvider)
    assert not direct.handles(request)  # a turn never takes the plain HTTP path (nothing listens there)
    reply = await adapter.complete(request)
    await adapter.aclose()
    assert reply.response is not None
    assert [type(p) for p in reply.response.parts] == [ToolCallPart]
    assert reply.stored is not None and load_response(reply.stored).parts[0].tool_name == "read_file"
    assert reply.text == ""  # no answer text: the agent asked for a tool


def test_the_rehearsal_provider_is_not_a_turn_provider() -> None:
    from shoal.providers import TurnProvider

    providers = ProviderSet(ShoalConfig(), {})
    assert not isinstance(providers.get("rehearsal"), TurnProvider)
