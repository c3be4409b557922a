"""Governed models: pydantic-ai `Model`s whose every request takes shoal's path.

An agent's request becomes an `Exchange` — journal replay by key, concurrency slot, cost
reservation, rate budget, send, answer check, journal record, accounting, retries — keyed by the
agent's step path, the request's index in its session, the conversation so far, the tool
definitions and the output settings. The journal stores the whole `ModelResponse` as JSON, so a
replayed request hands pydantic-ai exactly what the provider said the first time, and a resumed
agent continues mid-conversation.

Every agent request goes through the one provider seam, `Provider.complete`: to hosted providers
(a `TurnProvider`: OpenAI, Anthropic) as an `AgentTurn`, whose reply carries the typed
`ModelResponse`; any other provider — the keyless rehearsal one — gets the conversation as plain
text messages, with the requested output schema, and its answer comes back as the part pydantic-ai
expects (text, the output tool's arguments, or a function-tool call the provider scripted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    RetryFeedbackPart,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from .._states import CallOutcome
from .._tokens import estimate_tokens
from ..budget import Demand
from ..engine import Exchange
from ..errors import BadAnswer, PermanentError
from ..providers import AgentTurn, Message, ModelRef, ModelReply, Provider, ToolCall, TurnProvider
from ..providers import ModelRequest as PlainRequest
from ._runtime import Runtime

__all__ = [
    "Session",
    "build_model",
    "dump_messages",
    "dump_response",
    "load_response",
    "plain_messages",
    "request_key",
]

# Fields that differ between two runs of the same conversation; left out of the journal key.
_VOLATILE = frozenset({"timestamp", "run_id", "conversation_id"})


@dataclass(slots=True)
class Session:
    """One agent's conversation: where it sits, what it is counted for, how far it has got."""

    runtime: Runtime
    path: str
    phase: str
    ref: ModelRef
    max_tokens: int
    requests: int = 0
    sent: int = 0
    replayed: int = 0

    @property
    def session_id(self) -> str:
        return f"{self.runtime.job.name}#{self.path}"


def dump_messages(messages: Sequence[ModelMessage]) -> Any:
    return ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")


def dump_response(response: ModelResponse) -> str:
    return ModelMessagesTypeAdapter.dump_json([response]).decode()


def load_response(text: str) -> ModelResponse:
    message = ModelMessagesTypeAdapter.validate_json(text)[0]
    if not isinstance(message, ModelResponse):
        raise BadAnswer("journaled answer is not a model response", reason=CallOutcome.INVALID)
    return message


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _tool_json(tool: ToolDefinition) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters_json_schema}


def _output_json(params: ModelRequestParameters) -> dict[str, Any]:
    output = params.output_object
    return {
        "mode": params.output_mode,
        "object": None if output is None else {"name": output.name, "schema": output.json_schema},
        "tools": [_tool_json(t) for t in params.output_tools],
        "text": params.allow_text_output,
        "instructions": [p.content for p in params.instruction_parts or []],
    }


def request_key(
    workflow: str,
    path: str,
    index: int,
    ref: ModelRef,
    messages: Sequence[ModelMessage],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
    retry: int = 0,
) -> str:
    """Identity of one agent request: the same step, position and conversation hash the same.

    `retry`, the agent's retry generation (--retry-failed), is part of it when not 0."""
    payload = {
        "workflow": workflow,
        "path": path,
        "index": index,
        "model": ref.key,
        "messages": _canonical(dump_messages(messages)),
        "tools": [_tool_json(t) for t in params.function_tools],
        "output": _output_json(params),
        "settings": {k: (settings or {}).get(k) for k in ("max_tokens", "temperature")},
    }
    if retry:
        payload["retry"] = retry
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


# -- plain text view of a conversation -----------------------------------------------------


def _user_text(part: UserPromptPart) -> str:
    if isinstance(part.content, str):
        return part.content
    return "\n".join(item if isinstance(item, str) else "[non-text content]" for item in part.content)


