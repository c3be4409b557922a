"""Lint commands from the plan's checklist, run on a staged file; only violations come back."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LintResult", "run_lint"]

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


async def run_lint(command: str, filepath: Path, *, cwd: Path, timeout_s: float = 120.0) -> LintResult:
    argv = [part.replace("<filepath>", str(filepath)) for part in shlex.split(command)]
    # "python" in a plan means the interpreter running shoal, also inside a virtualenv.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
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
