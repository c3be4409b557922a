"""Adapters for hosted models, through pydantic-ai: OpenAI (and compatible servers) and Anthropic.

The SDK clients are built with max_retries=0 on an HTTP client shoal owns: retries belong to
the job, which knows about the shared rate budget. pydantic-ai's exceptions are translated
into shoal's ModelCallError family here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import httpx2
from pydantic_ai import exceptions as pai_errors
from pydantic_ai.direct import model_request
from pydantic_ai.messages import (
    CachePoint,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.messages import ModelRequest as PaiRequest
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from ..errors import ModelCallError, PermanentError, RateLimited, TransientError
from ._headers import parse_rate_headers
from ._http import capture_response
from ._types import AgentTurn, Message, ModelReply, ModelRequest, RateSnapshot, Usage

__all__ = ["PydanticAIProvider", "to_pydantic_messages"]

_OUTPUT_TOOL = "final_result"


def to_pydantic_messages(messages: tuple[Message, ...]) -> list[ModelMessage]:
    """Plain messages as pydantic-ai's history: consecutive system/user parts form one request."""
    history: list[ModelMessage] = []
    parts: list[SystemPromptPart | UserPromptPart] = []
    for message in messages:
        if message.role == "assistant":
            if parts:
                history.append(PaiRequest(parts=parts))
                parts = []
            history.append(ModelResponse(parts=[TextPart(content=message.content)]))
        elif message.role == "system":
            parts.append(SystemPromptPart(content=message.content))
        elif message.cache:
            parts.append(UserPromptPart(content=[message.content, CachePoint()]))
        else:
            parts.append(UserPromptPart(content=message.content))
    if parts:
        history.append(PaiRequest(parts=parts))
    return history


class PydanticAIProvider:
    """One provider (openai or anthropic) whose models are built by `build_model`."""

    def __init__(self, name: str, build_model: Callable[[str], Model], http: httpx2.AsyncClient) -> None:
        self.name = name
        self._build_model = build_model
        self._http = http
        self._models: dict[str, Model] = {}

    def agent_model(self, name: str) -> Model:
        """The pydantic-ai model for `name`, built once; agents wrap it (see workflows)."""
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self._build_model(name)
        return model

    def _parameters(self, model: Model, request: ModelRequest) -> ModelRequestParameters:
        if request.schema is None:
            return ModelRequestParameters()
        schema = dict(request.schema)
        if model.profile.get("supports_json_schema_output", False):
            return ModelRequestParameters(
                output_mode="native",
                output_object=OutputObjectDefinition(json_schema=schema, name="result"),
                allow_text_output=False,
            )
        # Providers without native structured output are asked to call a single output tool.
        return ModelRequestParameters(
            output_mode="tool",
            output_tools=[ToolDefinition(name=_OUTPUT_TOOL, parameters_json_schema=schema)],
            allow_text_output=False,
        )

    async def complete(self, request: ModelRequest) -> ModelReply:
        if request.turn is not None:
            return await self._complete_turn(request.model, request.turn)
        model = self.agent_model(request.model)
        settings: ModelSettings = {"max_tokens": request.max_tokens}
        if request.temperature is not None:
            settings["temperature"] = request.temperature
        if self.name == "anthropic" and any(m.cache and m.role == "system" for m in request.messages):
            # The shared brief is a system prompt: ask Anthropic to cache it (a cache_control breakpoint).
            settings = cast(ModelSettings, {**settings, "anthropic_cache_instructions": True})
        response, rate = await self._send(
            request.model,
            to_pydantic_messages(request.messages),
            settings,
            self._parameters(model, request),
        )
        return _reply(response, rate)

    async def _complete_turn(self, model_name: str, turn: AgentTurn) -> ModelReply:
        """An agent's turn sent as pydantic-ai shaped it; the reply carries the whole response."""
        response, rate = await self._send(model_name, list(turn.messages), turn.settings, turn.parameters)
        return _reply(response, rate, whole=True)

    async def _send(
        self,
        model_name: str,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        parameters: ModelRequestParameters,
    ) -> tuple[ModelResponse, RateSnapshot]:
        """One pydantic-ai request as pydantic-ai shapes it (tools included), errors translated."""
        model = self.agent_model(model_name)
        with capture_response() as captured:
            try:
                response = await model_request(
                    model, messages, model_settings=settings, model_request_parameters=parameters
                )
            except (pai_errors.ModelAPIError, pai_errors.UnexpectedModelBehavior) as exc:
                raise _translate(exc, model_name, parse_rate_headers(captured.headers)) from exc
            except (httpx2.TransportError, TimeoutError, OSError) as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}", model=model_name) from exc
        return response, parse_rate_headers(captured.headers)

    async def aclose(self) -> None:
        await self._http.aclose()


def _reply(response: ModelResponse, rate: RateSnapshot, *, whole: bool = False) -> ModelReply:
    """The reply for a pydantic-ai response; `whole` keeps the response itself and its journal form,
    which an agent turn needs to continue (plain calls keep only the text)."""
    return ModelReply(
        text=_answer_text(response),
        usage=Usage(
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cached_tokens=response.usage.cache_read_tokens,
        ),
        finish_reason=response.finish_reason,
        rate=rate,
        response=response if whole else None,
        stored=ModelMessagesTypeAdapter.dump_json([response]).decode() if whole else None,
    )


def _answer_text(response: ModelResponse) -> str:
    texts: list[str] = []
    for part in response.parts:
        if isinstance(part, TextPart):
            texts.append(part.content)
        elif isinstance(part, ToolCallPart) and part.tool_name == _OUTPUT_TOOL:
            return part.args_as_json_str()
    return "".join(texts)


def _translate(exc: Exception, model: str, rate: RateSnapshot) -> ModelCallError:
    status: int | None = getattr(exc, "status_code", None)
    message = _short(exc)
    if isinstance(exc, pai_errors.ModelRateLimitError) or status == 429:
        return RateLimited(message, model=model, status=429, retry_after=rate.retry_after_s)
    if isinstance(exc, pai_errors.ModelConnectionError | pai_errors.ModelRequestTimeout):
        return TransientError(message, model=model, status=status)
    if status is not None and (status >= 500 or status in (408, 409)):
        return TransientError(message, model=model, status=status, retry_after=rate.retry_after_s)
    if status is not None and 400 <= status < 500:
        return PermanentError(message, model=model, status=status)
    if isinstance(exc, pai_errors.UnexpectedModelBehavior):
        return TransientError(message, model=model)
    return TransientError(message, model=model, status=status)


def _short(exc: Exception) -> str:
    body: Any = getattr(exc, "body", None)
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
    return f"HTTP {status}: {text}" if status else text
