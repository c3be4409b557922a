"""The scripted replies file, read one way for `[rehearsal] replies` and `shoal fake-server --replies`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ._settings import FakeReply

__all__ = ["RepliesFileError", "read_replies"]


class _ScriptedReply(BaseModel):
    """One entry: `{"match": "...", "reply": "...", "times": N}`; strict, so 5 is not a string."""

    model_config = ConfigDict(extra="forbid", strict=True)

    match: str = Field(min_length=1)
    reply: str
    times: int | None = Field(default=None, ge=0)


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
    return tuple(FakeReply(match=e.match, reply=e.reply, times=e.times) for e in entries)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    if problem["type"] == "json_invalid":
        return f"not JSON ({problem['ctx'].get('error', problem['msg'])})"
    location = problem["loc"]
    if not location:
        return 'expected a JSON list of {"match", "reply", "times"?} objects'
    where = f"entry {int(location[0]) + 1}"
    if len(location) > 1:
        where += f': "{location[1]}"'
    return f"{where}: {problem['msg']}"
