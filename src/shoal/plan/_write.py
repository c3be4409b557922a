"""Write task statuses back into the plan, changing nothing else in the file.

Only the Status cell (and a Notes cell, the column added to a table when a note is first needed)
of the rows concerned are rewritten; every other byte of the file stays as it was. The file is
replaced atomically, so a crash leaves either the old plan or the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gate import write_atomic
from ._model import Phase, Plan
from ._parse import split_row

__all__ = ["StatusUpdate", "write_statuses"]


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    filename: str
    status: str
    note: str | None = None


def _replace_cell(line: str, index: int, value: str) -> str:
    start, end = split_row(line)[index]
    cell = line[start:end]
    if not cell.strip():
        return line[:start] + f" {value} " + line[end:]
    lead = cell[: len(cell) - len(cell.lstrip())] or " "
    trail = cell[len(cell.rstrip()) :] or " "
    return line[:start] + lead + value + trail + line[end:]


def _append_cell(line: str, value: str) -> str:
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    return f"{body} {value} |{ending}"


def _columns(line: str) -> list[str]:
    return [line[a:b].strip().lower() for a, b in split_row(line)]


def _ensure_notes(lines: list[str], phase: Phase) -> int:
    """Index of the Notes column of this phase's table, adding the column if it is missing."""
    columns = _columns(lines[phase.header_line])
    if "notes" in columns:
        return columns.index("notes")
    lines[phase.header_line] = _append_cell(lines[phase.header_line], "Notes")
    lines[phase.separator_line] = _append_cell(lines[phase.separator_line], "-----").replace(
        " ----- |", "-------|"
    )
    for task in phase.tasks:
        lines[task.row.line] = _append_cell(lines[task.row.line], "")
    return len(columns)


def _clean(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def write_statuses(plan: Plan, updates: list[StatusUpdate]) -> None:
    path = plan.path
    with path.open(encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    by_file = {u.filename: u for u in updates}
    for phase in plan.phases:
        touched = [t for t in phase.tasks if t.filename in by_file]
        if not touched:
            continue
        status_index = _columns(lines[phase.header_line]).index("status")
        needs_notes = any(by_file[t.filename].note for t in touched)
        columns = _columns(lines[phase.header_line])
        notes_index = _ensure_notes(lines, phase) if needs_notes or "notes" in columns else None
        for task in touched:
            update = by_file[task.filename]
            line = _replace_cell(lines[task.row.line], status_index, update.status)
            if notes_index is not None and (update.note is not None or update.status == "complete"):
                line = _replace_cell(line, notes_index, _clean(update.note or ""))
            lines[task.row.line] = line
    write_atomic(path, "".join(lines))
