"""`shoal map --roles` end to end against the fake server on 127.0.0.1: several roles per record,
one depending on another, resumed after kill -9, with a role that fails for good."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shoal.fake import FakeBackend, FakeCall, FakeLimits, FakeReply, FakeResult, FakeServer, FakeSettings

from helpers import clean_env, invoke_shoal, output_ids, shoal_argv

SECRET = "sk-test-roles-0123456789"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "roles"
ROLES = ("summary", "tags", "classify", "refined")
ARGV = ("map", "docs.jsonl", "--roles", "roles.toml", "--model", "openai:gpt-4o-mini", "--out", "out.jsonl")


class RecordingBackend(FakeBackend):
    """The fake provider, keeping every request it was sent (the server's log of prompts)."""

    def __init__(self, settings: FakeSettings) -> None:
        super().__init__(settings)
        self.calls: list[FakeCall] = []

    async def handle(self, call: FakeCall) -> FakeResult:
        self.calls.append(call)
        return await super().handle(call)


def fast(**extra: object) -> FakeSettings:
    return FakeSettings(limits=FakeLimits(rpm=60_000, tpm=50_000_000), **extra)  # type: ignore[arg-type]


def copy_example(workspace: Path, records: int | None = None) -> list[str]:
    for name in ("roles.toml", "tags.json", "classify.json"):
        shutil.copy(EXAMPLE / name, workspace / name)
    docs = [json.loads(line) for line in (EXAMPLE / "docs.jsonl").read_text().splitlines()]
    if records is not None:  # more records: the example's documents again under new ids
        docs = [{**docs[i % len(docs)], "id": f"doc-{i:03d}"} for i in range(records)]
    (workspace / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return [d["id"] for d in docs]


def journal_rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def lines(workspace: Path) -> dict[str, dict]:
    return {
        (doc := json.loads(line))["id"]: doc for line in (workspace / "out.jsonl").read_text().splitlines()
    }


def role_of(call: FakeCall) -> str:
    """Which role a request is, from the system prompt each role of the example sends first."""
    for role, marker in (
        ("summary", "You summarise"),
        ("tags", "You tag"),
        ("classify", "You classify"),
        ("refined", "You write the abstract"),
    ):
        if call.prompt_text.startswith(marker):
            return role
    raise AssertionError(call.prompt_text[:80])


def test_every_record_gets_every_role_and_the_dependent_sees_its_dependency(workspace: Path) -> None:
    ids = copy_example(workspace)
    backend = RecordingBackend(fast(latency_s=0.01))
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, *ARGV, env=env)
    assert result.returncode == 0, result.stderr
    out = lines(workspace)
    assert sorted(out) == sorted(ids)
    for doc in out.values():
        assert list(doc["roles"]) == list(ROLES)
        assert set(doc["model"].values()) == {"openai:gpt-4o-mini"}
        assert all(doc["usage"][role]["output_tokens"] > 0 for role in ROLES)
        assert isinstance(doc["roles"]["tags"]["tags"], list)
        assert doc["roles"]["classify"]["type"] in {"invoice", "contract", "report", "memo", "other"}
    assert len(backend.calls) == len(ids) * len(ROLES)
    refined = [call for call in backend.calls if role_of(call) == "refined"]
    assert len(refined) == len(ids)
    summaries = {doc["roles"]["summary"] for doc in out.values()}
    for call in refined:  # each dependent prompt carries one record's summary, as answered
        assert sum(summary in call.last_message for summary in summaries) == 1
    for doc in out.values():
        assert any(doc["roles"]["summary"] in call.last_message for call in refined)
    # One stage per role in the journal: per-role progress, tokens and cost in every view.
    stages = dict(
        journal_rows(workspace, "SELECT stage, count(*) FROM calls WHERE outcome = 'ok' GROUP BY stage")
    )
    assert stages == dict.fromkeys(ROLES, len(ids))
    status = invoke_shoal(workspace, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    shown = {stage["name"]: stage for stage in json.loads(status.stdout)["stages"]}
    assert [shown[r]["done"] for r in ROLES] == [len(ids)] * 4
    assert all(shown[r]["output_tokens"] > 0 and shown[r]["cost_usd"] > 0 for r in ROLES)
    assert all(shown[r]["model_s"] > 0 and shown[r]["queue_s"] >= 0 for r in ROLES)  # where time went
    view = invoke_shoal(workspace, "status", env=env)
    assert "per call, model + queue wait: summary" in " ".join(view.stdout.split())
    report = invoke_shoal(workspace, "report", env=env)
    assert report.returncode == 0, report.stderr
    timing = (workspace / "report.md").read_text().split("## Where the time went")[1].split("\n## ")[0]
    assert all(f"| {role} | {len(ids)} |" in timing for role in ROLES)


def test_a_dependent_starts_before_later_records_are_begun(workspace: Path) -> None:
    """No barrier between roles across records: record 0's dependent goes before record 9's roots."""
    ids = copy_example(workspace, records=10)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 2\n")
    backend = RecordingBackend(fast(latency_s=0.01))
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, *ARGV, env=env)
    assert result.returncode == 0, result.stderr
    order = [(role_of(call), call.last_message) for call in backend.calls]
    text = json.loads((workspace / "docs.jsonl").read_text().splitlines()[0])["text"]
    first_refined = next(i for i, (role, _) in enumerate(order) if role == "refined")
    summaries = [i for i, (role, _) in enumerate(order) if role == "summary"]
    assert first_refined < summaries[-1]
    assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)
    assert text  # the documents are real text, so the prompts differ per record


