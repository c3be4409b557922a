"""The scripted replies file, read one way for `[rehearsal] replies` and `shoal fake-server --replies`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ._settings import FakeReply, FakeToolCall

__all__ = ["RepliesFileError", "read_replies"]


class _ScriptedCall(BaseModel):
    """`{"tool": "name", "args": {...}}`: the function tool the model asks for, and its arguments."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class _ScriptedReply(BaseModel):
    """One entry: `{"match": "...", "reply": "..." | "call": {...}, "times": N}`; strict, so 5 is
    not a string."""

    model_config = ConfigDict(extra="forbid", strict=True)

    match: str = Field(min_length=1)
    reply: str | None = None
    call: _ScriptedCall | None = None
    times: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _text_or_call(self) -> Self:
        if (self.reply is None) == (self.call is None):
            raise ValueError('needs exactly one of "reply" (text) and "call" (a tool call)')
        return self

    def fake_reply(self) -> FakeReply:
        call = None if self.call is None else FakeToolCall(self.call.tool, self.call.args)
        return FakeReply(match=self.match, reply=self.reply or "", times=self.times, call=call)


_SCRIPT = TypeAdapter(list[_ScriptedReply])


class RepliesFileError(ValueError):
    """A replies file that cannot be read or does not hold a list of scripted replies (one line)."""


def read_replies(path: Path) -> tuple[FakeReply, ...]:
    """The scripted replies in a JSON file, in order; RepliesFileError says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RepliesFileError(f"{path}: {error.strerror or error}") from None
    try:
        entries = _SCRIPT.validate_json(text)
    except ValidationError as error:
        raise RepliesFileError(f"{path}: {_first_problem(error)}") from None
    return tuple(entry.fake_reply() for entry in entries)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    if problem["type"] == "json_invalid":
        return f"not JSON ({problem['ctx'].get('error', problem['msg'])})"
    location = problem["loc"]
    if not location:
        return 'expected a JSON list of {"match", "reply" or "call", "times"?} objects'
    where = f"entry {int(location[0]) + 1}"
    if len(location) > 1:
        where += ': "' + ".".join(str(part) for part in location[1:]) + '"'
    message = problem["msg"].removeprefix("Value error, ")  # our own check words it whole
    return f"{where}: {message}"
