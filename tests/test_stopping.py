"""Ctrl-C, SIGTERM and the cost budget stop a job so that the same command resumes it."""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, clean_env, output_ids, run_shoal, shoal_argv, write_records

ARGV = MAP_ARGV


def start(workspace: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        shoal_argv(*ARGV), cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_lines(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {count} lines")


def test_first_interrupt_drains_and_exits_3_with_the_resume_command(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 40)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.3)) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = start(workspace, env)
        wait_for_lines(workspace / "out.jsonl", 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 3, stderr
        assert "Traceback" not in stderr
        # The resume line repeats the executable as it was typed (here `python -m shoal`).
        assert f"resume with: {shlex.join(shoal_argv('map', 'in.jsonl'))}" in stderr
        partial = output_ids(workspace / "out.jsonl")
        assert 2 <= len(partial) < 40
        # Draining lets the calls in flight finish and ship: nothing sent is lost.
        sent = server.backend.stats["requests"]
        assert sent - len(partial) <= 0

        result = run_shoal(workspace, *ARGV, env=env)
        assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids


def test_second_interrupt_cancels_and_still_resumes(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=1.0)) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = start(workspace, env)
        wait_for_lines(workspace / "out.jsonl", 1)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 0.9, "cancelling must not wait for the calls in flight"
        assert process.returncode == 3, stderr
        assert "Traceback" not in stderr
        result = run_shoal(workspace, *ARGV, env=env)
        assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids


def test_cost_budget_stops_before_it_is_exceeded(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    # Rehearsal is priced like gpt-4o-mini: each call's worst case is about $0.0006 at 1,000 tokens.
    argv = [
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
    ]
    result = run_shoal(workspace, *argv)
    assert result.returncode == 3, result.stderr
    assert "budget" in result.stderr and "resume with:" in result.stderr
    done = len(output_ids(workspace / "out.jsonl"))
    assert 0 < done < 30
    import sqlite3

    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        spent = conn.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
    assert spent <= 0.004


def test_csv_input_with_an_id_field(workspace: Path) -> None:
    (workspace / "in.csv").write_text("sku,name\nA-1,kelp crisps\nB-2,sea salt\n")
    result = run_shoal(
        workspace,
        "map",
        "in.csv",
        "--id-field",
        "sku",
        "--prompt",
        "Describe {name}.",
        "--model",
        "rehearsal",
        "--out",
        "out.jsonl",
        "--max-tokens",
        "30",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ["A-1", "B-2"]
