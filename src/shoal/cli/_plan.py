"""`shoal run PLAN.md`: every pending task of a batch plan through the quality gate."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from ..config import ShoalConfig, load_config
from ..engine import StopSignal, Workspace, open_job
from ..errors import InputError
from ..plan import (
    STAGES,
    GateSettings,
    Plan,
    PlanResult,
    PlanRun,
    TaskRun,
    brief_for,
    choose_tier,
    estimate_line,
    parse_plan,
    tier_order,
)
from ..pricing import PriceBook
from ..providers import ModelRef, ProviderSet, resolve_model
from ..view import watch_job
from ._common import totals_line, unpriced_warning, with_overrides
from ._confirm import confirm_launch
from ._runtime import run_async, say

__all__ = ["run_plan_command"]


def _resolve(name: str, config: ShoalConfig, plan: Plan, line: int) -> ModelRef:
    try:
        return resolve_model(name, config)
    except InputError as exc:
        raise InputError(f"{plan.path}:{line}: {exc}") from None


def _runs(plan: Plan, config: ShoalConfig, phase: int | None) -> list[TaskRun]:
    if phase is not None and phase not in [p.number for p in plan.phases]:
        raise InputError(f"{plan.path}: there is no phase {phase}")
    order = tier_order(plan, config.tiering)
    runs: list[TaskRun] = []
    for task in plan.tasks(phase):
        if task.status.strip().lower() in ("complete", "completed", "done", "needs-review"):
            continue
        choice = choose_tier(task, plan, config.tiering)
        model = _resolve(choice.tier, config, plan, task.row.line + 1)
        escalation = None
        if choice.tier in order and order.index(choice.tier) + 1 < len(order):
            following = order[order.index(choice.tier) + 1]
            escalation = (following, _resolve(following, config, plan, task.row.line + 1))
        runs.append(TaskRun(task=task, choice=choice, model=model, escalation=escalation))
    return runs


def _summary(plan: Plan, runs: list[TaskRun], mode: str, estimate: str) -> str:
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
    mode: str,
    concurrency: str | None,
    max_cost: float | None,
    config_path: Path | None,
) -> int:
    argv = ["shoal", *sys.argv[1:]]

    async def main(stop: StopSignal) -> int:
        if mode not in ("phased", "pipeline"):
            raise InputError(f"--mode must be 'phased' or 'pipeline', not '{mode}'")
        config = with_overrides(load_config(config_path), concurrency, max_cost)
        root = Path.cwd()
        plan = parse_plan(target, cwd=root)
        runs = _runs(plan, config, phase)
        if not runs:
            say(f"plan: nothing pending in {target}" + (f" phase {phase}" if phase else ""))
            return 0
        providers = ProviderSet(config, os.environ)
        for run in runs:
            providers.check(run.model)
            if run.escalation:
                providers.check(run.escalation[1])
        warning = unpriced_warning(
            config, [r.model for r in runs] + [r.escalation[1] for r in runs if r.escalation]
        )
        if warning:
            say(warning)
        settings = GateSettings(max_tokens=config.job.max_tokens)
        estimate = estimate_line(runs, brief_for(plan), settings, PriceBook(config.prices))
        if not confirm_launch(_summary(plan, runs, mode, estimate), yes=yes):
            say("plan: not started")
            return 3
        async with open_job(
            workspace=Workspace(root),
            config=config,
            name=f"plan:{plan.path.resolve()}",
            command=shlex.join(argv),
            env=os.environ,
            stop=stop,
            providers=providers,
        ) as job:
            runner = PlanRun(plan, job, runs, root=root, settings=settings, mode=mode)
            phases = sorted({r.task.phase for r in runs})
            stages = [f"phase-{n}/{stage}" for n in phases for stage in STAGES]
            async with watch_job(job, stages=stages):  # live view on stderr, snapshots for status
                result = await (_with_canary(runner, runs, canary, yes) if canary else runner.run())
            verdicts = f"{len(result.shipped)} shipped, {len(result.needs_review)} need review"
            say(f"plan: {verdicts}; {totals_line(job)}")
        _report(result, argv)
        return result.exit_code

    return run_async(main)


async def _with_canary(runner: PlanRun, runs: list[TaskRun], canary: int, yes: bool) -> PlanResult:
    """K tasks through the whole gate first; the rest only after approval."""
    first, rest = runs[:canary], runs[canary:]
    result = await runner.run(first, mode="pipeline")
    say(f"canary: {len(result.shipped)} shipped, {len(result.needs_review)} need review")
    for name, reason in result.needs_review.items():
        say(f"  needs-review: {name}: {reason}")
    if not rest or result.stopped or result.systemic:
        return result
    if confirm_launch(f"canary done; {len(rest)} task(s) left", yes=yes):
        return await runner.run(rest)
    runner.job.stop.drain("canary: not approved")
    runner.finish()
    return result


def _report(result: PlanResult, argv: list[str]) -> None:
    for name, reason in result.needs_review.items():
        say(f"  needs-review: {name}: {reason}")
    if result.systemic:
        say(f"plan: {result.systemic}")
    if result.stopped:
        say(f"plan: stopped ({result.stopped}); resume with: {shlex.join(argv)}")
