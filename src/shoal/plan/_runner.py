"""Run a plan's pending tasks through the gate, phase after phase.

Phased mode (the default) takes every task of a phase through one stage before the next, so a
systemic problem shows up after one stage rather than after every task; pipeline mode lets each
task flow through the stages on its own. A failing task escalates once to the next tier and is
then left `needs-review`; it is never shipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from .._signature import failure_signature
from .._states import ExitCode, PlanMode, PlanStage
from ..engine import Job, LocalExecutor, Stopped
from ..errors import ModelCallError
from ..gate import GateTally, writer_brief
from ..journal import ItemStatus
from ._batch_stage import BatchedStages
from ._estimate import estimate_plan, gate_calls, plan_observed
from ._model import Plan
from ._stages import STAGES, GateSettings, StageRunner, TaskRun
from ._write import StatusUpdate, write_statuses

__all__ = ["PlanResult", "PlanRun"]

SYSTEMIC_MIN = 3


@dataclass(slots=True)
class PlanResult:
    shipped: list[str] = field(default_factory=list)
    needs_review: dict[str, str] = field(default_factory=dict)
    systemic: str | None = None
    stopped: str | None = None
    projections: list[str] = field(default_factory=list)  # the cost re-projected after each phase
    gate: GateTally = field(default_factory=GateTally)

    def gate_line(self) -> str:
        return self.gate.line(self.shipped, self.needs_review)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of(failed=bool(self.needs_review or self.systemic), stopped=bool(self.stopped))


class PlanRun:
    def __init__(
        self,
        plan: Plan,
        job: Job,
        runs: list[TaskRun],
        *,
        root: Path,
        settings: GateSettings,
        mode: PlanMode = PlanMode.PHASED,
    ) -> None:
        self.plan = plan
        self.job = job
        self.runs = runs
        self.mode = mode
        self.brief = brief_for(plan)
        self.stages = StageRunner(plan, job, root=root, brief=self.brief, settings=settings)
        self.calls = gate_calls(self.brief, settings, lint=bool(plan.lint_commands))
        self.result = PlanResult(gate=self.stages.tally)
        self.batched: BatchedStages | None = None  # phased mode through batch APIs (--batch)
        generations = job.journal.retry_generations(job.name)
        for run in runs:  # a retry interrupted earlier resumes under its own generation
            run.retry = generations.get(run.task.filename, run.retry)

    async def start_retry(self, runs: list[TaskRun]) -> None:
        """Send needs-review tasks through the gate again: each gets a new retry generation (so
        its calls are sent afresh; the journal keeps the old ones) and its status cell goes back
        to pending until the gate gives a new verdict."""
        if not runs:
            return
        generations = await self.job.journal.start_retry(self.job.name, [r.task.filename for r in runs])
        for run in runs:
            run.retry = generations[run.task.filename]
        write_statuses(self.plan, [StatusUpdate(r.task.filename, "pending", "") for r in runs])
        self.job.journal.event(
            self.job.run_id, "retry", None, items=[r.task.filename for r in runs], status="needs-review"
        )

    async def run(self, runs: list[TaskRun] | None = None, *, mode: PlanMode | None = None) -> PlanResult:
        selected = self.runs if runs is None else runs
        await self.job.journal.set_items(
            self.job.name, [r.task.filename for r in selected], ItemStatus.PENDING
        )
        for phase in self.plan.phases:
            batch = [r for r in selected if r.task.phase == phase.number]
            if not batch:
                continue
            if (mode or self.mode) == PlanMode.PIPELINE:
                await self._pipeline(batch)
            else:
                await self._phased(batch)
            if self.result.systemic or not self.job.stop.running:
                break
            self._project(phase.number, [r for r in selected if r.task.phase > phase.number])
        self.finish()
        return self.result

    def finish(self) -> None:
        streak = self.job.streak.reason if self.job.streak is not None else None
        if streak:  # every call failed alike: not resumable until its cause is fixed
            self.result.systemic = self.result.systemic or f"halted: {streak}"
        elif not self.job.stop.running:
            self.result.stopped = self.job.stop.reason or "stopped"
        self.job.status = self.result.exit_code.run_status

    def _project(self, phase: int, later: list[TaskRun]) -> None:
        """After a phase: the rest of the plan's cost again, from the tokens and escalations seen so far."""
        if not later:
            return
        observed = plan_observed(self.job.name, self.job.journal.usage(self.job.name))
        ledger = self.job.ledger
        estimate = estimate_plan(later, self.calls, ledger.prices, observed, spent_usd=ledger.spent)
        ledger.projected_usd = estimate.expected_total_usd
        self.job.journal.event(
            self.job.run_id,
            "projection",
            None,
            after_phase=phase,
            tasks=len(later),
            **estimate.journal_detail(),
        )
        self.result.projections.append(
            f"after phase {phase}: ${estimate.spent_usd:.4f} spent, about ${estimate.expected_usd:.4f} more "
            f"expected for {len(later)} task(s) ({estimate.basis}): ${estimate.expected_total_usd:.4f} in all"
        )

    async def _stage(self, run: TaskRun, stage: PlanStage) -> None:
        if self.result.systemic:
            raise Stopped(self.result.systemic)  # the phase is halted: spend nothing more on it
        if run.failure is not None or run.shipped:
            return
        try:
            await self.stages.stages[stage](run)
        except ModelCallError as exc:
            run.failure = f"{stage}: model call failed: {exc}"
            run.signature = f"{stage}: {type(exc).__name__}"

    async def _settle(self, batch: list[TaskRun]) -> list[TaskRun]:
        """After a pass: failed tasks escalate once, else are marked needs-review. Returns the escalated."""
        again: list[TaskRun] = []
        for run in batch:
            if run.failure is None or not self.job.stop.running:
                continue
            if run.escalation is not None:
                self.stages.event(run, PlanStage.GATE, "escalate", reason=run.failure, to=run.escalation[0])
                run.escalate()
                again.append(run)
            else:
                self.result.needs_review[run.task.filename] = run.failure
                await self.stages.needs_review(run)
        for run in batch:
            if run.shipped and run.task.filename not in self.result.shipped:
                self.result.shipped.append(run.task.filename)
        return again

    async def _phased(self, batch: list[TaskRun]) -> None:
        executor = LocalExecutor(self.job.caller.concurrency)
        active = batch
        while active:
            for stage in STAGES:
                todo = [r for r in active if r.failure is None]

                async def step(run: TaskRun, stage: PlanStage = stage) -> None:
                    await self._stage(run, stage)

                if self.batched is not None:  # the stage as batch rounds
                    await self.batched.run(todo, stage, step, executor)
                else:
                    await executor.run(todo, step, stop=self.job.stop)
                if not self.job.stop.running:
                    return
                if stage in (PlanStage.LINT, PlanStage.SPOT_CHECK, PlanStage.REVIEW) and self._systemic(
                    todo, stage
                ):
                    return
            active = await self._settle(active)

    async def _pipeline(self, batch: list[TaskRun]) -> None:
        finished: list[TaskRun] = []

        async def flow(run: TaskRun) -> None:
            while True:
                for stage in STAGES:
                    await self._stage(run, stage)
                    if run.failure is not None:
                        break
                if not self.job.stop.running:
                    return
                if run.failure is not None and run.escalation is None:
                    # Judge the systemic rule on the tasks finished so far, before marking this one.
                    finished.append(run)
                    if self._systemic(finished, PlanStage.GATE):
                        return
                if not await self._settle([run]):
                    if run.failure is None:
                        finished.append(run)
                    return

        await LocalExecutor(self.job.caller.concurrency).run(batch, flow, stop=self.job.stop)

    def _systemic(self, batch: list[TaskRun], stage: PlanStage) -> bool:
        """The same failure in at least half of the tasks (and at least 3): stop before spending more."""
        signatures = Counter(_comparable(r) for r in batch if r.signature)
        if not signatures:
            return False
        signature, count = signatures.most_common(1)[0]
        if count >= SYSTEMIC_MIN and count * 2 >= len(batch):
            phase = batch[0].task.phase
            self.result.systemic = (
                f"phase {phase} stopped after {stage}: {count} of {len(batch)} tasks "
                f"fail the same way: {signature}"
            )
            self.job.journal.event(
                self.job.run_id,
                "systemic",
                None,
                phase=phase,
                stage=stage,
                signature=signature,
                count=count,
                of=len(batch),
            )
            return True
        return False


def _comparable(run: TaskRun) -> str:
    """A task's failure signature without what is specific to the task (its title, filename and
    slug, numbers, quoted values), so the same problem in different tasks compares equal."""
    task = run.task
    return failure_signature(run.signature or "", (task.title, task.filename, PurePath(task.filename).stem))


def brief_for(plan: Plan) -> str:
    reference = plan.format_reference.read_text(encoding="utf-8")
    return writer_brief(plan.format_reference.name, reference, plan.content_rules)
