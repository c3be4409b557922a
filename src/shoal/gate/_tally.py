"""What the quality gate did in a run, for the plan's summary: drafts the linter sent back,
drafts the reviewer flagged and which of them were fixed and shipped, escalations."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._states import PlanStage

__all__ = ["GateTally"]

_NAMED = 3  # name the items when there are this few


@dataclass(slots=True)
class GateTally:
    lint_fixed: set[str] = field(default_factory=set)  # sent back by the linter, then passed it
    flagged: set[str] = field(default_factory=set)  # flagged by the reviewer at least once
    escalated: set[str] = field(default_factory=set)

    def record(self, item: str, stage: str, outcome: str, detail: Mapping[str, Any]) -> None:
        """One stage outcome (the same ones the journal's "stage" events hold)."""
        if stage == PlanStage.LINT and outcome == "pass" and int(detail.get("rounds") or 0) > 0:
            self.lint_fixed.add(item)
        elif stage == PlanStage.REVIEW and outcome == "flagged":
            self.flagged.add(item)
        elif stage == PlanStage.GATE and outcome == "escalate":
            self.escalated.add(item)

    def line(self, shipped: Collection[str], needs_review: Collection[str]) -> str:
        """ "gate: 1 lint fix, 1 flagged (token-lifecycle.md), 1 fixed, 0 escalated, 0 need review"."""
        fixed = self.flagged & set(shipped)
        return (
            f"gate: {_counted(self.lint_fixed, 'lint fix', 'lint fixes')}, "
            f"{_counted(self.flagged, 'flagged', 'flagged')}, {len(fixed)} fixed, "
            f"{_counted(self.escalated, 'escalated', 'escalated')}, "
            f"{_counted(set(needs_review), 'needs review', 'need review')}"
        )


def _counted(items: set[str], one: str, many: str) -> str:
    text = f"{len(items)} {one if len(items) == 1 else many}"
    if 0 < len(items) <= _NAMED:
        text += f" ({', '.join(sorted(items))})"
    return text
