"""Read a Markdown batch plan. Mistakes are InputErrors that name the file and line."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ._model import Phase, Plan, TableRow, Task, TierRule

__all__ = ["parse_plan", "split_row"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_PHASE = re.compile(r"^phase\s+(\d+)\s*(?:[:\-\u2013\u2014]\s*(.*))?$", re.IGNORECASE)
_BACKTICKS = re.compile(r"`([^`]+)`")
_JSON_PATH = re.compile(r"`?([\w./\\-]+\.json)`?")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_QUOTED = re.compile(
    r"[\"'\u201c\u201d\u2018\u2019]([^\"'\u201c\u201d\u2018\u2019]+)[\"'\u201c\u201d\u2018\u2019]"
)
REQUIRED_COLUMNS = ("#", "title", "filename", "model", "status")


def split_row(line: str) -> list[tuple[int, int]]:
    """(start, end) spans of the cells of a `| a | b |` row, pipes excluded; `\\|` is not a separator."""
    pipes = [i for i, ch in enumerate(line) if ch == "|" and (i == 0 or line[i - 1] != "\\")]
    if len(pipes) < 2:
        return []
    return [(pipes[i] + 1, pipes[i + 1]) for i in range(len(pipes) - 1)]


class _Reader:
    def __init__(self, path: Path, lines: list[str], cwd: Path) -> None:
        self.path = path
        self.lines = lines
        self.cwd = cwd

    def fail(self, line: int, message: str) -> InputError:
        return InputError(f"{self.path}:{line + 1}: {message}")

    def sections(self) -> list[tuple[int, str, list[int]]]:
        """(heading line, heading text, body line indexes) for every heading."""
        found: list[tuple[int, str, list[int]]] = []
        fence = False
        for index, raw in enumerate(self.lines):
            text = raw.rstrip("\r\n")
            if text.lstrip().startswith("```"):
                fence = not fence
            match = None if fence else _HEADING.match(text)
            if match:
                found.append((index, match.group(2).strip(), []))
            elif found:
                found[-1][2].append(index)
        return found

    def text(self, index: int) -> str:
        return self.lines[index].rstrip("\r\n")

    def first_value(self, heading: int, body: list[int]) -> tuple[int, str]:
        for index in body:
            value = self.text(index).strip().strip("`").strip()
            if value:
                return index, value
        raise self.fail(heading, "section is empty")

    def items(self, body: list[int], pattern: re.Pattern[str]) -> list[tuple[int, str]]:
        """List items; lines that continue an item (no marker) are joined to it."""
        items: list[tuple[int, str]] = []
        for index in body:
            text = self.text(index)
            match = pattern.match(text)
            if match:
                items.append((index, match.group(1).strip()))
            elif text.strip() and items and not text.lstrip().startswith("|"):
                items[-1] = (items[-1][0], f"{items[-1][1]} {text.strip()}")
        return items

    def table(self, heading: int, body: list[int], number: int, name: str) -> Phase:
        rows = [i for i in body if self.text(i).lstrip().startswith("|")]
        if len(rows) < 2:
            raise self.fail(heading, f"phase {number} has no task table")
        header_line, separator_line = rows[0], rows[1]
        header = self.text(header_line)
        columns = tuple(header[a:b].strip().lower() for a, b in split_row(header))
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise self.fail(header_line, f"task table lacks column(s): {', '.join(missing)}")
        tasks: list[Task] = []
        for index in rows[2:]:
            line = self.text(index)
            spans = split_row(line)
            if len(spans) != len(columns):
                raise self.fail(index, f"row has {len(spans)} cells, the header has {len(columns)}")
            cells = {col: line[a:b].strip() for col, (a, b) in zip(columns, spans, strict=True)}
            tasks.append(
                Task(
                    number=cells["#"],
                    title=cells["title"],
                    filename=cells["filename"].strip("`"),
                    model=cells["model"],
                    status=cells["status"],
                    phase=number,
                    phase_name=name,
                    row=TableRow(index, tuple(spans)),
                    extra={c: v for c, v in cells.items() if c not in REQUIRED_COLUMNS},
                )
            )
        return Phase(number, name, header_line, separator_line, columns, tuple(tasks))


def _tier_rules(reader: _Reader, body: list[int]) -> tuple[str | None, list[TierRule]]:
    default: str | None = None
    rules: list[TierRule] = []
    for _, item in reader.items(body, _BULLET):
        lower = item.lower()
        if lower.startswith("default:"):
            default = (
                item.split(":", 1)[1].split()[0].strip(" .,;()") if item.split(":", 1)[1].split() else None
            )
            continue
        match = re.match(r"use\s+(\S+)\s+when\s*:?\s*(.*)", item, re.IGNORECASE)
        if not match:
            continue
        model, condition = match.group(1).strip("`*"), match.group(2)
        first_clause = re.split(r",\s*or\s+", condition, maxsplit=1)[0]
        keywords = (
            tuple(k.lower() for k in _QUOTED.findall(first_clause)) if "title" in first_clause.lower() else ()
        )
        phase_match = re.search(r"in\s+(?:an?\s+)?(\w+)\s+phase", first_clause, re.IGNORECASE)
        phases = (phase_match.group(1).lower(),) if phase_match else ()
        if keywords:
            rules.append(TierRule(model, keywords, phases, source=f"Use {model} when: {condition}"))
    return default, rules


def _inside(base: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(base.resolve())
    except ValueError:
        return False
    return True


def parse_plan(path: Path, *, cwd: Path | None = None) -> Plan:  # noqa: C901 - one pass over the sections
    cwd = cwd or Path.cwd()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: plan not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the plan: {exc}") from None
    reader = _Reader(path, raw.splitlines(keepends=True), cwd)
    format_reference: Path | None = None
    output_dir: Path | None = None
    rules: list[str] = []
    checklist: list[str] = []
    lint: list[str] = []
    registration: Path | None = None
    phases: list[Phase] = []
    default_tier: str | None = None
    tier_rules: list[TierRule] = []
    for heading, title, body in reader.sections():
        key = title.lower().strip()
        phase = _PHASE.match(title)
        if key == "format reference":
            line, value = reader.first_value(heading, body)
            format_reference = cwd / value
            if not format_reference.is_file():
                raise reader.fail(line, f"format reference '{value}' not found")
        elif key == "output directory":
            line, value = reader.first_value(heading, body)
            output_dir = cwd / value
            if not _inside(cwd, output_dir):
                raise reader.fail(line, f"output directory '{value}' is outside the project ({cwd})")
        elif key == "content rules":
            rules = [text for _, text in reader.items(body, _BULLET)]
        elif key == "validation checklist":
            for _, text in reader.items(body, _NUMBERED):
                checklist.append(text)
                commands = [c for c in _BACKTICKS.findall(text) if "<filepath>" in c]
                lint.extend(commands)
                json_match = _JSON_PATH.search(text) if not commands else None
                if json_match and registration is None:
                    registration = cwd / json_match.group(1)
        elif phase:
            phases.append(reader.table(heading, body, int(phase.group(1)), (phase.group(2) or "").strip()))
        elif key == "model selection rules":
            default_tier, tier_rules = _tier_rules(reader, body)
    if format_reference is None:
        raise InputError(f"{path}: no '## Format Reference' section")
    if output_dir is None:
        raise InputError(f"{path}: no '## Output Directory' section")
    if not phases:
        raise InputError(f"{path}: no '## Phase N: Name' section with a task table")
    seen: dict[str, int] = {}
    for phase_ in phases:
        for task in phase_.tasks:
            line = task.row.line
            if not task.filename:
                raise reader.fail(line, "task has no filename")
            target = output_dir / task.filename
            if Path(task.filename).is_absolute() or not _inside(output_dir, target):
                raise reader.fail(line, f"filename '{task.filename}' escapes the output directory")
            if task.filename in seen:
                raise reader.fail(
                    line, f"duplicate filename '{task.filename}' (first on line {seen[task.filename]})"
                )
            seen[task.filename] = line + 1
    return Plan(
        path=path,
        format_reference=format_reference,
        output_dir=output_dir,
        content_rules=tuple(rules),
        checklist=tuple(checklist),
        lint_commands=tuple(lint),
        registration=registration,
        phases=tuple(phases),
        default_tier=default_tier,
        tier_rules=tuple(tier_rules),
    )
