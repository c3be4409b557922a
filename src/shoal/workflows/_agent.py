"""agent(): one isolated pydantic-ai session under the job's governance.

The agent's path in the call tree is its name, or a hash of its inputs, under the current scope.
Every model request goes through a governed model (see _model.py) and is journaled by key; the
conversation is saved as an agent session before each new request, so a resumed agent replays
its finished requests and its tools' results, then continues where it stopped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import pydantic_core
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model

from ..cluster import LoopPlacer, WorkerLost, loop_placer, place_tools
from ..engine import Stopped, is_call_specific
from ..errors import InputError, ModelCallError
from ..journal import ItemStatus
from ..preflight import check_max_tokens
from ._errors import AgentFailed, WorkflowError
from ._failure import failure_line
from ._model import Session, build_model, dump_messages, dump_response
from ._paths import current_scope, digest, slug
from ._remote import RemoteAgent, RemoteOutcome, Turn, remote_agent, turn_messages
from ._runner import SessionFailed, make_agent, output_type, previous_results, run_session
from ._runtime import Runtime, current_runtime
from ._tools import BUILTIN_TOOLS, builtin_tools
from ._workspace import current_shared

__all__ = ["agent", "render_reference"]

T = TypeVar("T")
ToolSpec = str | Callable[..., Any]
_SUMMARY_CHARS = 2000
_DISPATCHES = 3  # workers an agent may lose before it fails


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
    if max_tokens is not None:
        try:
            check_max_tokens(ref, max_tokens, source="agent(max_tokens=...)")
        except InputError as exc:
            raise WorkflowError(str(exc)) from None
    tool_names, functions = _split_tools(tools)
    schema_json = output_type(schema)[1]
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
            return await _run(session, text, schema, system, tool_names, functions, max_requests)
        finally:
            runtime.agents.running -= 1


async def _run(
    session: Session,
    text: str,
    schema: Any,
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
    placer = loop_placer(job)
    try:
        if placer is not None and not tool_names:  # workspace tools need the driver's disk
            output, messages = await _on_a_worker(
                placer, session, text, schema, system, functions, max_requests
            )
        else:
            output, messages = await _here(session, text, schema, system, tool_names, functions, max_requests)
    except Stopped:
        job.journal.write_nowait([job.journal.item_write(job.name, path, ItemStatus.PENDING)])
        raise
    except SessionFailed as failed:
        reason, cause = failed.reason, failed.cause
        if not isinstance(cause, ModelCallError):
            runtime.agent_streak.failure("agent", reason)
        elif is_call_specific(cause.outcome, cause.status):
            runtime.agent_streak.failure(cause.outcome, reason)
        runtime.failures[path] = reason
        runtime.agents.failed += 1
        await job.journal.set_item(job.name, path, ItemStatus.FAILED, error=reason, attempts=1)
        raise AgentFailed(path, reason) from cause
    await job.journal.save_session(session.session_id, job.name, path, messages)
    job.journal.write_nowait(
        [job.journal.item_write(job.name, path, ItemStatus.DONE, output=_summary(output), attempts=1)]
    )
    runtime.agents.done += 1
    runtime.agent_streak.success()
    return output


async def _here(
    session: Session,
    text: str,
    schema: Any,
    system: str | None,
    tool_names: list[str],
    functions: list[Callable[..., Any]],
    max_requests: int,
) -> tuple[Any, Any]:
    """The agent's loop on the driver (typed tools on Ray workers with the executor "ray")."""
    runtime = session.runtime
    job = runtime.job
    listed: list[Any] = place_tools(job, functions)
    if tool_names:
        where = await _workspace_for(runtime, session.path)
        hidden = [p.api_key_env for p in job.config.providers.values() if p.api_key_env]
        allowed = runtime.settings.allowed_commands
        listed = [*builtin_tools(tool_names, where, allowed, hidden=hidden), *listed]
    previous = previous_results(job.journal.load_session(session.session_id)) if listed else {}
    runner = make_agent(
        build_model(session),
        schema=schema,
        system=system,
        tools=listed,
        previous=previous,
        retries=runtime.settings.output_retries,
        max_tokens=session.max_tokens,
        name=session.path.rsplit("/", 1)[-1],
    )
    output, messages = await run_session(runner, text, max_requests)
    return output, dump_messages(messages)


async def _on_a_worker(
    placer: LoopPlacer,
    session: Session,
    text: str,
    schema: Any,
    system: str | None,
    functions: list[Callable[..., Any]],
    max_requests: int,
) -> tuple[Any, Any]:
    """The agent's whole loop on a cluster worker; the driver answers its model requests. A worker
    lost mid-agent: the agent is dispatched again from its saved session, so its finished requests
    replay from the journal and its tools' results from the session."""
    runtime = session.runtime
    job = runtime.job
    for value in (*functions, schema):
        placer.ship_by_value(value)
    for dispatch in range(1, _DISPATCHES + 1):
        fresh = Session(runtime, session.path, session.phase, session.ref, session.max_tokens)
        model = build_model(fresh)
        spec = RemoteAgent(
            text=text,
            system=system,
            schema=schema,
            functions=functions,
            previous=previous_results(job.journal.load_session(session.session_id)),
            retries=runtime.settings.output_retries,
            max_tokens=session.max_tokens,
            max_requests=max_requests,
            name=session.path.rsplit("/", 1)[-1],
            profile=model.profile,
            model_name=session.ref.name,
            provider=session.ref.provider,
        )
        asked: list[ModelMessage] = []  # the last conversation the worker sent: for a failure's reason

        async def answer(turn: Turn, model: Model = model, asked: list[ModelMessage] = asked) -> str:
            asked[:] = turn_messages(turn)
            return dump_response(await model.request(asked, turn.settings, turn.params))

        try:
            outcome: RemoteOutcome = await placer.run_loop(functools.partial(remote_agent, spec), answer)
        except WorkerLost as exc:
            if dispatch == _DISPATCHES:
                raise SessionFailed(f"{exc} ({_DISPATCHES} workers lost running this agent)", exc) from exc
            continue
        except (Stopped, WorkflowError):
            raise
        except Exception as exc:  # a request the driver answered failed for good
            raise SessionFailed(failure_line(exc, asked), exc) from exc
        if outcome.failure is not None:
            raise SessionFailed(outcome.failure)
        return _validated(schema, outcome.output), outcome.messages
    raise AssertionError("unreachable")


def _validated(schema: Any, data: Any) -> Any:
    """The worker's output as the script's own types (a class shipped by value is a copy there)."""
    if schema is None or isinstance(schema, dict):
        return data
    return TypeAdapter(schema).validate_python(data)
