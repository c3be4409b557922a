"""What the drafting model is told: a compact reference of shoal's primitives (or the plan
format), the assessment, and caps sized to it; and what a refused draft goes back with."""

from __future__ import annotations

from dataclasses import dataclass

from ..providers import Message
from ._assess import Assessment
from ._safety import ALLOWED_IMPORTS

__all__ = ["DraftCaps", "feedback", "first_messages", "size_caps"]

_LISTED_FILES = 150  # files named in the prompt; the rest are counted
_REQUESTS_PER_AGENT = 3
_TYPICAL_PROMPT = 2_000

WORKFLOW_REFERENCE = """\
You write shoal workflow scripts: Python files that shoal runs as one job (`shoal run FILE.py`).
Primitives, all imported with `from shoal import ...`:
- `@workflow(name=, max_agents=, target=, commands=, max_tokens=, model=)` on exactly one `async def`
  entry point. Every parameter of the entry point needs a default. `target`: the directory agent
  workspaces are copied from, relative to the script. `commands`: what the agents' `run` tool may
  start (e.g. ["python -m pytest"]). `max_agents`: agents per run; `max_tokens`: tokens for the job.
  Its return value (text) is the run's report.
- `await agent(prompt, *, model=None, schema=None, system=None, tools=(), reference=None, name=None,
  max_tokens=None)` runs one isolated model session; with `schema` (a pydantic model, `list[Model]`)
  it returns a validated instance, else text. Tools: "read_file", "list_files", "write_file", "run".
- `await parallel(items, fn)` runs `fn(item)` for every item (an async function or lambda returning
  an awaitable) and returns the results in order; a failed item is None (filter them out).
- `await pipeline(items, stage1, stage2, ...)`: each item flows through the stages on its own.
- `with phase("name"):` groups work into a named phase (scan, implement, verify, report, ...).
- `await verify_fix(implement, *, verify, fix, oracle=None, max_rounds=3)`: implement, then an
  independent verifier attacks the result and a fixer fixes only the findings; `oracle` is a
  shell command (exit 0 = pass) run in the loop's workspace, e.g. the project's test command.
  Returns a FixOutcome with `.result`, `.findings`, `.stopped` ("clean", "oracle-passed", "max-rounds").
- `with workspace("name"):` agents inside share one workspace. `log(message)` prints a line.
Rules:
- Import only: {imports}. No os, sys, subprocess, pathlib file access, open(), eval/exec, getattr,
  dunder attributes or string annotations. Agents touch files only through their tools.
- Write the list of files to work on into the script as a constant (they are listed below).
- Answer with the whole script in one ```python block and nothing else of substance.
"""

PLAN_REFERENCE = """\
You write shoal batch plans: Markdown files that shoal runs with `shoal run PLAN.md`; each task
writes one file through a quality gate (generate, self-check, lint, review, fix, ship).
Sections, in this order, with these exact headings:
## Format Reference      (one line: the path of an existing finished example file)
## Output Directory      (one line: the folder the files are written to, inside the project)
## Content Rules         (bullets)
## Validation Checklist  (numbered; a line with a backticked command containing <filepath> is a
                          lint command run on each file, e.g. `python -m pytest <filepath>`;
                          the program must exist)
## Phase 1: Name         (a table: | # | Title | Filename | Model | Status |, Status "pending";
                          Filename relative to the output directory, unique)
## Model Selection Rules (optional: "- Default: ALIAS")
Paths are relative to the directory shoal runs in. Answer with the whole plan in one ```markdown
block and nothing else of substance.
"""


@dataclass(frozen=True, slots=True)
class DraftCaps:
    """Caps the drafted workflow must carry, sized to the assessment."""

    max_agents: int
    max_tokens: int  # token budget for the whole job

    def line(self) -> str:
        return f"max_agents={self.max_agents}, max_tokens={self.max_tokens}"


def size_caps(assessment: Assessment, *, answer_tokens: int) -> DraftCaps:
    """Four agents a file in scope (implement, verify, fix, one more round) plus four for the rest
    (a plan, a synthesis), each making a few requests of a typical prompt and a full answer: a
    budget the work fits in, with no room for a runaway fan-out."""
    files = max(1, len(assessment.in_scope))
    agents = min(1_000, 4 * files + 4)
    tokens = agents * _REQUESTS_PER_AGENT * (_TYPICAL_PROMPT + answer_tokens)
    return DraftCaps(agents, tokens)


def _assessment_text(assessment: Assessment, target_for_script: str) -> str:
    files = assessment.files
    languages = ", ".join(f"{name} {count}" for name, count in assessment.languages) or "none"
    lines = [
        f"Target directory: {target_for_script} ({len(files)} file(s), {assessment.total_bytes:,} bytes; "
        f"{languages})",
    ]
    if assessment.oracles:
        lines.append(
            "Oracle (test commands found): "
            + "; ".join(f"`{o.command}` ({o.source})" for o in assessment.oracles)
        )
    else:
        lines.append("Oracle: none found; the user accepted drafting without one.")
    if assessment.named:
        lines.append("The task names: " + ", ".join(assessment.named))
    scope = assessment.in_scope
    lines.append(f"Code files in scope ({len(scope)}):")
    lines.extend(f"- {f.path} ({f.size:,} bytes, {f.language})" for f in scope[:_LISTED_FILES])
    if len(scope) > _LISTED_FILES:
        lines.append(f"- ... and {len(scope) - _LISTED_FILES} more")
    others = [f for f in files if f not in scope]
    if others:
        shown = ", ".join(f.path for f in others[:40])
        lines.append(f"Other files ({len(others) + assessment.more_files}): {shown}")
    return "\n".join(lines)


def first_messages(
    task: str,
    assessment: Assessment,
    *,
    kind: str,
    caps: DraftCaps,
    target_for_script: str,
    models: list[str],
) -> tuple[Message, ...]:
    """The system reference and the task, as the first request of a draft."""
    imports = ", ".join(sorted(ALLOWED_IMPORTS))
    aliases = ", ".join(models) or "none configured (leave model unset)"
    if kind == "plan":
        system = PLAN_REFERENCE
        ask = (
            f"Write the batch plan for this task.\nTask: {task}\n\n"
            f"{_assessment_text(assessment, target_for_script)}\n\n"
            f"Model aliases you may use: {aliases}."
        )
    else:
        system = WORKFLOW_REFERENCE.format(imports=imports)
        oracle = assessment.oracles[0].command if assessment.oracles else None
        ask = (
            f"Write the workflow script for this task.\nTask: {task}\n\n"
            f"{_assessment_text(assessment, target_for_script)}\n\n"
            f'Use @workflow(target="{target_for_script}", {caps.line()}'
            + (f', commands=["{oracle}"]' if oracle else "")
            + ")"
            + (f' and verify_fix(..., oracle="{oracle}") where files change.' if oracle else ".")
            + f"\nModel aliases you may use: {aliases}."
        )
    return (Message("system", system, cache=True), Message("user", ask))


def feedback(error: str, kind: str) -> str:
    """The user turn that sends a refused draft back to its author."""
    what = "plan" if kind == "plan" else "script"
    fence = "markdown" if kind == "plan" else "python"
    return (
        f"Your draft was refused: {error}\n"
        f"Fix that and send the whole corrected {what} again, in one ```{fence} block."
    )
