"""`shoal run PLAN.md`: every pending task of a batch plan through the quality gate."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import ShoalConfig
from ..engine import StopSignal
from ..errors import ExitCode, InputError
from ..estimate import Estimate
from ..plan import (
    STAGES,
    GateSettings,
    Plan,
    PlanMode,
    PlanResult,
    PlanRun,
    PlanStatus,
    TaskRun,
    brief_for,
    choose_tier,
    estimate_pending,
    parse_plan,
    tier_order,
)
from ..plan._batch_stage import BatchedStages
from ..preflight import check_max_tokens, check_plan, check_workspace
from ..pricing import PriceBook
from ..providers import ModelRef, resolve_model
from ..view import watch_job
from ._batch import Fallback, batch_config, launch_estimate, maybe_batch_round
from ._common import totals_line
from ._confirm import confirm_launch
from ._launch import Launch
from ._runtime import resume_argv, run_async, say

__all__ = ["run_plan_command"]


def _resolve(name: str, config: ShoalConfig, plan: Plan, line: int) -> ModelRef:
    try:
        return resolve_model(name, config)
    except InputError as exc:
        raise InputError(f"{plan.path}:{line}: {exc}") from None


def _runs(
    plan: Plan, config: ShoalConfig, phase: int | None, retry_needs_review: bool = False
) -> list[TaskRun]:
    if phase is not None and phase not in [p.number for p in plan.phases]:
        raise InputError(f"{plan.path}: there is no phase {phase}")
    order = tier_order(plan, config.tiering)
    runs: list[TaskRun] = []
    for task in plan.tasks(phase):
        if PlanStatus.finished(task.status):
            continue
        if PlanStatus.needs_review(task.status) and not retry_needs_review:
            continue
        choice = choose_tier(task, plan, config.tiering)
        model = _resolve(choice.tier, config, plan, task.row.line + 1)
        escalation = None
        if choice.tier in order and order.index(choice.tier) + 1 < len(order):
            following = order[order.index(choice.tier) + 1]
            escalation = (following, _resolve(following, config, plan, task.row.line + 1))
        runs.append(TaskRun(task=task, choice=choice, model=model, escalation=escalation))
    return runs


def _summary(plan: Plan, runs: list[TaskRun], mode: PlanMode, estimate: str) -> str:
    lines = [f"Plan {plan.path}: {len(runs)} pending task(s), mode {mode}"]
    for phase in plan.phases:
        mine = [r for r in runs if r.task.phase == phase.number]
        if not mine:
            continue
        lines.append(f"  Phase {phase.number}: {phase.name}")
        for run in mine:
            lines.append(
                f"    #{run.task.number} {run.task.title} -> {run.task.filename}: {run.tier} = {run.model} "
                f"({run.choice.reason})"
            )
    for command in plan.lint_commands:
        lines.append(f"Lint: {command}")
    if plan.registration is not None:
        lines.append(f"Registration: {plan.registration}")
    lines.append(f"Output: {plan.output_dir} (drafts staged in .shoal/staging/ until they pass the gate)")
    lines.append(estimate)
    return "\n".join(lines)


def run_plan_command(
    target: Path,
    *,
    phase: int | None,
    yes: bool,
    canary: int | None,
    mode: PlanMode,
    concurrency: str | None,
    max_cost: float | None,
    config_path: Path | None,
    retry_needs_review: bool = False,
    argv: list[str] | None = None,
    batch: bool = False,
    batch_fallback: Fallback | None = None,
    executor: str | None = None,
) -> int:
    argv = argv or resume_argv()

    async def main(stop: StopSignal) -> int:
        launch = Launch.prepare(
            config_path=config_path,
            concurrency=concurrency,
            max_cost=max_cost,
            argv=argv,
            executor=executor,
            batch_fallback=batch_fallback,
        )
        config, root = launch.config, launch.root
        plan = parse_plan(target, cwd=root)
        check_plan(plan, cwd=root)
        runs = _runs(plan, config, phase, retry_needs_review)
        if not runs:
            say(f"plan: nothing pending in {target}" + (f" phase {phase}" if phase else ""))
            return ExitCode.OK
        models = [r.model for r in runs] + [r.escalation[1] for r in runs if r.escalation]
        launch.check_models(models)
        use_batch = batch_config(config, batch, batch_fallback, models)
        if use_batch and (mode == PlanMode.PIPELINE or canary):
            raise InputError("--batch runs plans in phased mode: leave out --mode pipeline and --canary")
        for ref in {r.model for r in runs} | {r.escalation[1] for r in runs if r.escalation}:
            check_max_tokens(ref, config.job.max_tokens, source="[job] max_tokens")
        check_workspace(root)
        settings = GateSettings(max_tokens=config.job.max_tokens, lint_timeout_s=config.plan.lint_timeout_s)
        name = f"plan:{plan.path.resolve()}"

        def estimate_at(prices: PriceBook) -> Estimate:
            return estimate_pending(
                name,
                runs,
                brief=brief_for(plan),
                lint=bool(plan.lint_commands),
                settings=settings,
                prices=prices,
                journal=launch.state.journal_path,
            )

        estimate, lines = launch_estimate(estimate_at, PriceBook.from_config(config), batch=use_batch)
        shown = "\n".join(lines)
        warning = estimate.budget_warning(config.job.max_cost_usd)
        if warning:
            say(warning)
        if not confirm_launch(_summary(plan, runs, mode, shown), yes=yes):
            say("plan: not started")
            return ExitCode.STOPPED
        async with launch.open(name, stop) as job:
            job.journal.event(job.run_id, "estimate", None, **estimate.journal_detail())
            runner = PlanRun(plan, job, runs, root=root, settings=settings, mode=mode)
            await runner.start_retry([r for r in runs if PlanStatus.needs_review(r.task.status)])
            phases = sorted({r.task.phase for r in runs})
            stages = [f"phase-{n}/{stage}" for n in phases for stage in STAGES]
            async with (
                watch_job(job, stages=stages),  # live view on stderr, snapshots for status
                maybe_batch_round(job, os.environ, use_batch) as rounds,
            ):
                if rounds is not None:
                    runner.batched = BatchedStages(job, runner.stages, rounds)
                result = await (_with_canary(runner, runs, canary, yes) if canary else runner.run())
            verdicts = f"{len(result.shipped)} shipped, {len(result.needs_review)} need review"
            say(f"plan: {verdicts}; {totals_line(job)}")
            say(result.gate_line())
        _report(result, launch)
        return result.exit_code

    return run_async(main)


async def _with_canary(runner: PlanRun, runs: list[TaskRun], canary: int, yes: bool) -> PlanResult:
    """K tasks through the whole gate first; the rest only after approval."""
    first, rest = runs[:canary], runs[canary:]
    result = await runner.run(first, mode=PlanMode.PIPELINE)
    say(f"canary: {len(result.shipped)} shipped, {len(result.needs_review)} need review")
    say(f"canary {result.gate_line()}")
    for name, reason in result.needs_review.items():
        say(f"  needs-review: {name}: {reason}")
    if not rest or result.stopped or result.systemic:
        return result
    if confirm_launch(f"canary done; {len(rest)} task(s) left", yes=yes):
        return await runner.run(rest)
    runner.job.stop.drain("canary: not approved")
    runner.finish()
    return result


def _report(result: PlanResult, launch: Launch) -> None:
    for line in result.projections:
        say(f"plan: cost {line}")
    for name, reason in result.needs_review.items():
        say(f"  needs-review: {name}: {reason}")
    if result.systemic:
        say(f"plan: {result.systemic}")
    launch.ended("plan", stopped=result.stopped)
