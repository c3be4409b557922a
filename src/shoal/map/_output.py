"""An append-only JSONL output whose lines reach the disk before the journal calls them done."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import IO, Any

__all__ = ["DigestSet", "JsonlOutput", "id_digest", "line_digest"]

_TAIL_CHUNK = 1 << 16


def line_digest(line: bytes) -> int:
    """A 64-bit fingerprint of one output line (its newline excluded), as SQLite stores integers."""
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little", signed=True)


def id_digest(record_id: str) -> int:
    return line_digest(record_id.encode())


class DigestSet:
    """A set of 64-bit fingerprints (of a file's lines, of a dataset's ids) in 8 bytes each."""

    def __init__(self, digests: array[int]) -> None:
        self._digests = array("q", sorted(digests))

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest


class JsonlOutput:
    """Appends lines and fsyncs them in groups: concurrent writers share one fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._dirty = False

    def existing_ids(self) -> set[str]:
        """The ids of the records already in the file (a torn last line is cut off first). The roles
        runner counts a record done by its id; map uses the stricter `existing_lines`."""
        ids: set[str] = set()
        if not self._is_regular_file():
            return ids
        self._cut_torn_tail()
        with self.path.open("rb") as handle:
            for line in handle:
                try:
                    ids.add(str(json.loads(line)["id"]))
                except (ValueError, KeyError, TypeError):
                    continue  # not a record line; left as it is
        return ids

    def existing_lines(self) -> DigestSet:
        """Fingerprints of the lines already in the file. A torn last line (a crash mid-write) is
        cut off first. The file is read as a stream: its size does not matter."""
        digests: array[int] = array("q")
        if not self._is_regular_file():
            return DigestSet(digests)
        self._cut_torn_tail()
        with self.path.open("rb") as handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    digests.append(line_digest(line))
        return DigestSet(digests)

    def _is_regular_file(self) -> bool:
        try:
            return stat.S_ISREG(self.path.stat().st_mode)
        except FileNotFoundError:
            return False

    def _cut_torn_tail(self) -> None:
        with self.path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            end = 0
            position = size
            while position > 0:
                step = min(_TAIL_CHUNK, position)
                position -= step
                handle.seek(position)
                newline = handle.read(step).rfind(b"\n")
                if newline >= 0:
                    end = position + newline + 1
                    break
            if end < size:
                handle.truncate(end)
                os.fsync(handle.fileno())

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("ab")

    @staticmethod
    def encode(document: dict[str, Any]) -> bytes:
        """The line `append` writes for `document`, without its newline."""
        return json.dumps(document, ensure_ascii=False).encode()

    async def append(self, line: bytes) -> None:
        """Write one encoded line and return once it is on disk."""
        assert self._handle is not None, "open() first"
        self._handle.write(line + b"\n")
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
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.flush()
            os.fsync(handle.fileno())
        finally:  # a full disk fails the sync; the file is closed all the same
            handle.close()
