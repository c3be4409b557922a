"""`shoal map` end to end against `shoal fake-server` on 127.0.0.1."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings, FaultRates

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, output_ids, write_records

SECRET = "sk-test-do-not-log-0123456789"


def journal_rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def test_openai_compatible_server_with_learned_limits(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 12)
    settings = FakeSettings(limits=FakeLimits(rpm=3000, tpm=2_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(
            workspace,
            "map",
            "in.jsonl",
            "--prompt",
            "Explain {topic}.",
            "--model",
            "openai:gpt-4o-mini",
            "--out",
            "out.jsonl",
            "--max-tokens",
            "50",
            env=env,
        )
        requests = server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    first = json.loads((workspace / "out.jsonl").read_text().splitlines()[0])
    assert first["model"] == "openai:gpt-4o-mini" and first["usage"]["output_tokens"] > 0
    assert requests == 12
    rows = journal_rows(workspace, "SELECT count(*), sum(cost_usd) FROM calls WHERE outcome = 'ok'")
    assert rows[0][0] == 12 and rows[0][1] > 0
    assert SECRET.encode() not in (workspace / ".shoal" / "journal.db").read_bytes()


def test_anthropic_with_schema_returns_validated_json(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 5)
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["title", "tags"],
        "additionalProperties": False,
    }
    (workspace / "schema.json").write_text(json.dumps(schema))
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=3000, tpm=2_000_000), latency_s=0.01)) as server:
        env = clean_env(ANTHROPIC_API_KEY=SECRET, ANTHROPIC_BASE_URL=server.anthropic_base_url)
        result = invoke_shoal(
            workspace,
            "map",
            "in.jsonl",
            "--prompt",
            "Tag {topic}.",
            "--model",
            "anthropic:claude-haiku-4-5",
            "--out",
            "out.jsonl",
            "--schema",
            "schema.json",
            env=env,
        )
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line)["output"] for line in (workspace / "out.jsonl").read_text().splitlines()]
    assert len(outputs) == 5
    assert all(isinstance(o, dict) and set(o) == {"title", "tags"} for o in outputs)


def test_every_record_completes_at_a_20_percent_fault_rate(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 40)
    (workspace / "shoal.toml").write_text(
        "[job]\nrequest_timeout_s = 1.0\nmax_attempts = 8\nconcurrency = 8\n"
    )
    settings = FakeSettings(
        limits=FakeLimits(rpm=6000, tpm=5_000_000),
        faults=FaultRates.spread(0.2),
        latency_s=0.01,
        hang_s=5.0,
        seed=11,
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(
            workspace,
            *MAP_ARGV,
            env=env,
        )
        stats = dict(server.backend.stats)
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    assert sum(stats.get(kind, 0) for kind in ("error", "drop", "hang", "empty", "truncated")) >= 4
    kept = [json.loads(line)["output"] for line in (workspace / "out.jsonl").read_text().splitlines()]
    assert all(text.strip() for text in kept)
    # Every shipped answer is the journal's ok answer for its record; no empty or cut-off one was kept.
    ok = dict(journal_rows(workspace, "SELECT scope, response FROM calls WHERE outcome = 'ok'"))
    assert len(ok) == 40
    bad = journal_rows(workspace, "SELECT response FROM calls WHERE outcome IN ('empty', 'truncated')")
    assert bad, "the fault mix should have produced empty or truncated answers"
    assert not {row[0] for row in bad if row[0]} & set(kept)


def test_sigkill_at_a_random_moment_then_rerun(
    workspace: Path, spawn: Spawn, kill_rng: random.Random
) -> None:
    ids = write_records(workspace / "in.jsonl", 60)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 6\n")
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.08, seed=3)
    argv = MAP_ARGV
    with FakeServer(settings) as server:
        # Calls past a random point are held, so even a slow machine kills the job before it ends.
        server.backend.hold.close(after=kill_rng.randint(3, 54))
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        process = spawn(workspace, *argv, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        # Wait until some work is journaled, then kill at a random moment.
        while time.monotonic() < deadline:
            if (workspace / "out.jsonl").exists() and (workspace / "out.jsonl").read_text().count("\n") >= 3:
                break
            time.sleep(0.02)
        time.sleep(kill_rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        server.backend.hold.open()
        finished_before = {
            row[0] for row in journal_rows(workspace, "SELECT key FROM calls WHERE outcome = 'ok'")
        }
        assert finished_before, "the kill came before anything finished"

        result = invoke_shoal(workspace, *argv, env=env)
    assert result.returncode == 0, result.stderr
    written = output_ids(workspace / "out.jsonl")
    assert sorted(written) == ids  # every record exactly once
    runs = journal_rows(workspace, "SELECT id FROM runs ORDER BY id")
    sent_again = journal_rows(workspace, f"SELECT key FROM calls WHERE run_id = {runs[-1][0]}")
    assert not finished_before & {row[0] for row in sent_again}
    assert len(finished_before) < 60
