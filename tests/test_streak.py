"""A job that meets the same failure on every call stops and names it, instead of spending every
attempt of every record; outages do not count, a success resets the count."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shoal._signature import failure_signature
from shoal.engine import FailureStreak, StopSignal
from shoal.fake import FakeLimits, FakeReply, FakeServer, FakeSettings

from helpers import MAP_ARGV, clean_env, invoke_shoal, write_records


def test_signatures_ignore_numbers_ids_quoted_values_and_the_items_own_words() -> None:
    first = failure_signature(
        "HTTP 400: Request too large: it needs 1234 tokens (194 prompt + 1040 max_tokens), 'rec-001'"
    )
    second = failure_signature(
        "HTTP 400: Request too large: it needs 98 tokens (58 prompt + 40 max_tokens), 'rec-117'"
    )
    assert first == second and "Request too large" in first
    schema = "answer does not match the schema at {}: {} is not of type 'string'"
    assert failure_signature(schema.format("tags/0", 5)) == failure_signature(schema.format("tags/3", 17))
    assert failure_signature("request 3f2a9c1e8b7d6a5f failed") == failure_signature(
        "request 0a1b2c3d4e5f6a7b failed"
    )
    assert failure_signature(
        "tool call_363e72e4de7f4a1a8283e26a, req 0f8c2a9e-4b1d-4c3e-9f00-12ab34cd56ef"
    ) == (failure_signature("tool call_d629cfab12d94a2e8e7a633d, req 7a1b2c3d-0000-4111-8222-abcdefabcdef"))
    titled = "front matter title is {}, it doesn't match {}"
    assert failure_signature(titled.format("Rbac", "rbac.md"), ["Rbac", "rbac.md"]) == failure_signature(
        titled.format("OAuth and OIDC", "oauth-oidc.md"), ["OAuth and OIDC", "oauth-oidc.md"]
    )
    # Different problems stay different.
    assert failure_signature("empty answer") != failure_signature("answer cut off by the token limit")


async def test_ten_alike_call_specific_failures_in_a_row_drain_the_job_once() -> None:
    stop = StopSignal()
    streak = FailureStreak(stop, limit=10)
    for index in range(9):
        streak.observe(
            "invalid", 200, f"answer is not JSON: Expecting value: line 1 column {index} (char {index})"
        )
    assert stop.running and streak.count == 9
    streak.observe("transient", 503, "HTTP 503: overloaded")  # an outage neither counts nor resets
    streak.observe("rate_limited", 429, "HTTP 429: slow down")
    assert stop.running and streak.count == 9
    streak.observe("invalid", 200, "answer is not JSON: Expecting value: line 1 column 99 (char 98)")
    assert not stop.running
    assert (
        streak.reason is not None and "the last 10 calls all failed the same way (invalid)" in streak.reason
    )
    assert stop.reason is not None and "answer is not JSON" in stop.reason


async def test_a_success_or_a_different_failure_starts_the_count_again() -> None:
    stop = StopSignal()
    streak = FailureStreak(stop, limit=3)
    streak.observe("rejected", 400, "HTTP 400: bad request 1")
    streak.observe("rejected", 400, "HTTP 400: bad request 2")
    streak.observe("ok", 200, None)
    streak.observe("rejected", 400, "HTTP 400: bad request 3")
    streak.observe("empty", 200, "empty answer")
    streak.observe("rejected", 400, "HTTP 400: bad request 4")
    streak.observe("transient", None, "Connection error.")
    assert stop.running and streak.count == 1
    off = FailureStreak(stop, limit=0)
    for _ in range(50):
        off.observe("rejected", 401, "HTTP 401: invalid api key")
    assert stop.running


def calls(workspace: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute("SELECT outcome, count(*) FROM calls GROUP BY outcome").fetchall()


def test_a_map_whose_every_answer_is_bad_stops_after_ten_calls(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 40)
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    (workspace / "schema.json").write_text(json.dumps(schema))
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\nmax_attempts = 5\n")
    settings = FakeSettings(
        limits=FakeLimits(rpm=60_000, tpm=50_000_000),
        latency_s=0.0,
        replies=(FakeReply("Explain", '{"title": 42}'),),  # valid JSON, wrong type: every time
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, *MAP_ARGV, "--schema", "schema.json", env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 1, result.stderr
    # 40 records x 5 attempts would be 200 requests; the job stops at the 10th alike failure,
    # letting the few calls already in flight finish.
    assert 10 <= requests <= 10 + 4, requests
    assert dict(calls(workspace)) == {"invalid": requests}
    halted = [line for line in result.stderr.splitlines() if "halted" in line]
    assert len(halted) == 1, result.stderr
    assert "the last 10 calls all failed the same way (invalid)" in halted[0]
    assert "is not of type 'string'" in halted[0]
    assert not (workspace / "out.jsonl").exists() or not (workspace / "out.jsonl").read_text()
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        statuses = {row[0] for row in conn.execute("SELECT status FROM items")}
    assert "done" not in statuses and "failed" not in statuses  # nothing judged: fix, then rerun
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        (detail,) = conn.execute("SELECT detail FROM events WHERE kind = 'same_failure'").fetchone()
        (status,) = conn.execute("SELECT status FROM runs").fetchone()
    assert "is not of type" in json.loads(detail)["reason"] and status == "failed"


def test_a_map_refused_with_400_on_every_call_stops_after_ten_calls(workspace: Path) -> None:
    with (workspace / "in.jsonl").open("w") as handle:  # prompts of many lengths: each 400 differs
        for index in range(60):
            topic = " ".join(["the long history of rate limits"] * (index % 9 + 1))
            handle.write(json.dumps({"id": f"rec-{index:03d}", "topic": topic}) + "\n")
    (workspace / "shoal.toml").write_text(
        "[job]\nconcurrency = 1\n\n[limits.'openai:gpt-4o-mini']\nrpm = 60000\ntpm = 50000000\n"
    )
    # The server's own window holds fewer tokens than one request needs: every call is a 400 whose
    # message carries that call's own token counts.
    settings = FakeSettings(limits=FakeLimits(rpm=60_000, tpm=600, window_s=1.0), latency_s=0.0)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, *MAP_ARGV, env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 1, result.stderr
    assert requests == 10, requests  # one at a time: exactly the streak, not one per record
    assert dict(calls(workspace)) == {"rejected": 10}
    assert "the last 10 calls all failed the same way (rejected): HTTP 400" in result.stderr
    assert "Request too large" in result.stderr
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        errors = {row[0] for row in conn.execute("SELECT error FROM calls")}
    assert len(errors) >= 5  # alike, not identical: each names its own token counts


FANOUT = """
from shoal import agent, parallel, workflow

