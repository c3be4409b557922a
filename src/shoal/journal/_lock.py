"""One job per workspace: an exclusive lock file that the OS releases when the process dies."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

from ..errors import WorkspaceBusy

__all__ = ["WorkspaceLock"]


class WorkspaceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self, command: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise WorkspaceBusy(
                f"workspace busy: {_describe(holder)}; wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"'{info['command']}' (pid {info['pid']}, since {since}) is running"
    except (ValueError, KeyError, TypeError):
        return "another shoal job is running"
