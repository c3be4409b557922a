"""What a `shoal map` rerun counts as done: only lines this job wrote that are still in OUT."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from helpers import invoke_shoal, output_ids, write_records

REHEARSAL_TOML = """
[rehearsal]
latency_s = 0

[limits."rehearsal:echo"]
rpm = 1000000
tpm = 100000000
"""

ARGV = ["map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", "rehearsal:echo", "--out", "out.jsonl"]


def _map(workspace: Path) -> subprocess.CompletedProcess[str]:
    result = invoke_shoal(workspace, *ARGV)
    assert result.returncode == 0, result.stderr
    return result


def _summary(stderr: str) -> str:
    # the run's summary, not the launch estimate that also starts with "map: "
    return next(line for line in stderr.splitlines() if line.startswith("map: ") and " done " in line)


def _sent(workspace: Path) -> int:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])


def test_foreign_line_with_a_record_id_does_not_count_as_done(workspace: Path) -> None:
    (workspace / "shoal.toml").write_text(REHEARSAL_TOML)
    ids = write_records(workspace / "in.jsonl", 6)
    foreign = json.dumps({"id": ids[2], "output": "written by hand, not by shoal"})
    (workspace / "out.jsonl").write_text(foreign + "\n")

    result = _map(workspace)

    assert "6/6 done (6 now, 0 earlier)" in _summary(result.stderr)
    lines = (workspace / "out.jsonl").read_text().splitlines()
    assert lines[0] == foreign  # left as it was
    assert sorted(output_ids(workspace / "out.jsonl")) == sorted([ids[2], *ids])
    assert _sent(workspace) == 6

    again = _map(workspace)  # now every record has a line shoal wrote: nothing to do

    assert "6/6 done (0 now, 6 earlier)" in _summary(again.stderr)
    assert (workspace / "out.jsonl").read_text().splitlines() == lines
    assert _sent(workspace) == 6


def test_a_line_removed_from_out_is_written_again_from_the_journal(workspace: Path) -> None:
    (workspace / "shoal.toml").write_text(REHEARSAL_TOML)
    write_records(workspace / "in.jsonl", 5)
    _map(workspace)
    out = workspace / "out.jsonl"
    lines = out.read_text().splitlines()
    removed = lines.pop(1)
    out.write_text("\n".join(lines) + "\n")

    result = _map(workspace)

    assert "5/5 done (1 now, 4 earlier)" in _summary(result.stderr)
    assert "0 requests sent, 1 replayed" in result.stderr  # the answer came from the journal
    assert out.read_text().splitlines() == [*lines, removed]


def test_a_line_written_before_the_journal_heard_of_it_is_not_written_twice(workspace: Path) -> None:
    # A crash after the line reached the disk but before its journal row did: the rerun replays
    # the call, finds the same line already in OUT and only records it.
    (workspace / "shoal.toml").write_text(REHEARSAL_TOML)
    ids = write_records(workspace / "in.jsonl", 4)
    _map(workspace)
    before = (workspace / "out.jsonl").read_text()
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        conn.execute("DELETE FROM lines WHERE item = ?", (ids[3],))
        conn.execute("UPDATE items SET status = 'pending' WHERE item = ?", (ids[3],))

    result = _map(workspace)

    assert "4/4 done (1 now, 3 earlier)" in _summary(result.stderr)
    assert (workspace / "out.jsonl").read_text() == before
    assert _sent(workspace) == 4
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        rows = conn.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall()
    assert rows == [("done", 4)]


def test_torn_last_line_is_cut_and_the_record_done_again(workspace: Path) -> None:
    (workspace / "shoal.toml").write_text(REHEARSAL_TOML)
    write_records(workspace / "in.jsonl", 3)
    _map(workspace)
    out = workspace / "out.jsonl"
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])  # a crash mid-write

    result = _map(workspace)

    assert "3/3 done (1 now, 2 earlier)" in _summary(result.stderr)
    assert out.read_text().splitlines() == lines


def test_a_dataset_changed_to_other_ids_of_the_same_count_is_not_taken_as_done(workspace: Path) -> None:
    (workspace / "shoal.toml").write_text(REHEARSAL_TOML)
    ids = write_records(workspace / "in.jsonl", 4)
    _map(workspace)
    lines = (workspace / "in.jsonl").read_text().splitlines()
    lines[0] = json.dumps({"id": "new-one", "topic": "a record the job has not seen"})
    (workspace / "in.jsonl").write_text("\n".join(lines) + "\n")

    result = _map(workspace)

    assert "4/4 done (1 now, 3 earlier)" in _summary(result.stderr)
    written = output_ids(workspace / "out.jsonl")  # records are written as they finish, in any order
    assert sorted(written[:4]) == ids and written[4:] == ["new-one"]  # the first run's four kept
