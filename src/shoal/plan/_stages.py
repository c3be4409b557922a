"""One task's way through the gate: generate, save, self-check, lint, spot-check, review, fix, ship.

Each stage works on a TaskRun. The writer keeps one session (its message history, journaled) from
the draft to the last fix; the reviewer always gets a fresh context with only the brief and the
draft. Every model call goes through the job's caller, so a rerun replays finished calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._states import PlanStage
from ..cluster import lint_runner
from ..engine import CallResult, CallSpec, Job, StateDir
from ..gate import (
    REVIEW_SCHEMA,
    SELF_CHECK_SCHEMA,
    GateTally,
    fix_flags_prompt,
    fix_lint_prompt,
    fix_metadata_prompt,
    front_matter,
    register,
    required_fields,
    review_prompt,
    self_check_prompt,
    ship_file,
    spot_check,
    task_prompt,
    write_atomic,
)
from ..journal import ItemStatus
from ..providers import Message, ModelRef, ModelRequest
from ._model import Plan, Task
from ._tiering import TierChoice
from ._write import StatusUpdate, write_statuses

__all__ = ["STAGES", "GateSettings", "StageRunner", "TaskRun"]

STAGES = tuple(stage for stage in PlanStage if stage is not PlanStage.GATE)  # in order


@dataclass(frozen=True, slots=True)
class GateSettings:
    max_tokens: int = 2048
    review_max_tokens: int = 800
    lint_rounds: int = 2  # fix rounds after the first lint failure
    lint_timeout_s: float = 120.0


@dataclass(slots=True)
class TaskRun:
    task: Task
    choice: TierChoice
    model: ModelRef
    escalation: tuple[str, ModelRef] | None  # the next tier, if there is one
    escalated: bool = False
    messages: list[Message] = field(default_factory=list)
    draft: str = ""
    flags: list[dict[str, str]] = field(default_factory=list)
    failure: str | None = None
    signature: str | None = None  # what a failure looks like, to spot the same one across tasks
    review_rounds: int = 0
    shipped: bool = False
    retry: int = 0  # retry generation (--retry needs-review): part of every call's journal key

    @property
    def tier(self) -> str:
        return self.choice.tier

    def escalate(self) -> None:
        assert self.escalation is not None
        tier, model = self.escalation
        self.choice = TierChoice(tier, f"escalated after: {self.failure}")
        self.model = model
        self.escalation = None
        self.escalated = True
        self.messages = []
        self.draft = ""
        self.flags = []
        self.failure = None
        self.signature = None
        self.review_rounds = 0


class StageRunner:
    def __init__(self, plan: Plan, job: Job, *, root: Path, brief: str, settings: GateSettings) -> None:
        self.plan = plan
        self.job = job
        self.root = root
        self.brief = brief
        self.settings = settings
        self.fields = required_fields(plan.content_rules)
        self._plan_lock = asyncio.Lock()
        self._registry_lock = asyncio.Lock()
        self.tally = GateTally()  # what the gate did, for the summary
        # Where model calls go instead of straight to the caller (batch rounds capture them).
        self.calls_through: Callable[[CallSpec], Awaitable[CallResult]] | None = None
        self.stages: dict[PlanStage, Callable[[TaskRun], Awaitable[None]]] = {
            PlanStage.GENERATE: self.generate,
            PlanStage.SELF_CHECK: self.self_check,
            PlanStage.LINT: self.lint,
            PlanStage.SPOT_CHECK: self.spot_check,
            PlanStage.REVIEW: self.review,
            PlanStage.FIX: self.fix,
            PlanStage.SHIP: self.ship,
        }

    # -- plumbing ----------------------------------------------------------------------------

    def staging_path(self, run: TaskRun) -> Path:
        return StateDir(self.root).staging / run.task.filename

    def _stage_name(self, run: TaskRun, stage: PlanStage) -> str:
        return f"phase-{run.task.phase}/{stage}"

    def event(self, run: TaskRun, stage: PlanStage, outcome: str, **detail: Any) -> None:
        self.tally.record(run.task.filename, stage, outcome, detail)
        self.job.journal.event(
            self.job.run_id,
            "stage",
            run.model.key,
            item=run.task.filename,
            stage=stage,
            outcome=outcome,
            tier=run.tier,
            **detail,
        )

    async def _call(
        self,
        run: TaskRun,
        stage: PlanStage,
        scope: str,
        messages: tuple[Message, ...],
        schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> str:
        request = ModelRequest(run.model.name, messages, max_tokens, schema)
        spec = CallSpec(
            scope=scope, stage=self._stage_name(run, stage), model=run.model, request=request, retry=run.retry
        )
        result = await (self.calls_through or self.job.caller.call)(spec)
        return result.text

    async def _writer(
        self, run: TaskRun, stage: PlanStage, prompt: str, schema: dict[str, Any] | None = None
    ) -> str:
        """A turn in the writer's own session: same history, one more message."""
        if not run.messages:
            # The brief is identical for every task: a prefix providers can cache.
            run.messages = [Message("system", self.brief, cache=True)]
        run.messages.append(Message("user", prompt))
        scope = f"{self.job.name}#{run.task.filename}/writer/{run.tier}"
        answer = await self._call(run, stage, scope, tuple(run.messages), schema, self.settings.max_tokens)
        run.messages.append(Message("assistant", answer))
        await self.job.journal.save_session(
            scope, self.job.name, run.task.filename, [[m.role, m.content] for m in run.messages]
        )
        return answer

    def _save(self, run: TaskRun, text: str) -> None:
        run.draft = text.strip() + "\n"
        write_atomic(self.staging_path(run), run.draft)

    async def _set_item(self, run: TaskRun, stage: PlanStage) -> None:
        await self.job.journal.set_item(
            self.job.name, run.task.filename, ItemStatus.RUNNING, stage=self._stage_name(run, stage)
        )

    # -- stages ------------------------------------------------------------------------------

    async def generate(self, run: TaskRun) -> None:
        await self._set_item(run, PlanStage.GENERATE)
        self.job.journal.event(
            self.job.run_id,
            "tier",
            run.model.key,
            item=run.task.filename,
            tier=run.tier,
            reason=run.choice.reason,
        )
        task = run.task
        draft = await self._writer(
            run, PlanStage.GENERATE, task_prompt(task.title, task.filename, task.phase_name)
        )
        self._save(run, draft)  # on disk before anything else happens to it
        self.event(run, PlanStage.GENERATE, "saved", chars=len(run.draft))

    async def self_check(self, run: TaskRun) -> None:
        answer = await self._writer(
            run,
            PlanStage.SELF_CHECK,
            self_check_prompt(run.task.title, self.plan.checklist),
            SELF_CHECK_SCHEMA,
        )
        verdict = json.loads(answer)
        if verdict.get("verdict") == "fixed" and str(verdict.get("document", "")).strip():
            self._save(run, verdict["document"])
            self.event(run, PlanStage.SELF_CHECK, "fixed", problems=verdict.get("problems", [])[:10])
        else:
            self.event(run, PlanStage.SELF_CHECK, "pass")

    async def _lint_once(self, run: TaskRun) -> tuple[str, ...]:
        staged = self.staging_path(run)
        violations: list[str] = []
        started = self.job.clock.now()
        for command in self.plan.lint_commands:
            lint = lint_runner(self.job)  # on a Ray worker with the executor "ray"
            result = await lint(command, staged, cwd=self.root, timeout_s=self.settings.lint_timeout_s)
            if not result.passed:
                violations.extend(result.violations)
        # "check" events feed the report's "where the time went" next to queue and model time.
        self.job.journal.event(
            self.job.run_id,
            "check",
            run.model.key,
            stage=self._stage_name(run, PlanStage.LINT),
            item=run.task.filename,
            duration_s=self.job.clock.now() - started,
        )
        return tuple(violations[:10])

    async def lint(self, run: TaskRun) -> None:
        if not self.plan.lint_commands:
            return
        await self._set_item(run, PlanStage.LINT)
        for round_ in range(self.settings.lint_rounds + 1):
            violations = await self._lint_once(run)
            if not violations:
                self.event(run, PlanStage.LINT, "pass", rounds=round_)
                return
            if round_ == self.settings.lint_rounds:
                break
            # Only the violations go back, to the same session that wrote the draft.
            self._save(
                run, await self._writer(run, PlanStage.LINT, fix_lint_prompt(run.task.title, violations))
            )
        run.signature = "lint: " + violations[0].split(":", 2)[-1].strip()
        run.failure = f"lint still fails: {violations[0]}"
        self.event(run, PlanStage.LINT, "failed", violations=list(violations))

    async def spot_check(self, run: TaskRun) -> None:
        problems = spot_check(run.draft, title=run.task.title, fields=self.fields)
        if problems:
            answer = await self._writer(
                run, PlanStage.SPOT_CHECK, fix_metadata_prompt(run.task.title, problems)
            )
            self._save(run, answer)
            problems = spot_check(run.draft, title=run.task.title, fields=self.fields)
        if problems:
            run.signature = f"metadata: {problems[0]}"
            run.failure = f"metadata: {problems[0]}"
            self.event(run, PlanStage.SPOT_CHECK, "failed", problems=problems)
        else:
            self.event(run, PlanStage.SPOT_CHECK, "pass")

    async def _review(self, run: TaskRun) -> list[dict[str, str]]:
        run.review_rounds += 1
        scope = f"{self.job.name}#{run.task.filename}/review/{run.tier}/{run.review_rounds}"
        prompt = review_prompt(run.task.title, self.plan.content_rules, run.draft)
        answer = await self._call(
            run,
            PlanStage.REVIEW,
            scope,
            (Message("user", prompt),),
            REVIEW_SCHEMA,
            self.settings.review_max_tokens,
        )
        review = json.loads(answer)
        flags = [dict(f) for f in review.get("flags", [])] if review.get("verdict") == "flagged" else []
        self.event(
            run, PlanStage.REVIEW, "flagged" if flags else "clean", round=run.review_rounds, flags=flags
        )
        return flags

    async def review(self, run: TaskRun) -> None:
        await self._set_item(run, PlanStage.REVIEW)
        run.flags = await self._review(run)
        if run.flags:
            run.signature = f"review: {run.flags[0].get('kind', 'flag')}"

    async def fix(self, run: TaskRun) -> None:
        if not run.flags:
            return  # items that pass are never touched again
        await self._set_item(run, PlanStage.FIX)
        self._save(run, await self._writer(run, PlanStage.FIX, fix_flags_prompt(run.task.title, run.flags)))
        self.event(run, PlanStage.FIX, "edited", flags=len(run.flags))
        await self.lint(run)
        if run.failure:
            return
        remaining = await self._review(run)
        if remaining:
            run.flags = remaining
            run.signature = f"review: {remaining[0].get('kind', 'flag')}"
            run.failure = f"still flagged: [{remaining[0].get('kind')}] {remaining[0].get('problem', '')}"
        else:
            run.flags = []
            run.signature = None

    async def ship(self, run: TaskRun) -> None:
        await self._set_item(run, PlanStage.SHIP)
        target = self.plan.output_dir / run.task.filename
        ship_file(self.staging_path(run), target)
        if self.plan.registration is not None:
            relative = target.resolve().relative_to(self.root.resolve()).as_posix()
            async with self._registry_lock:
                added = register(self.plan.registration, path=relative, meta=front_matter(run.draft) or {})
            self.event(run, PlanStage.SHIP, "registered" if added else "already-registered", path=relative)
        await self.set_status(run, "complete", None)
        await self.job.journal.set_item(
            self.job.name,
            run.task.filename,
            ItemStatus.DONE,
            stage=self._stage_name(run, PlanStage.SHIP),
            output=str(target),
        )
        run.shipped = True

    async def needs_review(self, run: TaskRun) -> None:
        reason = run.failure or "did not pass the gate"
        await self.set_status(run, "needs-review", reason)
        await self.job.journal.set_item(
            self.job.name, run.task.filename, ItemStatus.NEEDS_REVIEW, error=reason
        )
        self.event(run, PlanStage.GATE, "needs-review", reason=reason)

    async def set_status(self, run: TaskRun, status: str, note: str | None) -> None:
        async with self._plan_lock:
            write_statuses(self.plan, [StatusUpdate(run.task.filename, status, note)])
