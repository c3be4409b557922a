"""`shoal run FILE.py` as a user runs it: usage errors, the examples, a kill -9 and a rerun."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import Spawn, clean_env, invoke_shoal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def finished_calls(workspace: Path) -> int:
    """Calls journaled as finished so far; 0 while the journal is still being created."""
    try:
        return int(rows(workspace, "SELECT count(*) FROM calls WHERE outcome = 'ok'")[0][0])
    except sqlite3.OperationalError:
        return 0


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("shoal: error: "), stderr
    return lines[0]


def test_without_a_terminal_or_yes_a_workflow_does_not_start(workspace: Path) -> None:
    (workspace / "wf.py").write_text(
        "from shoal import agent, workflow\n\n"
        "@workflow(name='args')\n"
        "async def main(rounds: int = 1) -> str:\n"
        "    return await agent('hello')\n"
    )
    unasked = invoke_shoal(workspace, "run", "wf.py")  # stdin is not a terminal and no --yes
    assert unasked.returncode == 2 and "--yes" in unasked.stderr
    assert "Caps: concurrency 16, 1,000 agents per run" in unasked.stderr  # the summary came first


def test_the_bug_hunt_example_runs_on_rehearsal(workspace: Path) -> None:
    result = invoke_shoal(workspace, "run", str(EXAMPLES / "bug_hunt" / "workflow.py"), "--yes")
    assert result.returncode == 0, result.stderr
    assert "Phases: scan, verify, report" in result.stderr
    report = (workspace / ".shoal" / "reports" / "bug-hunt.md").read_text()
    assert report.startswith("# Bug hunt") and "3 file(s) scanned" in report
    stages = dict(rows(workspace, "SELECT stage, count(*) FROM calls WHERE outcome = 'ok' GROUP BY stage"))
    assert stages["scan"] == 3 and stages["report"] == 1 and stages["verify"] >= 3
    assert (workspace / ".shoal" / "workspaces" / "bug-hunt" / "scan" / "pricing.py").is_dir()


def test_the_migration_example_runs_on_rehearsal(workspace: Path) -> None:
    result = invoke_shoal(workspace, "run", str(EXAMPLES / "migration" / "workflow.py"), "--yes")
    assert result.returncode == 0, result.stderr
    report = (workspace / ".shoal" / "reports" / "migration.md").read_text()
    assert "3 of 3 file(s) pass the test suite" in report
    assert report.count("Stopped: oracle-passed after 1 round(s)") == 3
    events = rows(workspace, "SELECT count(*) FROM events WHERE kind = 'verify_fix'")
    assert events[0][0] == 3
    copies = sorted(
        (workspace / ".shoal" / "workspaces" / "migration" / "migrate").glob("*/verify-fix/workspace")
    )
    assert len(copies) == 3 and all((copy / "tests" / "test_textkit.py").is_file() for copy in copies)


FANOUT = """
from pydantic import BaseModel
from shoal import agent, parallel, phase, workflow

class Note(BaseModel):
    topic: str
    summary: str

@workflow(name="fanout")
async def main(count: int = 16) -> str:
    with phase("notes"):
        notes = await parallel([f"topic {i:02d}" for i in range(count)],
                               lambda t: agent(f"Write a note on {t}", schema=Note))
    return "\\n".join(n.summary for n in notes if n)
"""


def test_a_rerun_after_kill_9_sends_only_what_had_not_finished(
    workspace: Path, spawn: Spawn, kill_rng: random.Random
) -> None:
    (workspace / "fanout.py").write_text(FANOUT)
    (workspace / "shoal.toml").write_text(
        '[workflow]\ndefault_model = "openai:gpt-4o-mini"\n\n[job]\nconcurrency = 3\nmax_tokens = 64\n'
    )
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.15, seed=5)
    with FakeServer(settings) as server:
        # Calls past a random point of the 16 are held, so the kill comes before the last one ends.
        server.backend.hold.close(after=kill_rng.randint(3, 15))
        env = clean_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.openai_base_url)
        process = spawn(workspace, "run", "fanout.py", "--yes", env=env, stderr=subprocess.DEVNULL)
        journal = workspace / ".shoal" / "journal.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if journal.exists() and finished_calls(workspace) >= 3:
                break
            time.sleep(0.02)
        time.sleep(kill_rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        server.backend.hold.open()
        finished = {row[0] for row in rows(workspace, "SELECT key FROM calls WHERE outcome = 'ok'")}
        assert 3 <= len(finished) < 16, "the kill came too late to leave work to resume"
        sent_before = server.backend.stats["requests"]

        result = invoke_shoal(workspace, "run", "fanout.py", "--yes", env=env)
        sent_after = server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    assert sent_after - sent_before == 16 - len(finished)  # exactly the unfinished calls were sent
    last_run = rows(workspace, "SELECT max(id) FROM runs")[0][0]
    again = {row[0] for row in rows(workspace, f"SELECT key FROM calls WHERE run_id = {last_run}")}
    assert not again & finished  # no finished call was sent again
    assert f"{len(finished)} replayed" in result.stderr
    report = (workspace / ".shoal" / "reports" / "fanout.md").read_text()
    assert len(report.splitlines()) == 16
