"""`shoal status` and `shoal journal`, from a second process, during and after a job."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, write_records

MAP = MAP_ARGV


def journal_figures(workspace: Path) -> dict[str, Any]:
    """What the journal holds now, read directly (read-only)."""
    uri = (workspace / ".shoal" / "journal.db").resolve().as_uri() + "?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        done = conn.execute("SELECT count(*) FROM items WHERE status = 'done'").fetchone()[0]
        calls, tokens_in, tokens_out, cost = conn.execute(
            "SELECT count(*), COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0), "
            "COALESCE(sum(cost_usd), 0) FROM calls"
        ).fetchone()
    return {
        "done": done,
        "calls": calls,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost": cost,
    }


def status_json(workspace: Path, env: dict[str, str]) -> dict[str, Any]:
    result = invoke_shoal(workspace, "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def done_in_journal(workspace: Path) -> int:
    if not (workspace / ".shoal" / "journal.db").exists():
        return 0
    try:
        return int(journal_figures(workspace)["done"])
    except sqlite3.Error:
        return 0


def latest_snapshot(workspace: Path) -> dict[str, Any] | None:
    """The newest live snapshot the job has published (every second), if any."""
    uri = (workspace / ".shoal" / "journal.db").resolve().as_uri() + "?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            row = conn.execute("SELECT data FROM snapshots ORDER BY ts DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else dict(json.loads(row[0]))


def published_in_flight(workspace: Path) -> int | None:
    """Calls in flight in the newest published snapshot."""
    snapshot = latest_snapshot(workspace)
    return None if snapshot is None else int(snapshot["workers"]["in_flight"])


def limits_published(workspace: Path) -> bool:
    """The newest snapshot knows the model's limits (learned from the first answers)."""
    snapshot = latest_snapshot(workspace) or {}
    return any(model.get("limits") for model in snapshot.get("models", {}).values())


def test_status_during_a_run_agrees_with_the_journal(workspace: Path, spawn: Spawn) -> None:
    write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 6\n")
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        # Three answers, then the six workers' next calls stay in flight until the test lets them go:
        # the job is still running when `shoal status` looks, however slow the machine.
        server.backend.hold.close(after=3)
        env = clean_env(OPENAI_API_KEY="k-test-status", OPENAI_BASE_URL=server.openai_base_url)
        job = spawn(workspace, *MAP, env=env)
        try:
            server.backend.hold.wait_held(6)
            wait_for(lambda: done_in_journal(workspace) == 3)
            wait_for(lambda: published_in_flight(workspace) == 6)
            # Limits are unknown until the first answers bring them (nothing is paced meanwhile).
            wait_for(lambda: limits_published(workspace))
            status = status_json(workspace, env)
            figures = journal_figures(workspace)
        finally:
            server.backend.hold.open()
            _, stderr = job.communicate(timeout=30)
        assert job.returncode == 0, stderr

    # Taken while the job ran: the state, the ceiling, and exactly what the journal held then.
    assert status["run"]["state"] == "running", status["run"]
    assert status["workers"]["ceiling"] == 6 and status["workers"]["in_flight"] == 6
    assert status["items"]["total"] == 30
    assert status["items"]["done"] == figures["done"] == 3
    assert status["totals"]["job"]["calls"] == figures["calls"] == 3
    assert status["totals"]["job"]["input_tokens"] == figures["input_tokens"]
    assert status["progress"]["eta_s"] is not None and status["progress"]["eta_s"] > 0
    usage = status["models"][0]["usage"]
    assert usage is not None and usage["percent"]["rpm"] > 0  # limits learned from the fake's headers

    # After the job: exactly what the journal holds.
    final = status_json(workspace, env)
    figures = journal_figures(workspace)
    assert final["run"]["state"] == "done" and final["workers"] is None
    assert final["items"]["done"] == figures["done"] == 30
    job_totals = final["totals"]["job"]
    assert job_totals["calls"] == figures["calls"] == 30
    assert (job_totals["input_tokens"], job_totals["output_tokens"]) == (
        figures["input_tokens"],
        figures["output_tokens"],
    )
    assert abs(final["cost"]["spent_usd"] - figures["cost"]) < 1e-9
    assert [s["name"] for s in final["stages"]] == ["map"] and final["stages"][0]["done"] == 30

    text = invoke_shoal(workspace, "status", env=env)
    assert text.returncode == 0, text.stderr
    assert "map" in text.stdout and "done" in text.stdout and "30" in text.stdout


def test_journal_lists_a_stopped_job_item_by_item(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    stopped = invoke_shoal(
        workspace,
        "map",
        "in.jsonl",
        "--prompt",
        "Explain {topic}.",
        "--model",
        "rehearsal",
        "--out",
        "out.jsonl",
        "--max-tokens",
        "1000",
        "--max-cost",
        "0.004",
    )
    assert stopped.returncode == 3, stopped.stderr

    jsonl = invoke_shoal(workspace, "journal", "--jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["id"] for r in records] == [f"rec-{i:03d}" for i in range(30)]  # input order
    assert all(set(r) == {"id", "status", "file"} for r in records)
    done = [r for r in records if r["status"] == "done"]
    pending = [r for r in records if r["status"] == "pending"]
    assert 0 < len(done) < 30 and len(done) + len(pending) == 30
    assert all(r["file"] == "out.jsonl" for r in done) and all(r["file"] is None for r in pending)

    plain = invoke_shoal(workspace, "journal", "--status", "pending")
    assert plain.returncode == 0
    assert plain.stdout.splitlines() == [f"{r['id']}\tpending\t-" for r in pending]

    bad = invoke_shoal(workspace, "journal", "--status", "finished")
    assert bad.returncode == 2 and "unknown status 'finished'" in bad.stderr
