"""Markdown batch plans: parse, tier, run through the gate, write statuses back."""

from .._states import PlanMode, PlanStage, PlanStatus
from ._estimate import estimate_pending, estimate_plan, gate_calls, plan_observed
from ._model import Phase, Plan, Task, TierRule
from ._parse import parse_plan
from ._runner import PlanResult, PlanRun, brief_for
from ._stages import STAGES, GateSettings, TaskRun
from ._tiering import TierChoice, choose_tier, tier_order
from ._write import StatusUpdate, write_statuses

__all__ = [
    "STAGES",
    "GateSettings",
    "Phase",
    "Plan",
    "PlanMode",
    "PlanResult",
    "PlanRun",
    "PlanStage",
    "PlanStatus",
    "StatusUpdate",
    "Task",
    "TaskRun",
    "TierChoice",
    "TierRule",
    "brief_for",
    "choose_tier",
    "estimate_pending",
    "estimate_plan",
    "gate_calls",
    "parse_plan",
    "plan_observed",
    "tier_order",
    "write_statuses",
]
