"""A batch plan as read from Markdown: phases of tasks, the rules, the checklist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._states import PlanStatus

__all__ = ["Phase", "Plan", "Task", "TableRow", "TierRule"]


@dataclass(frozen=True, slots=True)
class TableRow:
    """Where a task's row sits in the file, so its cells can be rewritten in place."""

    line: int  # 0-based index into the plan's lines
    cells: tuple[tuple[int, int], ...]  # (start, end) of each cell's text within the line, pipes excluded


@dataclass(frozen=True, slots=True)
class Task:
    number: str
    title: str
    filename: str
    model: str  # as written in the Model column; "" when blank
    status: str
    phase: int
    phase_name: str
    row: TableRow
    extra: dict[str, str] = field(default_factory=dict)  # other columns, kept as written

    @property
    def pending(self) -> bool:
        return not PlanStatus.finished(self.status)


@dataclass(frozen=True, slots=True)
class Phase:
    number: int
    name: str
    header_line: int  # the table's header row
    separator_line: int
    columns: tuple[str, ...]  # lower-case column names, in order
    tasks: tuple[Task, ...]


@dataclass(frozen=True, slots=True)
class TierRule:
    model: str
    title_contains: tuple[str, ...] = ()
    phase_contains: tuple[str, ...] = ()  # empty: any phase
    source: str = ""  # the rule as written, for the reason shown to the user


@dataclass(frozen=True, slots=True)
class Plan:
    path: Path
    format_reference: Path
    output_dir: Path
    content_rules: tuple[str, ...]
    checklist: tuple[str, ...]
    lint_commands: tuple[str, ...]  # each with a <filepath> placeholder
    registration: Path | None
    phases: tuple[Phase, ...]
    default_tier: str | None
    tier_rules: tuple[TierRule, ...]

    def tasks(self, phase: int | None = None) -> list[Task]:
        return [t for p in self.phases if phase is None or p.number == phase for t in p.tasks]
