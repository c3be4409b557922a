"""OpenAI Chat Completions: request parsing and response bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._tokens import estimate_tokens
from ._settings import FakeCall, FakeResult
from ._wire import ParsedRequest, WireError, output_tool, positive_int, require_str, text_of_blocks

__all__ = ["openai_body", "openai_error", "parse_openai"]

# Chat Completions' own default is the model's maximum; a fixed figure keeps reservations predictable.
_DEFAULT_MAX_TOKENS = 1024

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "overloaded"),
}


def parse_openai(body: Any) -> ParsedRequest:
    if not isinstance(body, Mapping):
        raise WireError("the request body must be a JSON object")
    model = require_str(body, "model")
    if body.get("stream"):
        raise WireError("stream: streaming is not supported by the shoal fake server")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages: a non-empty list is required")
    texts = [text for message in messages for text in _message_texts(message)]
    raw_max = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _DEFAULT_MAX_TOKENS if raw_max is None else positive_int(raw_max, "max_completion_tokens")
    schema = _response_schema(body.get("response_format"))
    tool = _forced_tool(body.get("tools"), body.get("tool_choice"))
    if tool is not None:
        schema = tool[1]
    call = FakeCall(
        api="openai",
        model=model,
        prompt_text="\n".join(texts),
        prompt_tokens=estimate_tokens(*texts),
        max_tokens=max_tokens,
        schema=schema,
        last_message="\n".join(_message_texts(messages[-1])),
    )
    return ParsedRequest(call, tool[0] if tool else None)


def _message_texts(message: Any) -> list[str]:
    if not isinstance(message, Mapping):
        raise WireError("messages: every message must be an object")
    texts = text_of_blocks(message.get("content"))
    for tool_call in message.get("tool_calls") or []:
        function = tool_call.get("function") if isinstance(tool_call, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    return texts


def _response_schema(response_format: Any) -> Mapping[str, Any] | None:
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return schema if isinstance(schema, Mapping) else {"type": "object"}
    if kind == "json_object":  # JSON mode names no schema: any object will do
        return {"type": "object"}
    return None


def _forced_tool(tools: Any, tool_choice: Any) -> tuple[str, Mapping[str, Any]] | None:
    """The function to call, with its parameters schema: the one tool_choice forces, or when the model
    may choose, pydantic-ai's output tool; None for a text answer."""
    functions: dict[str, Mapping[str, Any]] = {}
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            functions[function["name"]] = (
                parameters if isinstance(parameters, Mapping) else {"type": "object"}
            )
    if not functions:
        return None
    name: str | None = None
    if tool_choice in (None, "auto"):
        name = output_tool(functions)
    elif tool_choice == "required":
        name = next(iter(functions))
    elif isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
        name = _function_name(tool_choice)
    elif isinstance(tool_choice, Mapping) and tool_choice.get("type") == "allowed_tools":
        allowed = tool_choice.get("allowed_tools")
        if isinstance(allowed, Mapping) and allowed.get("mode") == "required":
            listed = [_function_name(t) for t in allowed.get("tools") or []]
            name = next((n for n in listed if n in functions), None)
    if name not in functions:
        return None
    assert name is not None
    return name, functions[name]


def _function_name(entry: Any) -> str | None:
    function = entry.get("function") if isinstance(entry, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    return name if isinstance(name, str) else None


def openai_body(
    parsed: ParsedRequest, result: FakeResult, *, response_id: str, created: int
) -> dict[str, Any]:
    call = parsed.call
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None}
    finish = result.finish_reason
    if parsed.tool is not None and result.kind != "empty":
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{response_id[-24:]}",
                "type": "function",
                "function": {"name": parsed.tool, "arguments": result.text},
            }
        ]
        finish = "tool_calls" if finish == "stop" else finish
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": created,
        "model": call.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(status, ("server_error", "error"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
