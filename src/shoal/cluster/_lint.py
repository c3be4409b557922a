"""Plan gates' lint commands, run on Ray workers with their files shipped along.

A worker may be another machine with none of the driver's files, so each check carries what it
needs: the staged draft, and every file the lint command names on its command line (`python
lint_content.py <filepath>` ships lint_content.py), at the same paths relative to the plan's
directory. The worker writes them to a temporary directory, runs the command there exactly as the
driver would (`run_lint`), and sends the result back; the draft itself never leaves staging on the
driver. A linter that reads other files (a config it finds on its own) needs them on every node.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import ray

from ..gate import LintResult, run_lint
from ._stats import WorkerStat

__all__ = ["RemoteLint"]

_STAGED_DIR = "__staged__"


def _lint_on_worker(
    command: str, staged: str, files: dict[str, bytes], timeout_s: float
) -> tuple[LintResult, tuple[str, int]]:
    with tempfile.TemporaryDirectory(prefix="shoal-lint-") as tmp:
        root = Path(tmp)
        for relative, data in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        result = asyncio.run(run_lint(command, root / staged, cwd=root, timeout_s=timeout_s))
    node = str(ray.get_runtime_context().get_node_id())[:12]
    return result, (node, os.getpid())


def files_for(command: str, staged: Path, root: Path) -> tuple[str, dict[str, bytes]]:
    """(the staged draft's path in the shipment, {relative path: content}) for one lint command."""
    base = root.resolve()
    files: dict[str, bytes] = {}
    for token in shlex.split(command):
        if "<filepath>" in token:
            continue
        candidate = (base / token).resolve()
        if candidate.is_file() and candidate.is_relative_to(base):
            files[str(candidate.relative_to(base))] = candidate.read_bytes()
    where = f"{_STAGED_DIR}/{staged.name}"
    files[where] = staged.read_bytes()
    return where, files


class RemoteLint:
    """`run_lint`'s signature, run as a Ray task; one WorkerStat per worker process."""

    def __init__(self) -> None:
        self._task: Any = ray.remote(num_cpus=1)(_lint_on_worker)
        self.stats: dict[str, WorkerStat] = {}

    async def __call__(self, command: str, filepath: Path, *, cwd: Path, timeout_s: float) -> LintResult:
        staged, files = files_for(command, filepath, cwd)
        ref = self._task.remote(command, staged, files, timeout_s)
        try:
            result, (node, pid) = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except ray.exceptions.RayError as exc:
            return LintResult(command, False, (f"lint could not run on a Ray worker: {type(exc).__name__}",))
        name = f"lint-{node}-{pid}"
        stat = self.stats.setdefault(name, WorkerStat(name, node=node, unit="lint checks"))
        stat.done += 1
        assert isinstance(result, LintResult)
        return result
