"""The pydantic-ai Agent behind one agent() call, built and run the same on the driver or on a worker.

A resumed agent replays its tools' results from its saved session (`previous`) instead of running
the tools again; `write_file` always runs again (idempotent), so a workspace rebuilt from scratch
gets its files back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import Agent, capture_run_messages
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_ai.output import StructuredDict
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import UsageLimits

from ..engine import Stopped
from ._errors import WorkflowError
from ._failure import failure_line

__all__ = ["SessionFailed", "make_agent", "output_type", "previous_results", "run_session"]


class SessionFailed(Exception):
    """The agent failed for good (its retries are spent): `reason` is the one line users read;
    `cause` the exception, when it was raised in this process."""

    def __init__(self, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclass
class _ReplayingToolset(WrapperToolset[Any]):
    """Answers a tool call that a saved session already holds the result of (a resumed agent)."""

    previous: dict[str, tuple[str, Any]] = field(default_factory=dict)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        prior = self.previous.get(ctx.tool_call_id or "")
        if prior is not None and prior[0] == name and name != "write_file":
            return prior[1]
        return await super().call_tool(name, tool_args, ctx, tool)


def previous_results(saved: Any) -> dict[str, tuple[str, Any]]:
    """tool_call_id -> (tool name, result) from a saved session."""
    found: dict[str, tuple[str, Any]] = {}
    for message in saved if isinstance(saved, list) else []:
        if not isinstance(message, dict) or message.get("kind") != "request":
            continue
        for part in message.get("parts") or []:
            if isinstance(part, dict) and part.get("part_kind") == "tool-return":
                if part.get("outcome", "success") == "success" and part.get("tool_call_id"):
                    found[part["tool_call_id"]] = (part.get("tool_name", ""), part.get("content"))
    return found


def output_type(schema: Any) -> tuple[Any, Any]:
    """(pydantic-ai output type, JSON schema for the inputs hash)."""
    if schema is None:
        return str, None
    if isinstance(schema, dict):
        return StructuredDict(schema), schema
    try:
        return schema, TypeAdapter(schema).json_schema()
    except Exception as exc:  # pydantic raises several kinds for types it cannot describe
        raise WorkflowError(f"agent(schema=...): pydantic cannot validate {schema!r} ({exc})") from None


def make_agent(
    model: Model,
    *,
    schema: Any,
    system: str | None,
    tools: Sequence[Any],
    previous: dict[str, tuple[str, Any]],
    retries: int,
    max_tokens: int,
    name: str,
) -> Agent[None, Any]:
    toolsets: list[AbstractToolset[Any]] = []
    if tools:
        toolsets.append(_ReplayingToolset(FunctionToolset(list(tools)), previous=previous))
    return Agent(
        model,
        output_type=output_type(schema)[0],
        system_prompt=system or (),
        toolsets=toolsets,
        retries={"output": retries, "tools": retries},
        model_settings={"max_tokens": max_tokens},
        name=name,
    )


async def run_session(
    runner: Agent[None, Any], text: str, max_requests: int
) -> tuple[Any, list[ModelMessage]]:
    """The agent's output and whole conversation; SessionFailed with the reason when it fails."""
    captured: list[ModelMessage] = []
    try:
        with capture_run_messages() as captured:  # kept on failure: the answer goes in the reason
            result = await runner.run(text, usage_limits=UsageLimits(request_limit=max_requests))
    except (Stopped, WorkflowError):
        raise
    except Exception as exc:  # the agent failed for good: its retries are spent
        raise SessionFailed(failure_line(exc, captured), exc) from exc
    return result.output, result.all_messages()
