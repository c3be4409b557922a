"""The SQLite journal under .shoal/: every call, every item's state, every agent session.

The orchestrator is the only writer. Writes go to one writer thread that commits them in
groups (WAL, synchronous=FULL): an awaited write has reached the disk when it returns, and a
burst of writes shares one fsync. Reads run on the caller's thread over their own connection.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._clock import Clock, SystemClock
from ._read import ItemCount, ItemRow, item_counts, items_of
from ._records import CallRecord, ItemStatus, RunStatus, StoredCall
from ._usage import UsageRow, iter_usage_rows, usage_rows

__all__ = ["Journal"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    command TEXT NOT NULL,
    pid INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    job TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    scope TEXT NOT NULL,
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status INTEGER,
    response TEXT,
    finish_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    queue_s REAL NOT NULL,
    error TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_ok_key ON calls(key) WHERE outcome = 'ok';
CREATE INDEX IF NOT EXISTS calls_job ON calls(job);
CREATE TABLE IF NOT EXISTS items (
    job TEXT NOT NULL,
    item TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    output TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job, item)
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    item TEXT,
    messages TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_run ON snapshots(run_id, ts);
CREATE TABLE IF NOT EXISTS retries (
    job TEXT NOT NULL,
    item TEXT NOT NULL,
    generation INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job, item)
);
CREATE TABLE IF NOT EXISTS lines (
    job TEXT NOT NULL,
    item TEXT NOT NULL,
    digest INTEGER NOT NULL,
    PRIMARY KEY (job, item)
) WITHOUT ROWID;
"""

_CALL_COLUMNS = tuple(CallRecord.__dataclass_fields__)
_INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in _CALL_COLUMNS)})"
)
_UPSERT_ITEM = """
INSERT INTO items (job, item, status, stage, output, error, attempts, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job, item) DO UPDATE SET
    status = excluded.status,
    stage = COALESCE(excluded.stage, items.stage),
    output = COALESCE(excluded.output, items.output),
    error = excluded.error,
    attempts = items.attempts + excluded.attempts,
    updated_at = excluded.updated_at
"""

_UPSERT_LINE = """
INSERT INTO lines (job, item, digest) VALUES (?, ?, ?)
ON CONFLICT (job, item) DO UPDATE SET digest = excluded.digest
"""

