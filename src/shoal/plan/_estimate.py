"""A plan's cost: what each task's pass through the gate calls, for the job's one estimator.

Escalations and fixes are part of the expected figure: where the journal holds calls of this plan
(an earlier phase, an earlier run), at the rates observed; else at default rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .._tokens import estimate_tokens
from ..estimate import (
    DEFAULT_OUTPUT_SHARE,
    CallKind,
    Estimate,
    Observed,
    basis_of,
    expected_unit_cost,
    item_of,
    worst_unit_cost,
)
from ..journal import UsageRow, read_usage
from ..pricing import PriceBook
from ._stages import GateSettings, TaskRun

__all__ = [
    "DEFAULT_ESCALATION_RATE",
    "DEFAULT_FIX_CALLS",
    "estimate_plan",
    "estimate_pending",
    "gate_calls",
    "plan_observed",
]

DEFAULT_FIX_CALLS = 0.3  # writer fix calls per pass (lint, metadata, review flags) before any are seen
DEFAULT_ESCALATION_RATE = 0.1  # share of escalating tasks before any are seen

_PROMPT_FRAME = 60  # the task's own prompt beside the shared brief
_TURN = 200  # a fix request's text beside the draft it follows


def gate_calls(brief: str, settings: GateSettings, *, lint: bool) -> list[CallKind]:
    """The calls one pass of one task makes: draft, self-check, fixes, reviews."""
    answer = settings.max_tokens
    prompt = estimate_tokens(brief) + _PROMPT_FRAME
    # The writer keeps one session: each turn's prompt carries the answers before it.
    step = int(answer * DEFAULT_OUTPUT_SHARE) + _TURN
    worst_step = answer + _TURN
    lint_fixes = 2 * settings.lint_rounds if lint else 0  # in the lint stage and after the review fix
    return [
        CallKind("generate", prompt, answer),
        CallKind("self-check", prompt + step, answer, worst_input_tokens=prompt + worst_step),
        CallKind(
            "fix",
            prompt + 2 * step,
            answer,
            expected_calls=DEFAULT_FIX_CALLS,
            worst_calls=lint_fixes + 2,  # + one metadata fix and one review fix
            worst_input_tokens=prompt + 2 * worst_step,
            worst_input_step=worst_step,
        ),
        CallKind(
            "review",
            step + _TURN,
            settings.review_max_tokens,
            expected_calls=1 + DEFAULT_FIX_CALLS,
            worst_calls=2,
            worst_input_tokens=worst_step + _TURN,
        ),
    ]


def _pass_of(job: str, row: UsageRow) -> tuple[str, str] | None:
    """Plan calls are scoped "<job>#<file>/writer/<tier>" or "<job>#<file>/review/<tier>/<n>"."""
    item = item_of(job, row.scope)
    if item is None:
        return None
    parts = item.split("/")
    if len(parts) < 3:
        return None
    return f"{parts[0]}/{parts[2]}", parts[0]  # a pass is a task on one tier; the task is its group


def plan_observed(job: str, rows: Iterable[UsageRow]) -> Observed:
    return Observed.from_rows(
        rows, unit_of=lambda row: _pass_of(job, row), kind_of=lambda stage: stage.rpartition("/")[2]
    )


def estimate_plan(
    runs: Sequence[TaskRun],
    calls: Sequence[CallKind],
    prices: PriceBook,
    observed: Observed | None = None,
    *,
    spent_usd: float = 0.0,
) -> Estimate:
    """Expected and worst cost of `runs`, each with its escalation."""
    if observed is not None and not observed.empty:
        escalation = observed.units_per_group - 1.0
        basis = basis_of(observed, "task pass(es)") + f", {escalation:.0%} escalated"
    else:
        escalation = DEFAULT_ESCALATION_RATE
        basis = (
            basis_of(None, "") + f", {DEFAULT_FIX_CALLS:g} fix call(s) a task, {escalation:.0%} escalating"
        )
    expected = worst = 0.0
    for run in runs:
        price = prices.price(run.model.key)
        expected += expected_unit_cost(calls, price, observed)
        worst += worst_unit_cost(calls, price)
        if run.escalation is not None:
            following = prices.price(run.escalation[1].key)
            expected += escalation * expected_unit_cost(calls, following, observed)
            worst += worst_unit_cost(calls, following)
    return Estimate(expected, worst, basis, spent_usd=spent_usd)


def estimate_pending(
    job: str,
    runs: Sequence[TaskRun],
    *,
    brief: str,
    lint: bool,
    settings: GateSettings,
    prices: PriceBook,
    journal: Path | None = None,
) -> Estimate:
    """The pre-launch estimate of a plan's pending tasks, for `shoal run` and `shoal draft` alike:
    the gate's calls priced with the job's one price book, at the rates the journal observed for
    this plan (`job`) when it holds any, else at default rates."""
    calls = gate_calls(brief, settings, lint=lint)
    if journal is None:
        return estimate_plan(runs, calls, prices)
    observed = plan_observed(job, read_usage(journal, job))
    return estimate_plan(runs, calls, prices, observed, spent_usd=observed.cost_usd)
