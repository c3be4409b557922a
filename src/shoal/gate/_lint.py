"""Lint commands from the plan's checklist, run on a staged file; only violations come back."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LintResult", "lint_command_problem", "run_lint"]

MAX_VIOLATION_LINES = 10


@dataclass(frozen=True, slots=True)
class LintResult:
    command: str
    passed: bool
    violations: tuple[str, ...]  # at most MAX_VIOLATION_LINES lines of the linter's output

    @property
    def signature(self) -> str:
        """What the failure looks like, for spotting the same failure across items."""
        return self.violations[0].split(":", 2)[-1].strip() if self.violations else ""


def _search_path() -> str:
    # "python" in a plan means the interpreter running shoal, also inside a virtualenv.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def lint_command_problem(command: str, *, cwd: Path) -> str | None:
    """Why `command` could not start (checked before a job starts), or None."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot be split into arguments: {exc}"
    if not argv:
        return "is empty"
    program = argv[0]
    if os.sep in program:
        found = (cwd / program) if not Path(program).is_absolute() else Path(program)
        if not (found.is_file() and os.access(found, os.X_OK)):
            return f"program '{program}' not found or not executable"
    elif shutil.which(program, path=_search_path()) is None:
        return f"program '{program}' not found on PATH"
    script = argv[1] if len(argv) > 1 else ""
    if Path(program).name.startswith("python") and script.endswith(".py") and "<filepath>" not in script:
        if not (cwd / script).is_file():
            return f"script '{script}' not found"
    return None


async def run_lint(command: str, filepath: Path, *, cwd: Path, timeout_s: float = 120.0) -> LintResult:
    argv = [part.replace("<filepath>", str(filepath)) for part in shlex.split(command)]
    env = {**os.environ, "PATH": _search_path()}
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        return LintResult(command, False, (f"cannot run lint command: {exc}",))
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return LintResult(command, False, (f"lint command timed out after {timeout_s:g}s",))
    lines = [line.rstrip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    lines = [line.replace(str(filepath), filepath.name) for line in lines]
    if process.returncode == 0:
        return LintResult(command, True, ())
    return LintResult(
        command, False, tuple(lines[:MAX_VIOLATION_LINES]) or (f"exit code {process.returncode}",)
    )
