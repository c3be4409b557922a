"""Checks a draft passes before anyone reads it.

A workflow script: the allow-list (it parses, imports only what is listed, one @workflow), its
target is the assessed directory, and a rehearsal dry run. A plan: it parses, its side files and
lint commands exist, every task's model resolves, and something is pending.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import ShoalConfig
from ..engine import StopSignal
from ..errors import InputError
from ..estimate import Estimate
from ..plan import (
    GateSettings,
    Plan,
    PlanStatus,
    TaskRun,
    brief_for,
    choose_tier,
    estimate_pending,
    parse_plan,
)
from ..plan import tier_order as plan_tier_order
from ..preflight import check_plan
from ..pricing import PriceBook
from ..providers import ModelRef, resolve_model
from ._errors import DraftRejected
from ._prompt import DraftCaps
from ._rehearse import DryRun, rehearse
from ._safety import check_script

__all__ = ["CheckedPlan", "CheckedWorkflow", "check_plan_draft", "check_workflow_draft"]


@dataclass(frozen=True, slots=True)
class CheckedWorkflow:
    text: str
    dry_run: DryRun


@dataclass(frozen=True, slots=True)
class CheckedPlan:
    text: str
    plan: Plan
    runs: tuple[TaskRun, ...]
    estimate: Estimate


def _check_caps(dry: DryRun, caps: DraftCaps) -> None:
    """The script carries caps, and none above what the assessment sized."""
    for name, declared, limit in (
        ("max_agents", dry.declared_max_agents, caps.max_agents),
        ("max_tokens", dry.declared_max_tokens, caps.max_tokens),
    ):
        if declared is None or declared > limit:
            given = "unset" if declared is None else f"{declared:,}"
            raise DraftRejected(f"@workflow({name}=...) must be set and at most {limit} ({given} now)")


async def check_workflow_draft(
    text: str, *, out: Path, target: Path, caps: DraftCaps, config: ShoalConfig, stop: StopSignal
) -> CheckedWorkflow:
    check_script(text, filename=out.name)
    dry = await rehearse(text, out=out, config=config, stop=stop, timeout_s=config.draft.rehearsal_timeout_s)
    _check_caps(dry, caps)
    if dry.settings.target is None or dry.settings.target != target.resolve():
        given = "none" if dry.settings.target is None else str(dry.settings.target)
        raise DraftRejected(
            f"@workflow(target=...) must be the assessed directory {target.resolve()} (relative to the "
            f"script); it is {given}"
        )
    return CheckedWorkflow(text, dry)


def _model(name: str, config: ShoalConfig, plan: Plan, line: int) -> ModelRef:
    try:
        return resolve_model(name, config)
    except InputError as exc:
        raise DraftRejected(f"task on line {line + 1}: {exc}") from None


def _runs(plan: Plan, config: ShoalConfig) -> list[TaskRun]:
    order = plan_tier_order(plan, config.tiering)
    runs: list[TaskRun] = []
    for task in plan.tasks(None):
        if PlanStatus.finished(task.status) or PlanStatus.needs_review(task.status):
            continue
        choice = choose_tier(task, plan, config.tiering)
        model = _model(choice.tier, config, plan, task.row.line)
        escalation = None
        if choice.tier in order and order.index(choice.tier) + 1 < len(order):
            following = order[order.index(choice.tier) + 1]
            escalation = (following, _model(following, config, plan, task.row.line))
        runs.append(TaskRun(task=task, choice=choice, model=model, escalation=escalation))
    return runs


def check_plan_draft(text: str, *, out: Path, root: Path, config: ShoalConfig) -> CheckedPlan:
    """Parse the plan as `shoal run` will, from `root`; errors name `out`, not a temporary file."""
    with tempfile.TemporaryDirectory(prefix="shoal-draft-") as folder:
        path = Path(folder) / out.name
        path.write_text(text, encoding="utf-8")
        try:
            plan = parse_plan(path, cwd=root)
            check_plan(plan, cwd=root)
        except InputError as exc:
            raise DraftRejected(str(exc).replace(str(path), out.name)) from None
        runs = _runs(plan, config)
        if not runs:
            raise DraftRejected("the plan has no pending task (Status column 'pending')")
        settings = GateSettings(max_tokens=config.job.max_tokens, lint_timeout_s=config.plan.lint_timeout_s)
        estimate = estimate_pending(
            f"plan:{out}",
            runs,
            brief=brief_for(plan),
            lint=bool(plan.lint_commands),
            settings=settings,
            prices=PriceBook.from_config(config),
        )
    return CheckedPlan(text, replace(plan, path=out), tuple(runs), estimate)
