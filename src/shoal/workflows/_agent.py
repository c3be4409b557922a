"""agent(): one isolated pydantic-ai session under the job's governance.

The agent's path in the call tree is its name, or a hash of its inputs, under the current scope.
Every model request goes through a governed model (see _model.py) and is journaled by key; the
conversation is saved as an agent session before each new request, so a resumed agent replays
its finished requests and its tools' results, then continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import pydantic_core
from pydantic import TypeAdapter
from pydantic_ai import Agent, capture_run_messages
from pydantic_ai.messages import ModelMessage
from pydantic_ai.output import StructuredDict
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import UsageLimits

from ..cluster import place_tools
from ..engine import Stopped, is_call_specific
from ..errors import ModelCallError
from ..journal import ItemStatus
from ._errors import AgentFailed, WorkflowError
from ._failure import failure_line
from ._model import Session, build_model, dump_messages
from ._paths import current_scope, digest, slug
from ._runtime import Runtime, current_runtime
from ._tools import BUILTIN_TOOLS, builtin_tools
from ._workspace import current_shared

__all__ = ["agent", "render_reference"]

T = TypeVar("T")
ToolSpec = str | Callable[..., Any]
_SUMMARY_CHARS = 2000


@dataclass
class _ReplayingToolset(WrapperToolset[Any]):
    """Answers a tool call that a saved session already holds the result of (a resumed agent),
    instead of running the tool again; write_file always runs again (idempotent), so a workspace
    rebuilt from scratch gets its files back."""

    previous: dict[str, tuple[str, Any]] = field(default_factory=dict)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        prior = self.previous.get(ctx.tool_call_id or "")
        if prior is not None and prior[0] == name and name != "write_file":
            return prior[1]
        return await super().call_tool(name, tool_args, ctx, tool)


def _previous_results(saved: Any) -> dict[str, tuple[str, Any]]:
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


def render_reference(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return pydantic_core.to_json(value, indent=2).decode()
    except pydantic_core.PydanticSerializationError:
        return str(value)


def _compose(prompt: str, reference: Any) -> str:
    if reference is None:
        return prompt
    return f"{prompt}\n\n--- reference ---\n{render_reference(reference)}\n--- end of reference ---"


def _output(schema: Any) -> tuple[Any, Any]:
    """(pydantic-ai output type, JSON schema for the inputs hash)."""
    if schema is None:
        return str, None
    if isinstance(schema, dict):
        return StructuredDict(schema), schema
    try:
        return schema, TypeAdapter(schema).json_schema()
    except Exception as exc:  # pydantic raises several kinds for types it cannot describe
        raise WorkflowError(f"agent(schema=...): pydantic cannot validate {schema!r} ({exc})") from None


def _split_tools(tools: Sequence[ToolSpec]) -> tuple[list[str], list[Callable[..., Any]]]:
    names: list[str] = []
    functions: list[Callable[..., Any]] = []
    for tool in tools:
        if isinstance(tool, str):
            if tool not in BUILTIN_TOOLS:
                raise WorkflowError(f"unknown tool '{tool}': built-in tools are {', '.join(BUILTIN_TOOLS)}")
            names.append(tool)
        elif callable(tool):
            functions.append(tool)
        else:
            raise WorkflowError(f"agent(tools=...): {tool!r} is neither a tool name nor a function")
    return names, functions


def _summary(output: Any) -> str:
    text = render_reference(output)
    return text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS] + " [...]"


async def _workspace_for(runtime: Runtime, path: str) -> Path:
    shared = current_shared()
    if shared is not None:
        return await shared.path()
    return await runtime.sandboxes.get(path)


@overload
async def agent(
    prompt: str,
    *,
    model: str | None = None,
    schema: None = None,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    reference: Any = None,
    name: str | None = None,
    max_tokens: int | None = None,
    max_requests: int = 50,
) -> str: ...


@overload
async def agent(
    prompt: str,
    *,
    model: str | None = None,
    schema: type[T],
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    reference: Any = None,
    name: str | None = None,
    max_tokens: int | None = None,
    max_requests: int = 50,
) -> T: ...


@overload
async def agent(
    prompt: str,
    *,
    model: str | None = None,
    schema: Any,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    reference: Any = None,
    name: str | None = None,
    max_tokens: int | None = None,
    max_requests: int = 50,
) -> Any: ...


async def agent(
    prompt: str,
    *,
    model: str | None = None,
    schema: Any = None,
    system: str | None = None,
    tools: Sequence[ToolSpec] = (),
    reference: Any = None,
    name: str | None = None,
    max_tokens: int | None = None,
    max_requests: int = 50,
) -> Any:
    """Run one isolated agent session; its text, or with `schema` a validated instance.

    `model`: an alias or "provider:model" (default: the workflow's). `system`: its system prompt.
    `tools`: built-in tool names ("read_file", "list_files", "write_file", "run") and plain
    Python functions with type hints. `reference`: material the agent works against (text, or any
    value pydantic can dump), shown after the prompt. `name`: its label in the call tree
    (default: a hash of its inputs). `max_tokens`: answer budget per request (default: shoal.toml
    [job] max_tokens); `max_requests`: model requests this agent may make. An answer that does
    not validate against `schema` is sent back to the model, a bounded number of times.
    """
    runtime = current_runtime()
    scope = current_scope()
    ref = runtime.resolve_model(model)
    tool_names, functions = _split_tools(tools)
    output_type, schema_json = _output(schema)
    text = _compose(prompt, reference)
    inputs = {
        "prompt": text,
        "system": system,
        "schema": schema_json,
        "model": ref.key,
        "tools": [*tool_names, *(getattr(f, "__qualname__", repr(f)) for f in functions)],
    }
    label = slug(name, "agent") if name else f"agent-{digest(inputs)[:8]}"
    path = scope.child(label)
    runtime.admit(path, scope.phase)  # before it starts: past the cap it never does
    session = Session(runtime, path, scope.phase, ref, max_tokens or runtime.settings.max_tokens)
    async with runtime.agent_slots:
        runtime.agents.running += 1
        try:
            return await _run(session, text, output_type, system, tool_names, functions, max_requests)
        finally:
            runtime.agents.running -= 1


async def _run(
    session: Session,
    text: str,
    output_type: Any,
    system: str | None,
    tool_names: list[str],
    functions: list[Callable[..., Any]],
    max_requests: int,
) -> Any:
    runtime = session.runtime
    job = runtime.job
    path = session.path
    running = job.journal.item_write(job.name, path, ItemStatus.RUNNING, stage=session.phase)
    job.journal.write_nowait([running])
    toolsets: list[AbstractToolset[Any]] = []
    if tool_names or functions:
        listed: list[Any] = place_tools(job, functions)  # on Ray workers with the executor "ray"
        if tool_names:
            where = await _workspace_for(runtime, path)
            hidden = [p.api_key_env for p in job.config.providers.values() if p.api_key_env]
            allowed = runtime.settings.allowed_commands
            listed = [*builtin_tools(tool_names, where, allowed, hidden=hidden), *listed]
        previous = _previous_results(job.journal.load_session(session.session_id))
        toolsets.append(_ReplayingToolset(FunctionToolset(listed), previous=previous))
    retries = runtime.settings.output_retries
    runner: Agent[None, Any] = Agent(
        build_model(session),
        output_type=output_type,
        system_prompt=system or (),
        toolsets=toolsets,
        retries={"output": retries, "tools": retries},
        model_settings={"max_tokens": session.max_tokens},
        name=path.rsplit("/", 1)[-1],
    )
    captured: list[ModelMessage] = []
    try:
        with capture_run_messages() as captured:  # kept on failure: the answer goes in the reason
            result = await runner.run(text, usage_limits=UsageLimits(request_limit=max_requests))
    except Stopped:
        job.journal.write_nowait([job.journal.item_write(job.name, path, ItemStatus.PENDING)])
        raise
    except WorkflowError:
        raise
    except Exception as exc:  # the agent failed for good: its retries are spent
        reason = failure_line(exc, captured)
        if not isinstance(exc, ModelCallError):
            runtime.agent_streak.failure("agent", reason)
        elif is_call_specific(exc.outcome, exc.status):
            runtime.agent_streak.failure(exc.outcome, reason)
        runtime.failures[path] = reason
        runtime.agents.failed += 1
        await job.journal.set_item(job.name, path, ItemStatus.FAILED, error=reason, attempts=1)
        raise AgentFailed(path, reason) from exc
    await job.journal.save_session(session.session_id, job.name, path, dump_messages(result.all_messages()))
    job.journal.write_nowait(
        [job.journal.item_write(job.name, path, ItemStatus.DONE, output=_summary(result.output), attempts=1)]
    )
    runtime.agents.done += 1
    runtime.agent_streak.success()
    return result.output
