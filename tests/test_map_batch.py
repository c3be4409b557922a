"""`shoal map --batch` end to end against the fake server's batch APIs on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shoal.fake import FakeBatchSettings, FakeServer, FakeSettings

from helpers import clean_env, invoke_shoal, output_ids, shoal_argv, write_records

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["title", "score"],
}
FAST_POLL = "[batch]\npoll_s = 0.05\n"


def map_argv(model: str = "openai:gpt-4o-mini", *extra: str) -> list[str]:
    return [
        "map",
        "in.jsonl",
        "--prompt",
        "Explain {topic}.",
        "--model",
        model,
        "--out",
        "out.jsonl",
        "--max-tokens",
        "60",
        "--schema",
        "schema.json",
        *extra,
    ]


def setup_workspace(workspace: Path, count: int, config: str = FAST_POLL) -> list[str]:
    (workspace / "schema.json").write_text(json.dumps(SCHEMA))
    (workspace / "shoal.toml").write_text(config)
    return write_records(workspace / "in.jsonl", count)


def env_for(server: FakeServer) -> dict[str, str]:
    return clean_env(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=server.openai_base_url,
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL=server.anthropic_base_url,
    )


def journal(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def outputs(workspace: Path) -> list[dict]:
    return [json.loads(line) for line in (workspace / "out.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_batch_map_delivers_every_record_validated_at_half_the_online_cost(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory, model: str
) -> None:
    ids = setup_workspace(workspace, 12)
    online_dir = tmp_path_factory.mktemp("online")
    setup_workspace(online_dir, 12)
    with FakeServer(FakeSettings(latency_s=0.0)) as server:
        batch = invoke_shoal(workspace, *map_argv(model, "--batch"), env=env_for(server))
        online = invoke_shoal(online_dir, *map_argv(model), env=env_for(server))
        created = list(server.batches.created)
        online_requests = server.backend.stats["requests"]
    assert batch.returncode == 0, batch.stderr
    assert online.returncode == 0, online.stderr
    assert len(created) == 1 and created[0]["requests"] == 12
    assert online_requests == 12  # the batch run sent nothing online
    assert sorted(output_ids(workspace / "out.jsonl")) == ids  # every record, once
    for line in outputs(workspace):
        assert set(line["output"]) == {"title", "score"} and isinstance(line["output"]["score"], int)
    assert "batch: about" in batch.stderr and "online:" in batch.stderr
    sql = (
        "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM calls WHERE outcome='ok'"
    )
    (b_calls, b_in, b_out, b_cost), (o_calls, o_in, o_out, o_cost) = (
        journal(workspace, sql)[0],
        journal(online_dir, sql)[0],
    )
    assert (b_calls, b_in, b_out) == (o_calls, o_in, o_out)  # the same tokens...
    assert b_cost == pytest.approx(o_cost / 2)  # ...at half the price
    report = invoke_shoal(workspace, "report", env=clean_env())
    assert report.returncode == 0, report.stderr
    assert (
        "would have cost" in (workspace / "report.md").read_text()
        and "saved" in (workspace / "report.md").read_text()
    )
    # A rerun replays from the journal: no second batch.
    with FakeServer(FakeSettings()) as server:
        again = invoke_shoal(workspace, *map_argv(model, "--batch"), env=env_for(server))
        assert server.batches.created == []
    assert again.returncode == 0, again.stderr


def test_failed_and_expired_requests_go_into_a_second_batch(workspace: Path) -> None:
    ids = setup_workspace(workspace, 10, "[job]\nbatch = true\n\n" + FAST_POLL)  # batch from shoal.toml
    settings = FakeSettings(
        batch=FakeBatchSettings(error_match=("topic number 3.",), expire_match=("topic number 7.",))
    )
    with FakeServer(settings) as server:
        result = invoke_shoal(workspace, *map_argv("openai:gpt-4o-mini"), env=env_for(server))
        created = list(server.batches.created)
    assert result.returncode == 0, result.stderr
    assert [c["requests"] for c in created] == [10, 2]  # only the two that failed went again
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    outcomes = journal(workspace, "SELECT outcome, count(*) FROM calls GROUP BY outcome ORDER BY outcome")
    assert outcomes == [("batch_error", 1), ("batch_expired", 1), ("ok", 10)]


def test_requests_out_of_batch_attempts_fail_or_go_online(workspace: Path) -> None:
    setup_workspace(workspace, 4, FAST_POLL + "max_attempts = 1\n")
    settings = FakeSettings(batch=FakeBatchSettings(error_match=("topic number 2.",), fault_times=5))
    with FakeServer(settings) as server:
        failed = invoke_shoal(workspace, *map_argv("openai:gpt-4o-mini", "--batch"), env=env_for(server))
        assert failed.returncode == 1
        assert "rec-002" in failed.stderr and len(server.batches.created) == 1
        online = invoke_shoal(
            workspace,
            *map_argv("openai:gpt-4o-mini", "--batch", "--retry-failed", "--batch-fallback", "online"),
            env=env_for(server),
        )
        # --retry-failed gives rec-002 a new key: one more batch for it, then the online path.
        assert online.returncode == 0, online.stderr
        assert len(server.batches.created) == 2 and server.backend.stats["requests"] == 1
    assert sorted(output_ids(workspace / "out.jsonl")) == ["rec-000", "rec-001", "rec-002", "rec-003"]


def test_account_level_error_stops_the_job_naming_it(workspace: Path) -> None:
    setup_workspace(workspace, 6)
    settings = FakeSettings(batch=FakeBatchSettings(account_error="insufficient_quota"))
    with FakeServer(settings) as server:
        result = invoke_shoal(workspace, *map_argv("openai:gpt-4o-mini", "--batch"), env=env_for(server))
        created = len(server.batches.created)
    assert result.returncode == 1
    assert "insufficient_quota" in result.stderr
    assert created == 1  # not resubmitted


def test_cost_budget_stops_before_submitting_a_batch_that_could_exceed_it(workspace: Path) -> None:
    setup_workspace(workspace, 20)
    with FakeServer(FakeSettings()) as server:
        # 20 requests x 60 answer tokens at $0.30/M (half of gpt-4o-mini's $0.60) is $0.00036 at worst.
        result = invoke_shoal(
            workspace,
            *map_argv("openai:gpt-4o-mini", "--batch", "--max-cost", "0.0002"),
            env=env_for(server),
        )
        created = len(server.batches.created)
    assert result.returncode == 3, result.stderr
    assert created == 0
    assert "nothing was submitted" in result.stderr
    assert not (workspace / "out.jsonl").exists() or output_ids(workspace / "out.jsonl") == []


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_kill_after_submission_then_rerun_collects_the_same_batch(workspace: Path, model: str) -> None:
    ids = setup_workspace(workspace, 8)
    settings = FakeSettings(batch=FakeBatchSettings(delay_s=1.5))
    with FakeServer(settings) as server:
        env = env_for(server)
        process = subprocess.Popen(
            shoal_argv(*map_argv(model, "--batch")),
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not server.batches.created and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert len(server.batches.created) == 1
        rerun = invoke_shoal(workspace, *map_argv(model, "--batch"), env=env)
        created = list(server.batches.created)
    assert rerun.returncode == 0, rerun.stderr
    assert len(created) == 1  # collected, never submitted again
    assert sorted(output_ids(workspace / "out.jsonl")) == ids


def test_ctrl_c_leaves_the_batch_running_and_cancel_cancels_it(workspace: Path) -> None:
    setup_workspace(workspace, 5)
    with FakeServer(FakeSettings(batch=FakeBatchSettings(delay_s=60))) as server:
        env = env_for(server)
        process = subprocess.Popen(
            shoal_argv(*map_argv("openai:gpt-4o-mini", "--batch")),
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        # Ctrl-C once the open batch has been polled: its counts are in the journal for status to show.
        while time.monotonic() < deadline and not journal_has_open_batch(workspace, polled=True):
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 3, stderr
        assert server.batches.cancelled == []
        batch_id = server.batches.created[0]["batch_id"]
        status = invoke_shoal(workspace, "status", "--json", env=env)
        shown = json.loads(status.stdout)["batches"]
        assert [(b["provider"], b["batch_id"], b["requests"]) for b in shown] == [("openai", batch_id, 5)]
        assert shown[0]["counts"] == {"processing": 5, "succeeded": 0, "failed": 0}
        assert batch_id in invoke_shoal(workspace, "status", env=env).stdout
        cancel = invoke_shoal(workspace, "cancel", env=env)
        assert cancel.returncode == 0, cancel.stderr
        assert server.batches.cancelled == [server.batches.created[0]["batch_id"]]
        assert len(server.batches.created) == 1


def journal_has_open_batch(workspace: Path, *, polled: bool = False) -> bool:
    """An open batch in the journal; `polled`: one whose counts a status check has recorded."""
    sql = "SELECT 1 FROM batches WHERE state = 'open'" + (" AND counts NOT IN ('{}', '')" if polled else "")
    try:
        return bool(journal(workspace, sql))
    except sqlite3.Error:
        return False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["map", "in.jsonl", "--prompt", "{topic}", "--model", "rehearsal", "--out", "o.jsonl", "--batch"],
            "no batch API",
        ),
        (
            [
                "map",
                "in.jsonl",
                "--prompt",
                "{topic}",
                "--model",
                "openai:gpt-4o-mini",
                "--out",
                "o.jsonl",
                "--batch-fallback",
                "online",
            ],
            "needs --batch",
        ),
        (["run", "PLAN.md", "--batch", "--mode", "pipeline", "--yes"], "phased mode"),
        (["run", "flow.py", "--batch"], "workflow scripts call models online"),
    ],
)
def test_batch_flags_where_they_do_not_apply_are_one_line_errors(
    workspace: Path, argv: list[str], message: str
) -> None:
    from plan_helpers import copy_example, use_openai_models

    copy_example(workspace)
    use_openai_models(workspace)
    write_records(workspace / "in.jsonl", 2)
    (workspace / "flow.py").write_text("")
    result = invoke_shoal(
        workspace, *argv, env=clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cancel_batches_flag_cancels_this_jobs_open_batch(workspace: Path) -> None:
    setup_workspace(workspace, 3)
    with FakeServer(FakeSettings(batch=FakeBatchSettings(delay_s=60))) as server:
        env = env_for(server)
        process = subprocess.Popen(
            shoal_argv(*map_argv("openai:gpt-4o-mini", "--batch")),
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not journal_has_open_batch(workspace):
            time.sleep(0.02)
        process.kill()
        process.wait(timeout=30)
        result = invoke_shoal(
            workspace, *map_argv("openai:gpt-4o-mini", "--batch", "--cancel-batches"), env=env
        )
        assert result.returncode == 0, result.stderr
        assert server.batches.cancelled == [server.batches.created[0]["batch_id"]]
        assert "1 open batch(es) cancelled" in result.stderr
    states = journal(workspace, "SELECT state FROM batches")
    assert states == [("cancelling",)]


def test_a_workflow_says_that_batch_mode_does_not_apply(workspace: Path) -> None:
    (workspace / "shoal.toml").write_text("[job]\nbatch = true\n")
    (workspace / "wf.py").write_text(
        "from shoal import agent, workflow\n\n"
        "@workflow(name='online')\n"
        "async def main() -> str:\n"
        "    return await agent('hello')\n"
    )
    result = invoke_shoal(workspace, "run", "wf.py", "--yes")
    assert result.returncode == 0, result.stderr
    assert "workflow: [job] batch does not apply: workflow agents call models online" in result.stderr
