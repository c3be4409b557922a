"""What the user sees before a draft is written — the script, the assessment, the estimate and the
seed's three questions — and the y/N that decides."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from rich.console import Console
from rich.syntax import Syntax

from ..errors import UsageError
from ._assess import Assessment
from ._questions import Answer

__all__ = ["approve", "assessment_lines", "render_draft", "require_terminal"]


def assessment_lines(assessment: Assessment) -> list[str]:
    languages = ", ".join(f"{name} {count}" for name, count in assessment.languages[:6]) or "no files"
    more = f" (+{assessment.more_files} not listed)" if assessment.more_files else ""
    lines = [
        f"Target {assessment.target}: {len(assessment.files)} file(s){more}, "
        f"{assessment.total_bytes:,} bytes ({languages})",
        f"  Code files in scope: {len(assessment.in_scope)}"
        + (f" (the task names {', '.join(assessment.named)})" if assessment.named else ""),
    ]
    if assessment.oracles:
        lines.extend(f"  Oracle: `{o.command}` ({o.source})" for o in assessment.oracles)
    else:
        lines.append("  Oracle: none found")
    return lines


def _answer_lines(answers: Iterable[Answer]) -> list[str]:
    lines = []
    for number, answer in enumerate(answers, start=1):
        verdict = "yes" if answer.yes else f"no -> {answer.if_no}"
        lines.append(f"{number}. {answer.question} {verdict}")
        lines.append(f"   ({answer.because})")
    return lines


def render_draft(
    console: Console,
    *,
    kind: str,
    text: str,
    title: str,
    assessment: Assessment,
    answers: list[Answer],
    summary: list[str],
) -> None:
    """The draft with syntax highlighting, then what it was made from and what it will cost."""
    lexer = "markdown" if kind == "plan" else "python"
    console.rule(title)
    console.print(Syntax(text, lexer, line_numbers=True, word_wrap=True))
    console.rule()
    for line in [
        *assessment_lines(assessment),
        *summary,
        "The seed's three questions:",
        *_answer_lines(answers),
    ]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def require_terminal(
    *, yes: bool, stdin: TextIO | None = None, is_tty: Callable[[], bool] | None = None
) -> None:
    """Before anything is sent: without --yes somebody must be there to approve."""
    if yes:
        return
    stdin = stdin or sys.stdin
    interactive = is_tty() if is_tty is not None else stdin.isatty()
    if not interactive:
        raise UsageError("no terminal to approve the draft on: pass --yes to write it without asking")


def approve(question: str, *, yes: bool, stdin: TextIO | None = None, out: TextIO | None = None) -> bool:
    if yes:
        return True
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")
