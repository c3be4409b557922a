"""What both wire formats share: the parsed request and the errors a request body can have."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._settings import FakeCall

__all__ = [
    "ParsedRequest",
    "WireError",
    "output_tool",
    "positive_int",
    "require_str",
    "text_of_blocks",
]

# pydantic-ai's name for the tool that carries a structured answer.
_OUTPUT_TOOL_PREFIX = "final_result"


class WireError(ValueError):
    """The request body is not one the API accepts: answered with a 400."""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    call: FakeCall
    # Answer as a call of this tool (its input schema is call.schema) rather than as text.
    tool: str | None = None


def require_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"{key}: a non-empty string is required")
    return value


def positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WireError(f"{key}: a positive integer is required, got {value!r}")
    return value


def text_of_blocks(content: Any) -> list[str]:
    """The texts in a string or a list of content blocks; images and other media are skipped."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if not isinstance(content, list):
        return texts
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping):
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_result":
                texts.extend(text_of_blocks(block.get("content")))
    return texts


def output_tool(names: Iterable[str]) -> str | None:
    """The structured-output tool among `names`, which a model free to choose would call to answer."""
    return next((name for name in names if name.startswith(_OUTPUT_TOOL_PREFIX)), None)
