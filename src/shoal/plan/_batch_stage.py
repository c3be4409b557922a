"""Phased mode through provider batch APIs: each stage of a phase is run as batch rounds.

A stage is run over the phase's tasks with the model calls captured instead of sent: a task that
reaches a call the journal does not hold yet is put back as it was before the stage, and the
captured calls go out as one batch. The batch's answers are journaled under the same keys as
online calls, so the next pass runs the stage again and every call before the next unanswered
one replays. A stage whose tasks make one call each (generate, self-check, review) is one
batch; one whose calls depend on each other (fix, then lint fixes, then a second review) takes a
pass per call. The round's name is the phase and stage, not the pass, so a rerun after a kill
finds the batches the killed run had open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields

from ..engine import CallResult, CallSpec, Executor, Job, call_key
from ..engine._batch import BatchRound
from ..errors import ModelCallError
from ._stages import StageRunner, TaskRun

__all__ = ["BatchedStages"]

# Calls in one task's stage that may each take a batch; beyond this the rest go online.
MAX_PASSES = 8


class _Deferred(Exception):
    """A call the journal does not hold yet: it goes into this pass's batch."""


@dataclass(slots=True)
class _Pass:
    """One pass of a stage over the tasks still waiting for an answer."""

    job: Job
    step: Callable[[TaskRun], Awaitable[None]]
    failed: dict[str, ModelCallError]  # calls whose batch attempts are spent
    online: set[str]  # calls the online fallback takes
    last: bool  # past MAX_PASSES: what is left goes online
    captured: dict[str, CallSpec] = field(default_factory=dict)
    deferred: list[TaskRun] = field(default_factory=list)

    async def through(self, spec: CallSpec) -> CallResult:
        key = call_key(spec)
        if key in self.failed:
            raise self.failed[key]
        if self.last or key in self.online or self.job.journal.find_call(key) is not None:
            return await self.job.caller.call(spec)  # a replay, or the online fallback
        self.captured.setdefault(key, spec)
        raise _Deferred(key)

    async def attempt(self, run: TaskRun) -> None:
        saved = {f.name: _copied(getattr(run, f.name)) for f in fields(run)}
        try:
            await self.step(run)
        except _Deferred:
            for name, value in saved.items():  # as it was before the stage: a later pass reruns it
                setattr(run, name, value)
            self.deferred.append(run)


def _copied(value: object) -> object:
    return list(value) if isinstance(value, list) else value  # messages and flags are appended to


class BatchedStages:
    def __init__(self, job: Job, stages: StageRunner, rounds: BatchRound) -> None:
        self._job = job
        self._stages = stages
        self._rounds = rounds

    async def run(
        self, todo: list[TaskRun], stage: str, step: Callable[[TaskRun], Awaitable[None]], executor: Executor
    ) -> None:
        job = self._job
        if not todo:
            return
        round_name = f"phase-{todo[0].task.phase}/{stage}"
        failed: dict[str, ModelCallError] = {}
        online: set[str] = set()
        remaining = list(todo)
        for number in range(1, MAX_PASSES + 2):
            one = _Pass(job, step, failed, online, last=number > MAX_PASSES)
            self._stages.calls_through = one.through
            try:
                await executor.run(remaining, one.attempt, stop=job.stop)
            finally:
                self._stages.calls_through = None
            if not one.captured or not job.stop.running:
                return
            outcome = await self._rounds.run(list(one.captured.values()), round_name)
            failed.update(outcome.failed)
            online.update(outcome.online)
            if outcome.stopped:
                job.stop.drain(outcome.stopped)
                return
            remaining = one.deferred
