"""`shoal map` riding out outages, faults and hangs, and finding its concurrency, against the fake server.

These are the slower tests of the suite: each needs a job long enough for the behaviour to show
(an outage of 30 s, 1,000 records). Their timeouts are set explicitly.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shoal.fake import FakeServer, FakeSettings, FaultRates

from helpers import MAP_ARGV, clean_env, invoke_shoal, output_ids, run_shoal, shoal_argv, write_records

KEY = "sk-test-resilience"
# Known, generous limits: pacing stays out of the way of what these tests look at.
LIMITS = '[limits."openai:gpt-4o-mini"]\nrpm = 600000\ntpm = 100000000\n'


def journal_rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_ids(path: Path, count: int) -> list[str]:
    ids = [f"rec-{i:04d}" for i in range(count)]
    with path.open("w") as handle:
        for index, record_id in enumerate(ids):
            handle.write(json.dumps({"id": record_id, "topic": f"topic number {index}"}) + "\n")
    return ids


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.long
@pytest.mark.timeout(180)
def test_provider_down_for_30_s_mid_job_every_record_finishes(workspace: Path) -> None:
    ids = write_ids(workspace / "in.jsonl", 300)
    (workspace / "shoal.toml").write_text(f"[job]\nconcurrency = 8\nrequest_timeout_s = 10\n\n{LIMITS}")
    log = workspace / "fake.log"
    first = FakeServer(FakeSettings(latency_s=0.05), log_path=log).start()
    port = int(first.url.rsplit(":", 1)[1])
    env = clean_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=first.openai_base_url)
    job = subprocess.Popen(
        shoal_argv(*MAP_ARGV),
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second: FakeServer | None = None
    try:
        wait_for(lambda: lines_in(workspace / "out.jsonl") >= 60, 60, "60 records before the outage")
        first.stop()  # connections are refused from now on
        time.sleep(30)  # the outage itself
        second = FakeServer(backend=first.backend, log_path=log, port=port).start()
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
        if second is not None:
            second.stop()
    assert job.returncode == 0, stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids  # every record, none twice
    answered = [line for line in log_lines(log) if line["status"] == 200 and line["kind"] == "ok"]
    assert len(answered) == 300  # the server answered each record once
    kinds = [row[0] for row in journal_rows(workspace, "SELECT kind FROM events WHERE kind LIKE 'outage%'")]
    assert kinds[:2] == ["outage_start", "outage_end"]
    (duration,) = journal_rows(workspace, "SELECT detail FROM events WHERE kind = 'outage_end'")[0]
    assert json.loads(duration)["duration_s"] >= 25
    assert journal_rows(workspace, "SELECT count(*) FROM items WHERE status = 'failed'")[0][0] == 0
    status = invoke_shoal(workspace, "status", "--json")
    assert json.loads(status.stdout)["outages"] == {
        "run": len(kinds) // 2,
        "job": len(kinds) // 2,
        "down": {},
    }
    shown = invoke_shoal(workspace, "status").stdout
    assert f"provider outages ridden out: {len(kinds) // 2} this run" in shown


@pytest.mark.long
@pytest.mark.timeout(300)
def test_1000_records_at_a_20_percent_fault_rate_all_finish(workspace: Path) -> None:
    ids = write_ids(workspace / "in.jsonl", 1000)
    (workspace / "shoal.toml").write_text(
        f"[job]\nconcurrency = 16\nrequest_timeout_s = 5\nrequest_timeout_min_s = 0.5\n\n{LIMITS}"
    )
    log = workspace / "fake.log"
    settings = FakeSettings(faults=FaultRates.spread(0.2), latency_s=0.01, hang_s=30.0, seed=8)
    with FakeServer(settings, log_path=log) as server:
        env = clean_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.openai_base_url)
        result = run_shoal(workspace, *MAP_ARGV, env=env, timeout=280)
        stats = server.backend.stats
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    faults = sum(stats[kind] for kind in ("error", "drop", "hang", "empty", "truncated"))
    assert faults >= 150  # about one request in five got a fault
    answered = {line["kind"] for line in log_lines(log)}
    assert {"ok", "error", "drop", "disconnected", "empty", "truncated"} <= answered  # hangs: we hung up
    # Faults scattered over the provider were not held against the records.
    counted = journal_rows(workspace, "SELECT detail FROM events WHERE kind = 'retry'")
    verdicts = [json.loads(detail).get("counted") for (detail,) in counted]
    assert verdicts.count("flaky") > 0
    assert journal_rows(workspace, "SELECT count(*) FROM items WHERE status = 'failed'")[0][0] == 0


@pytest.mark.long
@pytest.mark.timeout(150)
def test_hung_requests_cost_the_learned_timeout_not_the_configured_one(workspace: Path) -> None:
    ids = write_ids(workspace / "in.jsonl", 200)
    (workspace / "shoal.toml").write_text(
        f"[job]\nconcurrency = 8\nrequest_timeout_s = 10\nrequest_timeout_min_s = 0.5\n\n{LIMITS}"
    )
    settings = FakeSettings(faults=FaultRates(hang=0.1), latency_s=0.02, hang_s=120.0, seed=3)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.openai_base_url)
        result = run_shoal(workspace, *MAP_ARGV, env=env, timeout=140)
        hangs = server.backend.stats["hang"]
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    adapted = [
        json.loads(d)
        for (d,) in journal_rows(workspace, "SELECT detail FROM events WHERE kind = 'timeout_adapted'")
    ]
    assert adapted and adapted[0]["timeout_s"] <= 2.5  # learned: a fraction of the 10 s ceiling
    errors = [
        row[0] for row in journal_rows(workspace, "SELECT error FROM calls WHERE outcome = 'transient'")
    ]
    waited = [float(m.group(1)) for e in errors if (m := re.search(r"no answer within ([\d.]+)s", e or ""))]
    assert hangs >= 10 and len(waited) >= hangs  # a slow answer on a busy machine may time out too
    short = [seconds for seconds in waited if seconds <= 2.5]
    assert len(short) >= 0.75 * len(waited)  # only hangs before the first 20 answers waited 10 s


@pytest.mark.timeout(120)
def test_auto_concurrency_finishes_a_job_and_journals_its_choices(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 150)
    (workspace / "shoal.toml").write_text(f"[job]\nmax_concurrency = 32\n\n{LIMITS}")
    with FakeServer(FakeSettings(latency_s=0.05, capacity=4)) as server:
        env = clean_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.openai_base_url)
        result = run_shoal(workspace, *MAP_ARGV, "--concurrency", "auto", env=env, timeout=110)
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    changes = [
        json.loads(d)
        for (d,) in journal_rows(workspace, "SELECT detail FROM events WHERE kind = 'concurrency'")
    ]
    assert changes and changes[0]["limit"] == 8 and changes[0]["reason"] == "growing"
    assert all(1 <= change["limit"] <= 32 for change in changes)


def test_a_bad_concurrency_is_one_line_and_exit_2(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 1)
    result = invoke_shoal(workspace, *MAP_ARGV, "--concurrency", "fast", env=clean_env(OPENAI_API_KEY=KEY))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "shoal: error: --concurrency must be a positive integer or 'auto', not 'fast'"
    ]
