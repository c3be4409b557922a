"""`shoal run PLAN.md` end to end against `shoal fake-server`, scripted so that one draft fails
lint and one gets flagged by the reviewer."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.gate import new_file_mode
from shoal.providers import load_replies

from helpers import Spawn, clean_env, invoke_shoal
from plan_helpers import (
    SHIPPED,
    assert_only_status_cells_changed,
    copy_example,
    registered_paths,
    shipped,
    status_cells,
    use_openai_models,
)


def rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def fake_server(workspace: Path, latency: float = 0.01) -> FakeServer:
    settings = FakeSettings(
        limits=FakeLimits(rpm=20_000, tpm=20_000_000),
        latency_s=latency,
        replies=load_replies(workspace / "rehearsal.json"),
    )
    return FakeServer(settings)


def test_gate_fixes_only_what_was_flagged_and_ships_the_rest(workspace: Path) -> None:
    copy_example(workspace)
    use_openai_models(workspace)
    plan_before = (workspace / "PLAN.md").read_text()
    (workspace / "PLAN.md").chmod(0o640)
    (workspace / "docs" / "config.json").chmod(0o664)
    with fake_server(workspace) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", env=env)
        requests = server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    assert shipped(workspace) == SHIPPED
    # The gate's work is in the summary: the lint fix, the flagged guide and its fix.
    assert (
        "gate: 1 lint fix (session-management.md), 1 flagged (token-lifecycle.md), 1 fixed, "
        "0 escalated, 0 need review"
    ) in result.stderr
    # `shoal status` shows the same, from the journal: the demo's flagged guide reads as flagged.
    status = invoke_shoal(workspace, "status", "--json", env=env)
    gate = json.loads(status.stdout)["gate"]
    assert gate["flagged"] == gate["fixed"] == ["token-lifecycle.md"]
    assert gate["lint_fixed"] == ["session-management.md"] and gate["needs_review"] == []
    assert "1 flagged (token-lifecycle.md)" in invoke_shoal(workspace, "status", env=env).stdout
    # Rewritten files keep their permissions; a shipped guide gets the umask's default.
    assert stat.S_IMODE((workspace / "PLAN.md").stat().st_mode) == 0o640
    assert stat.S_IMODE((workspace / "docs" / "config.json").stat().st_mode) == 0o664
    for guide in (workspace / "docs" / "guides").glob("*.md"):
        assert stat.S_IMODE(guide.stat().st_mode) == new_file_mode(), guide
    assert "$" not in (workspace / "docs/guides/session-management.md").read_text()
    assert "73%" not in (workspace / "docs/guides/token-lifecycle.md").read_text()
    # 6 drafts, 6 self-checks, 6 reviews, 1 lint fix, 1 flag fix, 1 second look by the reviewer.
    assert requests == 21
    fixes = rows(workspace, "SELECT scope FROM calls WHERE stage LIKE '%/fix' AND outcome = 'ok'")
    assert [scope for (scope,) in fixes] == [fixes[0][0]] and "token-lifecycle.md" in fixes[0][0]
    lint_fixes = rows(workspace, "SELECT scope FROM calls WHERE stage LIKE '%/lint'")
    assert len(lint_fixes) == 1 and "session-management.md" in lint_fixes[0][0]
    # The linter's own words reached the writer's session, and nothing more than them.
    (messages,) = rows(workspace, "SELECT messages FROM sessions WHERE item = 'session-management.md'")[0]
    lint_prompt = next(m[1] for m in json.loads(messages) if m[1].startswith("The linter rejected"))
    assert "session-management.md:" in lint_prompt and "no specific dollar amounts" in lint_prompt
    assert len(lint_prompt.splitlines()) <= 10 + 4
    # The plan changed only in its status cells; the registry gained each guide once.
    plan_after = (workspace / "PLAN.md").read_text()
    assert_only_status_cells_changed(plan_before, plan_after)
    assert set(status_cells(plan_after).values()) == {"complete"}
    paths = registered_paths(workspace)
    assert len(paths) == len(set(paths)) == 7
    # Every item's model, tier reason and stage outcomes are in the journal.
    tiers = rows(workspace, "SELECT detail FROM events WHERE kind = 'tier'")
    reasons = {json.loads(d)["item"]: json.loads(d)["reason"] for (d,) in tiers}
    assert "title contains 'selection/patterns'" in reasons["identity-provider-selection.md"]
    outcomes = rows(workspace, "SELECT detail FROM events WHERE kind = 'stage'")
    stages_of = {(json.loads(d)["item"], json.loads(d)["stage"]) for (d,) in outcomes}
    assert ("rbac.md", "review") in stages_of and ("rbac.md", "spot-check") in stages_of


def test_kill_9_at_a_random_moment_then_the_same_command(
    workspace: Path, spawn: Spawn, kill_rng: random.Random
) -> None:
    copy_example(workspace)
    use_openai_models(workspace, extra="max_attempts = 3\n")
    with fake_server(workspace, latency=0.15) as server:
        # Of the plan's 21 calls, those past a random point are held: the kill comes before the end.
        server.backend.hold.close(after=kill_rng.randint(1, 20))
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = spawn(workspace, "run", "PLAN.md", "--yes", env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list((workspace / ".shoal" / "staging").glob("*.md")):
            time.sleep(0.02)
        time.sleep(kill_rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        server.backend.hold.open()
        finished = {key for (key,) in rows(workspace, "SELECT key FROM calls WHERE outcome = 'ok'")}
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert shipped(workspace) == SHIPPED
    paths = registered_paths(workspace)
    assert len(paths) == len(set(paths)) == 7  # no registration duplicated
    assert set(status_cells((workspace / "PLAN.md").read_text()).values()) == {"complete"}
    last_run = rows(workspace, "SELECT max(id) FROM runs")[0][0]
    sent_again = {key for (key,) in rows(workspace, f"SELECT key FROM calls WHERE run_id = {last_run}")}
    assert not finished & sent_again
