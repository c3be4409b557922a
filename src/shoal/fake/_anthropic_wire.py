"""Anthropic Messages: request parsing and response bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._tokens import estimate_tokens
from ._settings import FakeCall, FakeResult
from ._wire import ParsedRequest, WireError, output_tool, positive_int, require_str, text_of_blocks

__all__ = ["anthropic_body", "anthropic_error", "parse_anthropic"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def parse_anthropic(body: Any) -> ParsedRequest:
    if not isinstance(body, Mapping):
        raise WireError("the request body must be a JSON object")
    model = require_str(body, "model")
    if body.get("stream"):
        raise WireError("stream: streaming is not supported by the shoal fake server")
    max_tokens = positive_int(body.get("max_tokens"), "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages: a non-empty list is required")
    texts = text_of_blocks(body.get("system"))
    for message in messages:
        if not isinstance(message, Mapping):
            raise WireError("messages: every message must be an object")
        texts.extend(_message_texts(message.get("content")))
    schema = _output_schema(body)
    tool = _forced_tool(body.get("tools"), body.get("tool_choice"))
    if tool is not None:
        schema = tool[1]
    call = FakeCall(
        api="anthropic",
        model=model,
        prompt_text="\n".join(texts),
        prompt_tokens=estimate_tokens(*texts),
        max_tokens=max_tokens,
        schema=schema,
        last_message="\n".join(_message_texts(messages[-1].get("content"))),
    )
    return ParsedRequest(call, tool[0] if tool else None)


def _message_texts(content: Any) -> list[str]:
    texts = text_of_blocks(content)
    for block in content if isinstance(content, list) else []:
        if isinstance(block, Mapping) and block.get("type") == "tool_use":
            texts.append(json.dumps(block.get("input"), separators=(",", ":")))
    return texts


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Structured output: `output_config.format` now, top-level `output_format` in the first beta."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is None:
        fmt = body.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, Mapping) else {"type": "object"}
    return None


def _forced_tool(tools: Any, tool_choice: Any) -> tuple[str, Mapping[str, Any]] | None:
    """The tool to use, with its input schema: the one tool_choice forces ("tool", "any"), or when the
    model may choose ("auto"), pydantic-ai's output tool; None for a text answer."""
    schemas: dict[str, Mapping[str, Any]] = {}
    for tool in tools if isinstance(tools, list) else []:
        # Server tools (web search and the like) have no input_schema and cannot be faked.
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and "input_schema" in tool:
            schema = tool.get("input_schema")
            schemas[tool["name"]] = schema if isinstance(schema, Mapping) else {"type": "object"}
    if not schemas:
        return None
    kind = tool_choice.get("type") if isinstance(tool_choice, Mapping) else "auto"
    name: Any = None
    if kind == "auto":
        name = output_tool(schemas)
    elif kind == "any":
        name = next(iter(schemas))
    elif kind == "tool" and isinstance(tool_choice, Mapping):
        name = tool_choice.get("name")
    if not isinstance(name, str) or name not in schemas:
        return None
    return name, schemas[name]


def anthropic_body(parsed: ParsedRequest, result: FakeResult, *, response_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    stop_reason = _STOP_REASONS.get(result.finish_reason, "end_turn")
    if parsed.tool is not None and result.kind != "empty":
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{response_id}",
                "name": parsed.tool,
                "input": _as_input(result.text),
            }
        )
        stop_reason = "tool_use" if stop_reason == "end_turn" else stop_reason
    elif result.text:
        content.append({"type": "text", "text": result.text})
    return {
        "id": f"msg_{response_id}",
        "type": "message",
        "role": "assistant",
        "model": parsed.call.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def _as_input(text: str) -> dict[str, Any]:
    """A tool call's input must be an object; a cut-off or non-JSON answer leaves it empty."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}
