"""`shoal status` and `shoal journal`, from a second process, during and after a job."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, clean_env, run_shoal, shoal_argv, write_records

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
    result = run_shoal(workspace, "status", "--json", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def journal_exists(workspace: Path) -> bool:
    path = workspace / ".shoal" / "journal.db"
    if not path.exists():
        return False
    try:
        return journal_figures(workspace)["done"] >= 3
    except sqlite3.Error:
        return False


def limits_published(workspace: Path) -> bool:
    """The last published snapshot knows the model's limits (learned from the first answers)."""
    uri = (workspace / ".shoal" / "journal.db").resolve().as_uri() + "?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            row = conn.execute("SELECT data FROM snapshots ORDER BY ts DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return False
    models = json.loads(row[0]).get("models", {}) if row else {}
    return any(model.get("limits") for model in models.values())


def test_status_during_a_run_agrees_with_the_journal(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 6\n")
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.6)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k-test-status", OPENAI_BASE_URL=server.openai_base_url)
        job = subprocess.Popen(
            shoal_argv(*MAP),
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Limits are unknown until the first answers bring them (nothing is paced meanwhile).
            wait_for(lambda: journal_exists(workspace) and limits_published(workspace))
            before = journal_figures(workspace)
            status = status_json(workspace, env)
            after = journal_figures(workspace)
        finally:
            _, stderr = job.communicate(timeout=30)
        assert job.returncode == 0, stderr

    # Taken while the job ran: the state, the ceiling, and numbers between two direct reads.
    assert status["run"]["state"] == "running", status["run"]
    assert status["workers"]["ceiling"] == 6 and 0 <= status["workers"]["in_flight"] <= 6
    assert status["items"]["total"] == 30
    assert before["done"] <= status["items"]["done"] <= after["done"] < 30
    assert before["calls"] <= status["totals"]["job"]["calls"] <= after["calls"]
    assert before["input_tokens"] <= status["totals"]["job"]["input_tokens"] <= after["input_tokens"]
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

    text = run_shoal(workspace, "status", env=env)
    assert text.returncode == 0, text.stderr
    assert "map" in text.stdout and "done" in text.stdout and "30" in text.stdout


def test_status_without_a_journal_is_one_line_and_exit_2(workspace: Path) -> None:
    result = run_shoal(workspace, "status", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "shoal: error: no journal yet: no job has run in this directory"
    ]
    assert not (workspace / ".shoal").exists()


def test_journal_lists_a_stopped_job_item_by_item(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    stopped = run_shoal(
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

    jsonl = run_shoal(workspace, "journal", "--jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["id"] for r in records] == [f"rec-{i:03d}" for i in range(30)]  # input order
    assert all(set(r) == {"id", "status", "file"} for r in records)
    done = [r for r in records if r["status"] == "done"]
    pending = [r for r in records if r["status"] == "pending"]
    assert 0 < len(done) < 30 and len(done) + len(pending) == 30
    assert all(r["file"] == "out.jsonl" for r in done) and all(r["file"] is None for r in pending)

    plain = run_shoal(workspace, "journal", "--status", "pending")
    assert plain.returncode == 0
    assert plain.stdout.splitlines() == [f"{r['id']}\tpending\t-" for r in pending]

    bad = run_shoal(workspace, "journal", "--status", "finished")
    assert bad.returncode == 2 and "unknown status 'finished'" in bad.stderr