def _request_texts(message: ModelRequest) -> list[Message]:
    out: list[Message] = []
    for part in message.parts:
        if isinstance(part, SystemPromptPart):
            out.append(Message("system", part.content))
        elif isinstance(part, UserPromptPart):
            out.append(Message("user", _user_text(part)))
        elif isinstance(part, ToolReturnPart):
            out.append(Message("user", f"Result of tool {part.tool_name}: {part.model_response_str()}"))
        elif isinstance(part, RetryPromptPart | RetryFeedbackPart):  # validation feedback
            out.append(Message("user", str(part.model_response())))
    return out


def _response_texts(message: ModelResponse) -> list[Message]:
    out: list[Message] = []
    for part in message.parts:
        if isinstance(part, TextPart) and part.content:
            out.append(Message("assistant", part.content))
        elif isinstance(part, ToolCallPart):
            out.append(Message("assistant", f"[called {part.tool_name} with {part.args_as_json_str()}]"))
    return out


def plain_messages(messages: Sequence[ModelMessage], params: ModelRequestParameters) -> tuple[Message, ...]:
    """The conversation as plain role/text messages (what the rehearsal provider reads)."""
    out = [Message("system", p.content) for p in params.instruction_parts or []]
    for message in messages:
        if isinstance(message, ModelRequest):
            if message.instructions and not params.instruction_parts:
                out.append(Message("system", message.instructions))
            out.extend(_request_texts(message))
        else:
            out.extend(_response_texts(message))
    return tuple(out)


# -- the governed path ---------------------------------------------------------------------


def _check(reply: ModelReply, model: str) -> BadAnswer | None:
    """An empty answer, or one cut off by the token limit, is a failure to retry, never a result."""
    response = reply.response
    if response is None:
        return BadAnswer("answer is not a model response", model=model, reason=CallOutcome.INVALID)
    if response.finish_reason == "length":
        return BadAnswer("answer cut off by the token limit", model=model, reason=CallOutcome.TRUNCATED)
    if not any(
        isinstance(part, ToolCallPart) or (isinstance(part, TextPart) and part.content.strip())
        for part in response.parts
    ):
        return BadAnswer("empty answer", model=model, reason=CallOutcome.EMPTY)
    return None


async def _governed(
    session: Session,
    messages: list[ModelMessage],
    settings: ModelSettings | None,
    params: ModelRequestParameters,
    send: Callable[[], Awaitable[ModelReply]],
) -> ModelResponse:
    runtime = session.runtime
    job = runtime.job
    index = session.requests
    session.requests += 1
    max_tokens = int((settings or {}).get("max_tokens") or session.max_tokens)
    retry = runtime.retries.get(session.path, 0)
    key = request_key(
        runtime.settings.name, session.path, index, session.ref, messages, settings, params, retry
    )
    texts = [m.content for m in plain_messages(messages, params)]
    tools_text = json.dumps([_tool_json(t) for t in params.function_tools])
    demand = Demand(estimate_tokens(*texts, tools_text), max_tokens)
    reserved = 0
    if job.journal.find_call(key) is None:
        # Before a new request: the conversation so far (tool results included) is on disk, so a
        # resumed agent replays its tools' results instead of running them again.
        await job.journal.save_session(session.session_id, job.name, session.path, dump_messages(messages))
        reserved = runtime.reserve_tokens(demand.input_tokens + demand.max_tokens)
    exchange = Exchange(
        scope=session.path,
        stage=session.phase,
        model=session.ref,
        key=key,
        demand=demand,
        send=send,
        check=lambda reply: _check(reply, session.ref.name),
    )
    try:
        result = await job.caller.exchange(exchange)
    finally:
        runtime.release_tokens(reserved)
    if result.replayed:
        session.replayed += 1
    else:
        session.sent += 1
    return result.response if result.response is not None else load_response(result.stored)