_Write = tuple[str, Sequence[Any]]
_Batch = tuple[list[_Write], "asyncio.Future[None] | None", "asyncio.AbstractEventLoop | None"]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class _Writer(threading.Thread):
    """Commits queued writes in groups and resolves their futures after the commit."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="shoal-journal-writer", daemon=True)
        self._conn = _connect(path)
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self.failure: BaseException | None = None

    def submit(self, batch: _Batch) -> None:
        self._queue.put(batch)

    def stop(self) -> None:
        self._queue.put(None)

    def run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            pending: list[_Batch] = []
            if first is None:
                closing = True
            else:
                pending.append(first)
            while not closing:  # group everything already queued into one transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                else:
                    pending.append(more)
            if pending:
                self._commit(pending)
        self._conn.close()

    def _commit(self, pending: list[_Batch]) -> None:
        error: BaseException | None = None
        try:
            self._conn.execute("BEGIN")
            for writes, _, _ in pending:
                for sql, params in writes:
                    self._conn.execute(sql, params)
            self._conn.execute("COMMIT")
        except BaseException as exc:  # report to every waiter; the journal is unusable now
            error = exc
            self.failure = exc
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, future, loop in pending:
            if future is not None and loop is not None:
                by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures, error)
            except RuntimeError:  # the loop closed while we were committing
                pass


def _resolve(futures: Iterable[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class Journal:
    """One workspace's journal. Create with `Journal.open(path)`; close with `await close()`."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = path
        self._clock = clock or SystemClock()
        path.parent.mkdir(parents=True, exist_ok=True)
        setup = _connect(path)
        setup.executescript(SCHEMA)
        setup.close()
        self._reader = _connect(path)
        self._reader.row_factory = sqlite3.Row
        self._writer = _Writer(path)
        self._writer.start()
        self._closed = False

    @classmethod
    def open(cls, path: Path, clock: Clock | None = None) -> Journal:
        return cls(path, clock)

    # -- writing ----------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("journal is closed")
        if self._writer.failure is not None:
            raise RuntimeError(f"journal writer failed: {self._writer.failure}")

    async def write(self, writes: list[_Write]) -> None:
        """Run the statements in one transaction; return once they are on disk."""
        self._check()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._writer.submit((writes, future, loop))
        await asyncio.shield(future)  # a cancelled caller must not lose a committed write

    def write_nowait(self, writes: list[_Write]) -> None:
        """Queue statements whose durability nobody waits for (events, progress)."""
        self._check()
        self._writer.submit((writes, None, None))

    async def begin_run(self, job: str, command: str, pid: int) -> int:
        await self.write(
            [
                (
                    "INSERT INTO runs (job, command, pid, status, started_at) VALUES (?, ?, ?, ?, ?)",
                    (job, command, pid, RunStatus.RUNNING.value, self._clock.wall()),
                )
            ]
        )
        row = self._reader.execute("SELECT max(id) FROM runs WHERE job = ?", (job,)).fetchone()
        return int(row[0])

    async def finish_run(self, run_id: int, status: RunStatus) -> None:
        await self.write(
            [
                (
                    "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                    (status.value, self._clock.wall(), run_id),
                )
            ]
        )

    @staticmethod
    def call_write(record: CallRecord) -> _Write:
        # Plain getattr: dataclasses.asdict deep-copies every field and dominated the write path.
        return (_INSERT_CALL, tuple(getattr(record, name) for name in _CALL_COLUMNS))

    def item_write(
        self,
        job: str,
        item: str,
        status: ItemStatus,
        *,
        stage: str | None = None,
        output: str | None = None,
        error: str | None = None,
        attempts: int = 0,
    ) -> _Write:
        return (_UPSERT_ITEM, (job, item, status.value, stage, output, error, attempts, self._clock.wall()))

    @staticmethod
    def line_write(job: str, item: str, digest: int) -> _Write:
        """The digest of the output line this job wrote for `item`; written with its DONE state,
        and removed (`line_forget`) when the line is no longer in the output."""
        return (_UPSERT_LINE, (job, item, digest))

    @staticmethod
    def line_forget(job: str, item: str) -> _Write:
        return ("DELETE FROM lines WHERE job = ? AND item = ?", (job, item))

    async def record_call(self, record: CallRecord) -> None:
        await self.write([self.call_write(record)])

    async def set_item(self, job: str, item: str, status: ItemStatus, **fields: Any) -> None:
        await self.write([self.item_write(job, item, status, **fields)])

    async def set_items(self, job: str, items: Iterable[str], status: ItemStatus) -> None:
        await self.write([self.item_write(job, item, status) for item in items])

    async def save_session(self, session_id: str, job: str, item: str | None, messages: Any) -> None:
        await self.write(
            [
                (
                    "INSERT INTO sessions (id, job, item, messages, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET messages = excluded.messages, "
                    "updated_at = excluded.updated_at",
                    (session_id, job, item, json.dumps(messages), self._clock.wall()),
                )
            ]
        )

    def event(self, run_id: int | None, kind: str, model: str | None = None, **detail: Any) -> None:
        self.write_nowait(
            [
                (
                    "INSERT INTO events (run_id, ts, kind, model, detail) VALUES (?, ?, ?, ?, ?)",
                    (run_id, self._clock.wall(), kind, model, json.dumps(detail) if detail else None),
                )
            ]
        )

    def snapshot(self, run_id: int, data: Any) -> None:
        """Queue a JSON snapshot of a run's live state, for views in other processes."""
        self.write_nowait(
            [
                (
                    "INSERT INTO snapshots (run_id, ts, data) VALUES (?, ?, ?)",
                    (run_id, self._clock.wall(), json.dumps(data, separators=(",", ":"))),
                )
            ]
        )

    async def start_retry(self, job: str, items: Iterable[str]) -> dict[str, int]:
        """Give each item its next retry generation and mark it pending, in one transaction.

        The generation is part of the keys of the item's calls, so they are sent afresh; the
        journal keeps the earlier attempts under their old keys. Returns item -> generation.
        """
        listed = list(dict.fromkeys(items))
        now = self._clock.wall()
        writes: list[_Write] = []
        for item in listed:
            writes.append(
                (
                    "INSERT INTO retries (job, item, generation, updated_at) VALUES (?, ?, 1, ?) "
                    "ON CONFLICT (job, item) DO UPDATE SET generation = retries.generation + 1, "
                    "updated_at = excluded.updated_at",
                    (job, item, now),
                )
            )
            writes.append(self.item_write(job, item, ItemStatus.PENDING))
        await self.write(writes)
        generations = self.retry_generations(job)
        return {item: generations[item] for item in listed}

    async def flush(self) -> None:
        await self.write([])

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        self._writer.stop()
        await asyncio.to_thread(self._writer.join)
        self._reader.close()

    # -- reading ----------------------------------------------------------------------------

    def find_call(self, key: str) -> StoredCall | None:
        row = self._reader.execute(
            "SELECT key, model, response, finish_reason, input_tokens, output_tokens, cached_tokens, "
            "cost_usd FROM calls WHERE key = ? AND outcome = 'ok' ORDER BY id DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return StoredCall(**dict(row))

    def item_states(self, job: str) -> dict[str, ItemStatus]:
        rows = self._reader.execute("SELECT item, status FROM items WHERE job = ?", (job,))
        return {row["item"]: ItemStatus(row["status"]) for row in rows}

    def items_with_status(self, job: str, status: ItemStatus) -> list[str]:
        """The items of `job` in one state (say, the failed ones to retry)."""
        rows = self._reader.execute(
            "SELECT item FROM items WHERE job = ? AND status = ?", (job, status.value)
        )
        return [row["item"] for row in rows]

    def retry_generations(self, job: str) -> dict[str, int]:
        """item -> retry generation, for the items of `job` that were ever retried."""
        rows = self._reader.execute("SELECT item, generation FROM retries WHERE job = ?", (job,))
        return {row["item"]: int(row["generation"]) for row in rows}

    def line_digests(self, job: str, items: Sequence[str]) -> dict[str, int]:
        """For a batch of items (at most a few hundred): the digest of the output line this job
        wrote for each, where it wrote one. An item with a line is done (see `line_write`)."""
        marks = ",".join("?" * len(items))
        rows = self._reader.execute(
            f"SELECT item, digest FROM lines WHERE job = ? AND item IN ({marks})", (job, *items)
        )
        return dict(rows.fetchall())

    def iter_lines(self, job: str) -> Iterator[tuple[str, int]]:
        """Every (item, line digest) of a job, streamed from the journal rather than loaded."""
        cursor = self._reader.execute("SELECT item, digest FROM lines WHERE job = ?", (job,))
        try:
            yield from cursor
        finally:
            cursor.close()

    def spent(self, job: str) -> float:
        row = self._reader.execute("SELECT COALESCE(sum(cost_usd), 0) FROM calls WHERE job = ?", (job,))
        return float(row.fetchone()[0])

    def usage(self, job: str) -> list[UsageRow]:
        """Token usage of every call of `job`, for the cost estimator's projections."""
        return usage_rows(self._reader, job)

    def iter_usage(self, job: str) -> Iterator[UsageRow]:
        """`usage`, streamed, for estimates that read the rows once."""
        return iter_usage_rows(self._reader, job)

    def load_session(self, session_id: str) -> Any | None:
        row = self._reader.execute("SELECT messages FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else json.loads(row["messages"])

    def tokens_before(self, job: str, run_id: int) -> int:
        """Tokens (in and out) the job's calls used in runs other than `run_id`."""
        row = self._reader.execute(
            "SELECT COALESCE(sum(input_tokens + output_tokens), 0) FROM calls WHERE job = ? AND run_id != ?",
            (job, run_id),
        ).fetchone()
        return int(row[0])

    def items(self, job: str) -> list[ItemRow]:
        """The job's items in input order (the read side's `items_of` on this connection)."""
        return items_of(self._reader, job)

    def item_counts(self, job: str) -> list[ItemCount]:
        """Items per (stage, status)."""
        return item_counts(self._reader, job)
