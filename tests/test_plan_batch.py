"""`shoal run PLAN.md --batch`: phased mode with each stage as batch rounds, against the fake server."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shoal.fake import FakeBatchSettings, FakeLimits, FakeServer, FakeSettings
from shoal.providers import load_replies

from helpers import clean_env, invoke_shoal, shoal_argv
from plan_helpers import SHIPPED, copy_example, registered_paths, shipped, status_cells, use_openai_models


def fake_server(workspace: Path, batch_delay: float = 0.0) -> FakeServer:
    settings = FakeSettings(
        limits=FakeLimits(rpm=20_000, tpm=20_000_000),
        latency_s=0.01,
        replies=load_replies(workspace / "rehearsal.json"),
        batch=FakeBatchSettings(delay_s=batch_delay),
    )
    return FakeServer(settings)


def run_plan(workspace: Path, *extra: str) -> tuple[str, list[dict], int]:
    with fake_server(workspace) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", *extra, env=env)
        created, online = list(server.batches.created), server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    return result.stderr, created, online


def test_plan_with_batch_ships_the_same_files_and_statuses_as_online(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    online_dir = copy_example(tmp_path_factory.mktemp("online"))
    use_openai_models(online_dir)
    online_err, _, online_requests = run_plan(online_dir)
    copy_example(workspace)
    use_openai_models(workspace, extra="\n[batch]\npoll_s = 0.02\n")
    batch_err, created, batch_online = run_plan(workspace, "--batch")
    assert batch_online == 0  # nothing went online
    assert sum(c["requests"] for c in created) == online_requests == 21
    assert shipped(workspace) == shipped(online_dir) == SHIPPED
    assert status_cells((workspace / "PLAN.md").read_text()) == status_cells(
        (online_dir / "PLAN.md").read_text()
    )
    assert sorted(registered_paths(workspace)) == sorted(registered_paths(online_dir))
    for name in SHIPPED:
        assert (workspace / "docs/guides" / name).read_text() == (
            online_dir / "docs/guides" / name
        ).read_text()
    gate = [line for line in batch_err.splitlines() if line.startswith("gate:")]
    assert gate == [line for line in online_err.splitlines() if line.startswith("gate:")]
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        rounds = {r for (r,) in conn.execute("SELECT round FROM batches")}
    assert {"phase-1/generate", "phase-1/self-check", "phase-1/review"} <= rounds


@pytest.mark.long
def test_plan_batch_killed_after_a_submission_resumes_without_paying_twice(workspace: Path) -> None:
    copy_example(workspace)
    use_openai_models(workspace, extra="\n[batch]\npoll_s = 0.02\n")
    with fake_server(workspace, batch_delay=0.5) as server:
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = subprocess.Popen(
            shoal_argv("run", "PLAN.md", "--yes", "--batch"),
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not server.batches.created and time.monotonic() < deadline:
            time.sleep(0.005)
        process.kill()
        process.wait(timeout=30)
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--batch", env=env)
        created = list(server.batches.created)
        online = server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    assert shipped(workspace) == SHIPPED and online == 0
    sent = [custom_id for batch in created for custom_id in batch["custom_ids"]]
    assert len(sent) == len(set(sent)) == 21  # every request submitted once, across the kill
