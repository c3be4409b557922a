"""Which model writes a task: the Model column, else the plan's rules or shoal.toml's [tiering]."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import TieringSettings
from ._model import Plan, Task, TierRule

__all__ = ["TierChoice", "choose_tier", "tier_order"]


@dataclass(frozen=True, slots=True)
class TierChoice:
    tier: str  # a model alias (or provider:model)
    reason: str


def _matches(rule: TierRule, task: Task) -> bool:
    title = task.title.lower()
    phase = task.phase_name.lower()
    if rule.title_contains and not any(word in title for word in rule.title_contains):
        return False
    return not rule.phase_contains or any(word in phase for word in rule.phase_contains)


def _rules(plan: Plan, settings: TieringSettings) -> list[TierRule]:
    configured = [
        TierRule(
            r.model,
            tuple(w.lower() for w in r.title_contains),
            tuple(w.lower() for w in r.phase_contains),
            source=f"shoal.toml [tiering] rule for {r.model}",
        )
        for r in settings.rules
    ]
    return configured + list(plan.tier_rules)


def choose_tier(task: Task, plan: Plan, settings: TieringSettings) -> TierChoice:
    if task.model.strip():
        return TierChoice(task.model.strip(), "Model column of the plan")
    for rule in _rules(plan, settings):
        if _matches(rule, task):
            words = "/".join(rule.title_contains)
            where = f" in a '{'/'.join(rule.phase_contains)}' phase" if rule.phase_contains else ""
            return TierChoice(rule.model, f"title contains '{words}'{where} ({rule.source})")
    default = plan.default_tier or settings.default
    if default:
        origin = "plan's Model Selection Rules" if plan.default_tier else "shoal.toml [tiering]"
        return TierChoice(default, f"default tier ({origin})")
    return TierChoice("rehearsal", "no Model column, rule or default: the rehearsal provider")


def tier_order(plan: Plan, settings: TieringSettings) -> list[str]:
    """Cheapest first: escalation moves one step along this list."""
    if settings.order:
        return list(settings.order)
    order: list[str] = []
    for name in [plan.default_tier or settings.default, *(r.model for r in _rules(plan, settings))]:
        if name and name not in order:
            order.append(name)
    return order
