from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shoal.errors import WorkspaceBusy
from shoal.journal import CallRecord, ItemStatus, Journal, RunStatus, WorkspaceLock


def record(key: str, outcome: str = "ok", response: str = "answer") -> CallRecord:
    return CallRecord(
        key=key,
        job="j",
        run_id=1,
        scope="item-1",
        stage="map",
        model="openai:m",
        outcome=outcome,
        attempt=1,
        response=response,
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25,
    )


async def test_written_calls_and_items_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    journal = Journal.open(path)
    run_id = await journal.begin_run("j", "shoal map x", 123)
    await journal.record_call(record("k1", outcome="transient", response=""))
    await journal.record_call(record("k1"))
    await journal.set_item("j", "item-1", ItemStatus.DONE, output="out.jsonl", attempts=1)
    await journal.finish_run(run_id, RunStatus.DONE)
    await journal.close()

    # Read back with plain sqlite3: the rows are on disk, not in a cache.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        outcomes = [row[0] for row in conn.execute("SELECT outcome FROM calls ORDER BY id")]
        assert outcomes == ["transient", "ok"]
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "done"

    again = Journal.open(path)
    stored = again.find_call("k1")
    assert stored is not None and stored.response == "answer" and stored.cost_usd == 0.25
    assert again.find_call("missing") is None
    assert again.item_states("j") == {"item-1": ItemStatus.DONE}
    assert again.spent("j") == 0.5
    await again.close()


async def test_sessions_round_trip(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    history = [{"role": "user", "content": "write"}, {"role": "assistant", "content": "draft"}]
    await journal.save_session("task-7/writer", "j", "task-7", history)
    assert journal.load_session("task-7/writer") == history
    await journal.close()


async def test_many_concurrent_writes_are_all_committed(tmp_path: Path) -> None:
    import asyncio

    journal = Journal.open(tmp_path / "j.db")
    await asyncio.gather(*(journal.record_call(record(f"k{i}")) for i in range(500)))
    assert len(journal.usage("j")) == 500
    await journal.close()


def test_second_job_in_a_busy_workspace_is_refused(tmp_path: Path) -> None:
    first = WorkspaceLock(tmp_path / ".shoal" / "lock")
    first.acquire("shoal map a.jsonl --out b.jsonl")
    with pytest.raises(WorkspaceBusy, match="shoal map a.jsonl --out b.jsonl"):
        WorkspaceLock(tmp_path / ".shoal" / "lock").acquire("shoal map other")
    first.release()
    again = WorkspaceLock(tmp_path / ".shoal" / "lock")
    again.acquire("shoal map other")
    again.release()
