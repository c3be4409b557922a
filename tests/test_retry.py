"""Retrying what failed: --retry-failed (map, workflows) and --retry needs-review (plans) send
those items' calls afresh, the journal keeps the old attempts, and everything that succeeded
replays with nothing sent."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shoal.fake import FakeLimits, FakeReply, FakeServer, FakeSettings
from shoal.providers import load_replies

from helpers import MAP_ARGV, clean_env, invoke_shoal, output_ids, shoal_argv, write_records
from plan_helpers import copy_example, replies, shipped, status_cells, use_openai_models, write_replies

LIMITS = FakeLimits(rpm=60_000, tpm=50_000_000)


def rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def last_run(workspace: Path) -> int:
    return int(rows(workspace, "SELECT max(id) FROM runs")[0][0])


@pytest.mark.long
def test_map_retry_failed_sends_only_the_failed_records_again(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 10)
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    (workspace / "schema.json").write_text(json.dumps(schema))
    # Record 3 gets a broken answer five times (all its attempts), then good ones.
    settings = FakeSettings(limits=LIMITS, latency_s=0.0, replies=(FakeReply("number 3.", "{oops", times=5),))
    argv = [*MAP_ARGV, "--schema", "schema.json"]
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        first = invoke_shoal(workspace, *argv, env=env)
        sent_first = server.backend.stats["requests"]
        retried = invoke_shoal(workspace, *argv, "--retry-failed", env=env)
        sent_retry = server.backend.stats["requests"] - sent_first
        again = invoke_shoal(workspace, *argv, "--retry-failed", env=env)
        sent_again = server.backend.stats["requests"] - sent_first - sent_retry
    assert first.returncode == 1 and "failed: rec-003" in first.stderr
    assert sent_first == 9 + 5
    assert retried.returncode == 0, retried.stderr
    assert sent_retry == 1  # rec-003 only; the nine that succeeded were not touched
    assert "map: 1 record(s) that had failed were sent afresh" in retried.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    assert again.returncode == 0 and sent_again == 0  # nothing failed any more: nothing to send
    # The journal keeps the five bad attempts; the retry is a new call under a new key.
    bad = rows(workspace, "SELECT key FROM calls WHERE outcome = 'invalid'")
    assert len(bad) == 5
    retry_rows = rows(workspace, "SELECT scope, key, outcome FROM calls WHERE run_id = 2")
    assert [(scope.rsplit("#", 1)[1], outcome) for scope, _, outcome in retry_rows] == [("rec-003", "ok")]
    assert retry_rows[0][1] not in {key for (key,) in bad}
    assert rows(workspace, "SELECT item, generation FROM retries") == [("rec-003", 1)]


WORKFLOW = """
from pydantic import BaseModel
from shoal import agent, parallel, workflow

class Count(BaseModel):
    count: int

@workflow(name="counts")
async def main() -> list:
    return await parallel(["widgets", "gears"], lambda thing: agent(f"Count the {thing}", schema=Count))
