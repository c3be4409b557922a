"""Why an agent failed, as one plain line a user can act on.

pydantic-ai's messages name its internals ("Exceeded maximum output retries (2)", a hint URL, a
response body); the user needs what went wrong in their terms and what the model actually said.
The line names the cause, the last validation problem when there was one, and an excerpt of the
model's last answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic_ai.exceptions import (
    OutputTokenLimitExceeded,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart

from ..errors import ShoalError

__all__ = ["failure_line"]

_EXCERPT = 160  # characters of the model's answer quoted
_RETRIES = re.compile(r"Exceeded maximum (?:output )?retries \((\d+)\)")
_REQUEST_LIMIT = re.compile(r"request_limit of (\d+)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cut(text: str, limit: int = _EXCERPT) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _last_answer(messages: Sequence[ModelMessage]) -> str | None:
    """The model's last answer: its text, else the arguments of its last tool call."""
    for message in reversed(messages):
        if not isinstance(message, ModelResponse):
            continue
        texts = [p.content for p in message.parts if isinstance(p, TextPart) and p.content.strip()]
        if texts:
            return "".join(texts)
        calls = [part for part in message.parts if isinstance(part, ToolCallPart)]
        if calls:
            return calls[-1].args_as_json_str()
    return None


def _last_problem(messages: Sequence[ModelMessage]) -> str | None:
    """The last validation problem pydantic-ai sent back to the model, as "field: message"."""
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            continue
        for part in reversed(message.parts):
            if "Retry" not in type(part).__name__ and getattr(part, "outcome", None) != "retried":
                continue
            content: Any = getattr(part, "content", None)
            if isinstance(content, list) and content and isinstance(content[0], dict):
                error = content[0]
                where = ".".join(str(x) for x in error.get("loc") or ())
                return _cut(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")), 120)
            if isinstance(content, str) and content.strip():
                return _cut(content, 120)
    return None


def _cause(exc: BaseException) -> str:
    if isinstance(exc, UsageLimitExceeded):
        found = _REQUEST_LIMIT.search(str(exc))
        limit = f" ({found.group(1)})" if found else ""
        return f"it used up its model requests{limit} without a final answer (raise max_requests)"
    if isinstance(exc, OutputTokenLimitExceeded):
        return "its answer was cut off at max_tokens"
    if isinstance(exc, UnexpectedModelBehavior):
        found = _RETRIES.search(exc.message)
        if found:
            tries = int(found.group(1)) + 1
            return f"the model's answer did not fit the expected output in {tries} tries"
        return _cut(exc.message, 200)
    if isinstance(exc, ShoalError):
        return _cut(str(exc), 200)
    return _cut(f"{type(exc).__name__}: {exc}", 200)


def failure_line(exc: BaseException, messages: Sequence[ModelMessage]) -> str:
    """One line: the cause, the last problem shown to the model, an excerpt of its last answer."""
    line = _cause(exc)
    problem = _last_problem(messages)
    if problem and isinstance(exc, UnexpectedModelBehavior):
        line += f" (last problem: {problem})"
    answer = _last_answer(messages)
    if answer:
        line += f'; it answered: "{_cut(answer)}"'
    return line
