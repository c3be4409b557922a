"""An append-only JSONL output whose lines reach the disk before the journal calls them done."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["JsonlOutput"]


class JsonlOutput:
    """Appends lines and fsyncs them in groups: concurrent writers share one fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._dirty = False

    def existing_ids(self) -> set[str]:
        """Ids already written. A torn last line (a crash mid-write) is cut off first."""
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(end)
                os.fsync(handle.fileno())
        ids: set[str] = set()
        for line in _lines(data[:end]):
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours; left as it is
        return ids

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("ab")

    async def append(self, document: dict[str, Any]) -> None:
        assert self._handle is not None, "open() first"
        self._handle.write(json.dumps(document, ensure_ascii=False).encode() + b"\n")
        self._dirty = True
        await self._synced()

    async def _synced(self) -> None:
        # Wait for a sync that starts after our write: join the next one if one is running.
        while self._dirty:
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = asyncio.ensure_future(self._sync())
            await asyncio.shield(self._sync_task)

    async def _sync(self) -> None:
        assert self._handle is not None
        self._dirty = False
        self._handle.flush()
        await asyncio.to_thread(os.fsync, self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


def _lines(data: bytes) -> Iterator[bytes]:
    for line in data.split(b"\n"):
        if line.strip():
            yield line