"""


def test_workflow_retry_failed_sends_the_failed_agent_afresh_and_replays_the_rest(workspace: Path) -> None:
    (workspace / "wf.py").write_text(WORKFLOW)
    (workspace / "shoal.toml").write_text(
        '[workflow]\ndefault_model = "openai:gpt-4o-mini"\n\n[job]\nmax_tokens = 64\n'
    )
    bad = "not json at all"
    settings = FakeSettings(
        limits=LIMITS,
        latency_s=0.0,
        # The gears agent's answer and both of its output retries are broken, once each.
        replies=(FakeReply("Count the gears", bad, times=1), FakeReply("Invalid JSON", bad, times=2)),
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        first = invoke_shoal(workspace, "run", "wf.py", "--yes", env=env)
        sent_first = server.backend.stats["requests"]
        plain = invoke_shoal(workspace, "run", "wf.py", "--yes", env=env)
        sent_plain = server.backend.stats["requests"] - sent_first
        retried = invoke_shoal(workspace, "run", "wf.py", "--yes", "--retry-failed", env=env)
        sent_retry = server.backend.stats["requests"] - sent_first - sent_plain
    assert first.returncode == 1 and "failed: gears/" in first.stderr
    assert sent_first == 1 + 3
    # A plain rerun replays the journaled bad answers: nothing is sent and the verdict stands.
    assert plain.returncode == 1 and sent_plain == 0 and "4 replayed" in plain.stderr
    assert retried.returncode == 0, retried.stderr
    assert sent_retry == 1  # the gears agent, afresh; the widgets agent replayed
    assert "1 agent(s) that had failed were sent afresh" in retried.stderr
    assert "1 sent, 1 replayed" in retried.stderr
    assert rows(workspace, "SELECT count(*) FROM calls")[0][0] == 4 + 1  # old attempts kept
    (status,) = rows(workspace, "SELECT status FROM items WHERE item LIKE 'gears/%'")[0]
    assert status == "done"


FLAG = json.dumps(
    {
        "verdict": "flagged",
        "flags": [
            {"kind": "invented_fact", "quote": "Role-based", "problem": "cannot be verified from the brief"}
        ],
    }
)


def test_plan_retry_needs_review_sends_the_task_through_the_gate_again(workspace: Path) -> None:
    copy_example(workspace)
    use_openai_models(workspace)
    scripted = replies(workspace)
    draft = next(
        i["reply"] for i in scripted if i["match"] == 'Create the document "Role-Based Access Control"'
    )
    write_replies(
        workspace,
        [
            # Flagged at every review of the first run (two per tier, two tiers), clean afterwards.
            {"match": 'Review the draft of "Role-Based Access Control"', "reply": FLAG, "times": 4},
            {"match": 'A reviewer flagged these problems in your draft of "Role-Based', "reply": draft},
            *scripted,
        ],
    )
    settings = FakeSettings(limits=LIMITS, latency_s=0.0, replies=load_replies(workspace / "rehearsal.json"))
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        first = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--phase", "1", env=env)
        sent_first = server.backend.stats["requests"]
        verdict = status_cells((workspace / "PLAN.md").read_text())["rbac.md"]
        rbac_first = rows(workspace, "SELECT count(*) FROM calls WHERE scope LIKE '%#rbac.md/%'")[0][0]
        plain = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--phase", "1", env=env)
        sent_plain = server.backend.stats["requests"] - sent_first
        retried = invoke_shoal(
            workspace, "run", "PLAN.md", "--yes", "--phase", "1", "--retry", "needs-review", env=env
        )
        sent_retry = server.backend.stats["requests"] - sent_first - sent_plain
    assert first.returncode == 1 and "needs-review: rbac.md" in first.stderr
    assert verdict == "needs-review"
    assert rbac_first == 10  # per tier: draft, self-check, review, fix, second review
    assert plain.returncode == 0 and sent_plain == 0 and "nothing pending" in plain.stderr
    assert retried.returncode == 0, retried.stderr
    assert sent_retry == 3  # rbac.md alone, afresh: draft, self-check, a clean review
    assert "1 shipped, 0 need review" in retried.stderr
    assert "rbac.md" in shipped(workspace)
    plan = (workspace / "PLAN.md").read_text()
    assert status_cells(plan)["rbac.md"] == "complete"
    rbac_row = next(line for line in plan.splitlines() if "rbac.md" in line)
    assert "still flagged" not in rbac_row  # the old verdict's note went with it
    assert rows(workspace, "SELECT count(*) FROM calls WHERE scope LIKE '%#rbac.md/%'")[0][0] == 10 + 3
    run_id = last_run(workspace)
    items = {
        scope.split("#", 1)[1].split("/")[0]
        for (scope,) in rows(workspace, f"SELECT scope FROM calls WHERE run_id = {run_id}")
    }
    assert items == {"rbac.md"}


def test_retry_options_are_checked_against_the_kind_of_file(workspace: Path) -> None:
    copy_example(workspace)
    (workspace / "wf.py").write_text(WORKFLOW)
    cases = [
        (("run", "PLAN.md", "--yes", "--retry-failed"), "plans take --retry needs-review"),
        (("run", "PLAN.md", "--yes", "--retry", "failed"), "--retry failed"),
        (("run", "wf.py", "--yes", "--retry", "needs-review"), "workflows take --retry-failed"),
    ]
    for argv, message in cases:
        result = invoke_shoal(workspace, *argv)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (workspace / ".shoal").exists()


@pytest.mark.long
def test_a_retry_killed_half_way_resumes_under_its_own_generation(workspace: Path) -> None:
    copy_example(workspace)
    use_openai_models(workspace)
    scripted = replies(workspace)
    draft = next(
        i["reply"] for i in scripted if i["match"] == 'Create the document "Role-Based Access Control"'
    )
    write_replies(
        workspace,
        [
            {"match": 'Review the draft of "Role-Based Access Control"', "reply": FLAG, "times": 4},
            {"match": 'A reviewer flagged these problems in your draft of "Role-Based', "reply": draft},
            *scripted,
        ],
    )
    replies_ = load_replies(workspace / "rehearsal.json")
    settings = FakeSettings(limits=LIMITS, latency_s=0.4, jitter=0.0, replies=replies_)
    argv = ("run", "PLAN.md", "--yes", "--phase", "1")
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        assert invoke_shoal(workspace, *argv, env=env).returncode == 1  # rbac.md: needs-review
        process = subprocess.Popen(
            shoal_argv(*argv, "--retry", "needs-review"),
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not rows(
            workspace, "SELECT key FROM calls WHERE run_id = 2 AND outcome = 'ok'"
        ):
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        finished = {
            key for (key,) in rows(workspace, "SELECT key FROM calls WHERE run_id = 2 AND outcome = 'ok'")
        }
        assert 1 <= len(finished) < 3, "the kill should land inside the retry"
        # The status cell went back to pending before anything was sent, so the plain command resumes.
        assert status_cells((workspace / "PLAN.md").read_text())["rbac.md"] == "pending"
        before = server.backend.stats["requests"]
        resumed = invoke_shoal(workspace, *argv, env=env)
        sent = server.backend.stats["requests"] - before
    assert resumed.returncode == 0, resumed.stderr
    assert "rbac.md" in shipped(workspace)
    assert sent == 3 - len(finished)  # the retry's finished calls replayed, not sent again
    again = {key for (key,) in rows(workspace, f"SELECT key FROM calls WHERE run_id = {last_run(workspace)}")}
    assert not again & finished
    assert rows(workspace, "SELECT generation FROM retries WHERE item = 'rbac.md'") == [(1,)]