@workflow(name="describe")
async def main() -> list:
    return await parallel([f"part {i:02d}" for i in range(30)], lambda p: agent(f"Describe {p}"))
"""


def test_a_workflow_whose_every_answer_is_empty_stops_after_ten_calls(workspace: Path) -> None:
    (workspace / "wf.py").write_text(FANOUT)
    (workspace / "shoal.toml").write_text(
        '[workflow]\ndefault_model = "openai:gpt-4o-mini"\n\n[job]\nconcurrency = 4\nmax_tokens = 64\n'
    )
    settings = FakeSettings(
        limits=FakeLimits(rpm=60_000, tpm=50_000_000), latency_s=0.0, replies=(FakeReply("Describe", ""),)
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, "run", "wf.py", "--yes", env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 1, result.stderr
    assert 10 <= requests <= 10 + 4, requests  # not 30 agents x 5 attempts
    assert (
        "workflow: halted: the last 10 calls all failed the same way (empty): empty answer" in result.stderr
    )
    assert "resume with" not in result.stderr


COUNTS = """
from pydantic import BaseModel
from shoal import agent, parallel, workflow

class Count(BaseModel):
    count: int

@workflow(name="counts")
async def main() -> list:
    return await parallel([f"part {i:02d}" for i in range(30)],
                          lambda p: agent(f"Count the {p}", schema=Count))
"""


def test_a_workflow_whose_agents_all_fail_validation_stops_after_ten_agents(workspace: Path) -> None:
    (workspace / "wf.py").write_text(COUNTS)
    (workspace / "shoal.toml").write_text(
        '[workflow]\ndefault_model = "openai:gpt-4o-mini"\n\n[job]\nconcurrency = 4\nmax_tokens = 64\n'
    )
    bad = "not json at all"
    settings = FakeSettings(
        limits=FakeLimits(rpm=60_000, tpm=50_000_000),
        latency_s=0.0,
        replies=(FakeReply("Count the", bad), FakeReply("Invalid JSON", bad)),
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, "run", "wf.py", "--yes", env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 1, result.stderr
    # Every call is a finished answer to the caller; the agents' verdicts are what repeat. Each
    # agent makes 3 requests (its answer and 2 output retries): 30 agents would be 90.
    assert 30 <= requests <= (10 + 4) * 3, requests
    assert "workflow: halted: the last 10 agents all failed the same way" in result.stderr
    # the reason is the plain line of a failed agent: the last problem and what the model said
    assert "last problem: Invalid JSON" in result.stderr and bad in result.stderr


def test_a_plan_whose_every_call_is_refused_stops_at_the_configured_limit(workspace: Path) -> None:
    from plan_helpers import copy_example, shipped, status_cells

    copy_example(workspace)
    # Both tiers on one model, so every refusal reads alike; a limit of 4 to show the setting.
    (workspace / "shoal.toml").write_text(
        '[models]\nhaiku = "openai:same-test"\nsonnet = "openai:same-test"\n\n'
        "[job]\nconcurrency = 8\nsame_failure_limit = 4\n"
    )
    settings = FakeSettings(limits=FakeLimits(rpm=60_000, tpm=600, window_s=1.0), latency_s=0.0)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 1, result.stderr
    # Phase 1's three drafts are refused, then their three escalated drafts: the 4th refusal stops
    # the job (the other two were already in flight) and phase 2 never starts.
    assert 4 <= requests <= 6, requests
    assert "plan: halted: the last 4 calls all failed the same way (rejected): HTTP 400" in result.stderr
    assert shipped(workspace) == set()
    statuses = status_cells((workspace / "PLAN.md").read_text())
    assert statuses["token-lifecycle.md"] == "pending" and statuses["zero-trust-patterns.md"] == "pending"