@pytest.mark.long
def test_kill_9_then_rerun_sends_no_role_call_twice(workspace: Path) -> None:
    ids = copy_example(workspace, records=30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    with FakeServer(fast(latency_s=0.05, seed=5)) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        process = subprocess.Popen(
            shoal_argv(*ARGV), cwd=workspace, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 40
        journal = workspace / ".shoal" / "journal.db"
        while time.monotonic() < deadline:  # wait for refined answers: dependents are under way
            if journal.exists():
                try:
                    if (
                        journal_rows(workspace, "SELECT count(*) FROM calls WHERE stage = 'refined'")[0][0]
                        >= 3
                    ):
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        finished_before = {
            row[0] for row in journal_rows(workspace, "SELECT key FROM calls WHERE outcome = 'ok'")
        }
        assert finished_before, "the kill came before anything finished"
        assert len(finished_before) < len(ids) * len(ROLES)
        result = invoke_shoal(workspace, *ARGV, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)  # every record exactly once
    runs = journal_rows(workspace, "SELECT id FROM runs ORDER BY id")
    sent_again = {
        row[0] for row in journal_rows(workspace, f"SELECT key FROM calls WHERE run_id = {runs[-1][0]}")
    }
    assert not finished_before & sent_again
    twice = journal_rows(
        workspace, "SELECT key FROM calls WHERE outcome = 'ok' GROUP BY key HAVING count(*) > 1"
    )
    assert twice == []
    answered = journal_rows(
        workspace, "SELECT stage, count(*) FROM calls WHERE outcome = 'ok' GROUP BY stage"
    )
    assert dict(answered) == dict.fromkeys(ROLES, len(ids))


def test_an_edited_dependent_prompt_resends_only_that_role(workspace: Path) -> None:
    ids = copy_example(workspace)
    backend = RecordingBackend(fast(latency_s=0.01))
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        assert invoke_shoal(workspace, *ARGV, env=env).returncode == 0
        before = lines(workspace)
        roles = workspace / "roles.toml"
        text = roles.read_text()
        assert "Expand this summary" in text
        roles.write_text(text.replace("Expand this summary", "Rewrite this summary at length"))
        (workspace / "out.jsonl").rename(workspace / "old.jsonl")  # results of the new prompt wanted
        backend.calls.clear()
        result = invoke_shoal(workspace, *ARGV, env=env)
    assert result.returncode == 0, result.stderr
    assert [role_of(call) for call in backend.calls] == ["refined"] * len(ids)
    assert all("Rewrite this summary at length" in call.last_message for call in backend.calls)
    after = lines(workspace)
    for record_id in ids:  # the other roles' answers come back from the journal, unchanged
        for role in ("summary", "tags", "classify"):
            assert after[record_id]["roles"][role] == before[record_id]["roles"][role]


def test_a_role_failing_for_good_skips_its_dependents_and_keeps_the_rest(workspace: Path) -> None:
    ids = copy_example(workspace)
    docs = [json.loads(line) for line in (workspace / "docs.jsonl").read_text().splitlines()]
    docs[2]["text"] = "POISON " + docs[2]["text"]
    (workspace / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    poisoned = docs[2]["id"]
    (workspace / "shoal.toml").write_text("[job]\nmax_attempts = 2\n")
    # The first two answers to this record's summary prompt are empty: with 2 attempts, the role
    # fails for good in the first run; the provider has recovered by the rerun.
    empty = FakeReply(match="Summarise this document:\n\nPOISON", reply="", times=2)
    backend = RecordingBackend(fast(latency_s=0.01, replies=(empty,)))
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = invoke_shoal(workspace, *ARGV, env=env)
        first = list(backend.calls)
        written_first = output_ids(workspace / "out.jsonl")
        items = dict(
            journal_rows(workspace, f"SELECT item, status FROM items WHERE item LIKE '{poisoned}#%'")
        )
        backend.calls.clear()
        again = invoke_shoal(workspace, *ARGV, env=env)
    assert result.returncode == 1, result.stderr
    assert sorted(written_first) == sorted(i for i in ids if i != poisoned)
    failed_line = next(line for line in result.stderr.splitlines() if line.strip().startswith("failed:"))
    assert (
        poisoned in failed_line
        and "role 'summary' failed" in failed_line
        and "skipped: refined" in failed_line
    )
    # No refined call for the poisoned record; its tags and classify were answered and journaled.
    assert not [c for c in first if role_of(c) == "refined" and "POISON" in c.prompt_text]
    assert items == {
        f"{poisoned}#summary": "failed",
        f"{poisoned}#tags": "done",
        f"{poisoned}#classify": "done",
        f"{poisoned}#refined": "pending",
    }
    # The rerun sends the failed role and the role it blocked, and nothing that was answered.
    assert again.returncode == 0, again.stderr
    assert [role_of(c) for c in backend.calls] == ["summary", "refined"]
    summary, refined = backend.calls
    assert "POISON" in summary.prompt_text and docs[2]["title"] in refined.prompt_text
    assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)


def test_retry_failed_sends_the_failed_role_afresh_under_a_new_key(workspace: Path) -> None:
    ids = copy_example(workspace)
    (workspace / "shoal.toml").write_text("[job]\nmax_attempts = 1\n")
    first_id = ids[0]
    text = json.loads((workspace / "docs.jsonl").read_text().splitlines()[0])["text"]
    # The first tags answer of the first document does not match the schema: tags fails for good.
    bad = FakeReply(match=f"Give 5 tags for this document:\n\n{text}", reply='{"tags": 7}', times=1)
    backend = RecordingBackend(fast(latency_s=0.01, replies=(bad,)))
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        assert invoke_shoal(workspace, *ARGV, env=env).returncode == 1
        backend.calls.clear()
        result = invoke_shoal(workspace, *ARGV, "--retry-failed", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 record(s) with a failed role were sent afresh" in result.stderr
    assert [role_of(c) for c in backend.calls] == ["tags"]  # tags has no dependents: only it is sent
    keys = journal_rows(workspace, f"SELECT DISTINCT key FROM calls WHERE scope LIKE '%#{first_id}#tags'")
    assert len(keys) == 2  # the failed attempt stays in the journal under its own key
    assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)
