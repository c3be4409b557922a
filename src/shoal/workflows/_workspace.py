"""Agent workspaces: a directory under .shoal/workspaces/ seeded from the workflow's target — a
git worktree when the target is a git repository, a copy otherwise — and reused by a rerun, so a
resumed agent finds the files it wrote.

Agents get a workspace of their own, except inside `workspace()` (and verify_fix, which uses one),
where every agent shares the one the block names.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError
from ._paths import current_scope, slug

__all__ = ["Sandboxes", "SharedWorkspace", "current_shared", "workspace"]

_SKIP = shutil.ignore_patterns(".shoal", ".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache")


class Sandboxes:
    """Creates workspaces on first use, one at a time per key, off the event loop."""

    def __init__(self, root: Path, target: Path | None) -> None:
        self.root = root
        self.target = target
        self.notes: list[str] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def path_of(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    async def get(self, key: str) -> Path:
        path = self.path_of(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not path.exists():
                await asyncio.to_thread(self._create, path)
        return path

    def _create(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = self.target
        if target is None:
            path.mkdir()
            return
        if not target.is_dir():
            raise RunError(f"workflow target {target} is not a directory")
        if (target / ".git").exists() and self._worktree(target, path):
            return
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(target, partial, symlinks=True, ignore=_SKIP)
        partial.rename(path)  # all or nothing: a crash mid-copy leaves no half workspace behind

    def _worktree(self, target: Path, path: Path) -> bool:
        command = ["git", "-C", str(target), "worktree", "add", "--detach", "--quiet", str(path), "HEAD"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.notes.append(f"git worktree failed ({exc}); workspaces are copies of {target}")
            return False
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["git worktree add failed"])[-1]
            self.notes.append(f"git worktree failed ({reason}); workspaces are copies of {target}")
            shutil.rmtree(path, ignore_errors=True)
            return False
        return True


@dataclass(frozen=True, slots=True)
class SharedWorkspace:
    """A workspace that several agents (and a verify_fix oracle) share; `await path()` creates it."""

    key: str

    async def path(self) -> Path:
        from ._runtime import current_runtime

        return await current_runtime().sandboxes.get(self.key)


_shared: ContextVar[SharedWorkspace | None] = ContextVar("shoal_shared_workspace", default=None)


def current_shared() -> SharedWorkspace | None:
    return _shared.get()


@contextmanager
def workspace(name: str = "workspace") -> Iterator[SharedWorkspace]:
    """Every agent started inside the block works in one shared workspace."""
    shared = SharedWorkspace(current_scope().child(slug(name, "workspace")))
    token = _shared.set(shared)
    try:
        yield shared
    finally:
        _shared.reset(token)