class HostedModel(WrapperModel):
    """A hosted model (OpenAI, Anthropic) under the job's governance."""

    def __init__(self, session: Session, provider: TurnProvider) -> None:
        # The provider builds and caches one pydantic-ai model per name; its profile and message
        # preparation are the ones the request will be sent with.
        super().__init__(provider.agent_model(session.ref.name))
        self._session = session
        self._backend = provider

    async def __aenter__(self) -> HostedModel:
        return self  # the job owns the HTTP client; an agent run must not close it

    async def __aexit__(self, *args: object) -> None:
        return None

    def _refresh_http_client(self) -> None:
        return None

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        settings, params = self.prepare_request(model_settings, model_request_parameters)
        name = self._session.ref.name
        caller = self._session.runtime.job.caller
        request = PlainRequest(
            model=name,
            messages=(),
            max_tokens=int((settings or {}).get("max_tokens") or self._session.max_tokens),
            turn=AgentTurn(messages, settings, params),
        )

        async def send() -> ModelReply:
            return await caller.with_timeout(self._backend.complete(request), name)

        return await _governed(self._session, messages, settings, params, send)


def _structured(params: ModelRequestParameters) -> tuple[dict[str, Any] | None, str | None]:
    """(JSON schema of the requested structured answer, output tool to answer through)."""
    if params.output_object is not None and params.output_mode in ("native", "prompted"):
        return dict(params.output_object.json_schema), None
    if params.output_tools and (params.output_mode == "tool" or not params.allow_text_output):
        tool = params.output_tools[0]
        return dict(tool.parameters_json_schema), tool.name
    return None, None


class PlainModel(Model):
    """A model behind a plain provider (the rehearsal one): text messages in, text or JSON out."""

    _announces_lookalike_notes = False

    def __init__(self, session: Session, provider: Provider) -> None:
        super().__init__(
            profile=ModelProfile(
                supports_json_schema_output=True,
                supports_json_object_output=True,
                default_structured_output_mode="native",
            )
        )
        self._session = session
        self._backend = provider

    @property
    def model_name(self) -> str:
        return self._session.ref.name

    @property
    def system(self) -> str:
        return self._session.ref.provider

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        settings, params = self.prepare_request(model_settings, model_request_parameters)
        session = self._session
        schema, output_tool = _structured(params)
        temperature = (settings or {}).get("temperature")
        request = PlainRequest(
            model=session.ref.name,
            messages=plain_messages(messages, params),
            max_tokens=int((settings or {}).get("max_tokens") or session.max_tokens),
            schema=schema,
            temperature=None if temperature is None else float(temperature),
        )
        caller = session.runtime.job.caller
        # Stable across reruns, unique in the session: a resumed agent finds its tools' results by it.
        call_id = f"rehearsal-{session.requests}"

        async def send() -> ModelReply:
            plain = await caller.with_timeout(self._backend.complete(request), request.model)
            part: ModelResponsePart
            if plain.tool_call is not None:
                part = _scripted_call(plain.tool_call, params, session.path, call_id, request.model)
            elif output_tool is None:
                part = TextPart(content=plain.text)
            else:
                part = ToolCallPart(tool_name=output_tool, args=plain.text)
            response = ModelResponse(
                parts=[part],
                usage=RequestUsage(
                    input_tokens=plain.usage.input_tokens, output_tokens=plain.usage.output_tokens
                ),
                model_name=request.model,
                finish_reason="length" if plain.finish_reason == "length" else "stop",
            )
            if not plain.text:
                response.parts = []
            return ModelReply(
                plain.text,
                plain.usage,
                plain.finish_reason,
                plain.rate,
                response=response,
                stored=dump_response(response),
            )

        return await _governed(session, messages, settings, params, send)


def _scripted_call(
    call: ToolCall, params: ModelRequestParameters, path: str, call_id: str, model: str
) -> ToolCallPart:
    """The provider's scripted tool call as the agent's; a tool the agent lacks fails the agent now
    (permanent: asking again gets the same script) instead of a round of pydantic-ai retries."""
    names = [t.name for t in (*params.function_tools, *params.output_tools)]
    if call.tool not in names:
        raise PermanentError(
            f"scripted reply calls tool {call.tool!r}, which agent {path} does not have "
            f"(its tools: {', '.join(names) or 'none'})",
            model=model,
        )
    return ToolCallPart(tool_name=call.tool, args=dict(call.args), tool_call_id=call_id)


def build_model(session: Session) -> Model:
    provider = session.runtime.job.providers.get(session.ref.provider)
    if isinstance(provider, TurnProvider):
        return HostedModel(session, provider)
    return PlainModel(session, provider)
