"""A batch plan's side files, checked before anything is sent: the registration file must be
JSON with a list to add entries to, and every lint command's program must exist."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..gate import lint_command_problem, registry_problem
from ..plan import Plan

__all__ = ["check_plan"]


def check_plan(plan: Plan, *, cwd: Path) -> None:
    if plan.registration is not None:
        if not _inside(cwd, plan.registration):
            raise InputError(
                f"{_where(plan, plan.registration.name)}: registration file {plan.registration} "
                "is outside the project"
            )
        problem = registry_problem(plan.registration)
        if problem:
            raise InputError(
                f"{_where(plan, plan.registration.name)}: registration file {plan.registration} {problem}"
            )
    for command in plan.lint_commands:
        problem = lint_command_problem(command, cwd=cwd)
        if problem:
            raise InputError(f"{_where(plan, command)}: lint command `{command}`: {problem}")


def _inside(base: Path, candidate: Path) -> bool:
    return candidate.resolve().is_relative_to(base.resolve())


def _where(plan: Plan, needle: str) -> str:
    """PLAN.md:LINE for the first line that mentions `needle`; the file alone if none does."""
    try:
        lines = plan.path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return str(plan.path)
    line = next((n for n, text in enumerate(lines, start=1) if needle in text), None)
    return f"{plan.path}:{line}" if line else str(plan.path)
