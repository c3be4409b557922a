"""Composition: parallel() waits for every item, pipeline() lets each item flow on by itself,
phase() groups work for accounting and display.

An item whose agent failed for good resolves to None (the failure is reported and the run exits
1): filter them. Any other exception is raised once every item has finished, so finished work is
journaled before the run ends; a drain (Ctrl-C, a budget) is raised as Stopped the same way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar, overload

from ..engine import Stopped
from ._errors import AgentFailed
from ._paths import Scope, current_scope, in_scope, item_label, slug
from ._runtime import current_runtime

__all__ = ["log", "parallel", "phase", "pipeline"]

T = TypeVar("T")
R = TypeVar("R")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    value = fn(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


async def _gather(jobs: Sequence[tuple[Scope, Callable[[], Awaitable[Any]]]]) -> list[Any]:
    """Run every job in its own scope; wait for all; AgentFailed -> None; then raise the rest."""

    async def one(scope: Scope, work: Callable[[], Awaitable[Any]]) -> Any:
        with in_scope(scope):
            return await work()

    outcomes = await asyncio.gather(*(one(s, w) for s, w in jobs), return_exceptions=True)
    results: list[Any] = []
    stopped: BaseException | None = None
    error: BaseException | None = None
    for outcome in outcomes:
        if isinstance(outcome, AgentFailed):
            results.append(None)
        elif isinstance(outcome, Stopped | asyncio.CancelledError):
            stopped = stopped or outcome
            results.append(None)
        elif isinstance(outcome, BaseException):
            error = error or outcome
            results.append(None)
        else:
            results.append(outcome)
    if error is not None:
        raise error
    if stopped is not None:
        raise stopped
    return results


@overload
async def parallel(items: Iterable[T], fn: Callable[[T], Awaitable[R]]) -> list[R | None]: ...


@overload
async def parallel(items: Iterable[Callable[[], Awaitable[R]]]) -> list[R | None]: ...


async def parallel(items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]] | None = None) -> list[Any]:
    """Run `fn` on every item concurrently and wait for all; results in item order.

    Without `fn`, the items are thunks (functions of no arguments) to run. Each item runs in its
    own step scope, named after the item where that is stable (strings, numbers, paths, JSON-able
    values), so adding an item to the list does not change the others' journal keys.
    """
    listed = list(items)
    scope = current_scope()
    jobs: list[tuple[Scope, Callable[[], Awaitable[Any]]]] = []
    for index, item in enumerate(listed):
        label = str(index + 1) if fn is None else item_label(item, index)
        work = partial(_call, item) if fn is None else partial(_call, fn, item)
        jobs.append((scope.fork(label), work))
    return await _gather(jobs)


def _stage_label(stage: Callable[..., Any], index: int) -> str:
    name = getattr(stage, "__name__", "")
    return f"{index + 1}-{slug(name)}" if name and name != "<lambda>" else str(index + 1)


async def pipeline(items: Iterable[Any], *stages: Callable[[Any], Any]) -> list[Any]:
    """Each item flows through the stages on its own (no barrier between stages).

    A stage gets the previous stage's result (the first gets the item). An item whose agent
    failed for good, or whose stage returned None, leaves the pipeline: its result is None.
    """
    listed = list(items)
    scope = current_scope()
    labels = [_stage_label(stage, index) for index, stage in enumerate(stages)]

    async def flow(item: Any) -> Any:
        value = item
        here = current_scope()
        for stage, label in zip(stages, labels, strict=True):
            with in_scope(here.fork(label)):
                value = await _call(stage, value)
            if value is None:
                return None
        return value

    jobs: list[tuple[Scope, Callable[[], Awaitable[Any]]]] = [
        (scope.fork(item_label(item, index)), partial(flow, item)) for index, item in enumerate(listed)
    ]
    return await _gather(jobs)


@contextmanager
def phase(name: str) -> Iterator[Scope]:
    """Group the work inside the block: a step of its own in the call tree, and one line in the
    run's accounting (tokens, dollars, agents)."""
    runtime = current_runtime()
    label = slug(name, "phase")
    scope = current_scope().fork(label, phase=label)
    runtime.enter_phase(label)
    with in_scope(scope):
        yield scope


def log(message: str) -> None:
    """A narrator line on the run's output (stderr), and an event in the journal."""
    runtime = current_runtime()
    runtime.say(message)
    runtime.job.journal.event(runtime.job.run_id, "log", message=message)
