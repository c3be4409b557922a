"""`shoal draft` as a user runs it: the drafting model is the rehearsal provider with scripted
replies (matched on the conversation's last message), so nothing leaves the machine."""

from __future__ import annotations

import json
import os
import pty
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from shoal.dashboard._data import JournalView
from shoal.fake import FakeReply, FakeServer, FakeSettings

from helpers import clean_env, invoke_shoal, run_shoal, shoal_argv

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TASK = "Add docstrings to textkit.py"
FIRST = "Write the workflow script for this task"  # in the first request's last message
REFUSED = "Your draft was refused"  # in every later request's last message

GOOD = """from pydantic import BaseModel
from shoal import agent, parallel, phase, workflow

FILES = ["textkit.py"]


class Note(BaseModel):
    file: str
    summary: str


@workflow(name="docstrings", target="proj", max_agents=8, max_tokens=60000, commands=["python -m pytest"])
async def main(files: list[str] = FILES) -> str:
    with phase("scan"):
        notes = await parallel(files, lambda f: agent(f"Summarise {f}", schema=Note, tools=["read_file"]))
    with phase("report"):
        text = await agent("Write a report: " + ", ".join(n.summary for n in notes if n))
    return text
"""
WITH_SUBPROCESS = GOOD.replace("from pydantic", "import subprocess\nfrom pydantic")
WITH_OS_SYSTEM = GOOD.replace("    return text\n", '    os.system("rm -rf ~")\n    return text\n')
WITH_SYNTAX_ERROR = GOOD.replace("async def main(", "async def main((")
WITH_NO_CAP = GOOD.replace("max_agents=8, ", "")  # 1 file in scope: at most 4 * 1 + 4 agents
WITH_OTHER_TARGET = GOOD.replace('target="proj"', 'target="elsewhere"')
WITH_A_BUG = GOOD.replace("    return text\n", "    return text[10**9]\n")  # fails only when it runs


def fenced(script: str, language: str = "python") -> str:
    return f"Here is the {language} you asked for.\n\n```{language}\n{script}```\n\nIt fans out per file."


def project(workspace: Path, *, tests: bool = True) -> Path:
    """A small target: one module, and (by default) a test suite configured in pyproject.toml."""
    proj = workspace / "proj"
    (proj / "tests").mkdir(parents=True)
    (proj / "textkit.py").write_text("def shout(text):\n    return text.upper()\n")
    if tests:
        (proj / "tests" / "test_textkit.py").write_text("from textkit import shout\n\n\ndef test_shout():\n"
                                                         "    assert shout('a') == 'A'\n")  # fmt: skip
        (proj / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    return proj


def script_replies(workspace: Path, replies: list[dict[str, object]], extra: str = "") -> None:
    (workspace / "replies.json").write_text(json.dumps(replies))
    (workspace / "shoal.toml").write_text('[rehearsal]\nreplies = "replies.json"\nlatency_s = 0\n' + extra)


def rows(workspace: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def draft_calls(workspace: Path) -> int:
    return int(rows(workspace, "SELECT count(*) FROM calls WHERE job LIKE 'draft:%'")[0][0])


def test_a_good_draft_is_validated_written_and_runs_on_rehearsal(workspace: Path) -> None:
    project(workspace)
    script_replies(workspace, [{"match": FIRST, "reply": fenced(GOOD)}])
    result = run_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", "--run")  # argv as typed
    assert result.returncode == 0, result.stderr
    assert (workspace / "workflow.py").read_text() == GOOD  # the fenced block only, no prose
    err = result.stderr
    assert "Rehearsal dry run (nothing sent): 2 phase(s) (scan, report), 2 agent(s), 2 request(s)" in err
    assert "Oracle: `python -m pytest` (pyproject.toml [tool.pytest])" in err
    assert "1. Objective oracle: is there a test suite or ground-truth check? yes" in err
    assert "2. Massive fan-out" in err and "3. Mid-run state" in err
    # --run went the way of `shoal run`: its own job, its report, and the script for the dashboard.
    assert (workspace / ".shoal" / "reports" / "docstrings.md").is_file()
    runs = rows(workspace, "SELECT job, command, status FROM runs ORDER BY id")
    # the journaled command repeats the executable as typed (here `python -m shoal`)
    assert runs[-1] == ("workflow:docstrings", shlex.join(shoal_argv("run", "workflow.py", "--yes")), "done")
    source = JournalView(workspace / ".shoal" / "journal.db", "workflow:docstrings").source()
    assert source["kind"] == "workflow" and source["text"] == GOOD
    (workspace / "workflow.py").write_text("# edited after launch\n")
    assert JournalView(workspace / ".shoal" / "journal.db", "workflow:docstrings").source()["text"] == GOOD
    assert draft_calls(workspace) == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (WITH_SUBPROCESS, "line 1: `import subprocess` is not allowed (runs commands)"),
        (WITH_OS_SYSTEM, "line 18: `os.system` is not allowed: the os module runs commands"),
        (WITH_SYNTAX_ERROR, "syntax error on line 13"),
        (WITH_NO_CAP, "@workflow(max_agents=...) must be set and at most 8 (unset now)"),
        (WITH_OTHER_TARGET, "@workflow(target=...) must be the assessed directory"),
        (WITH_A_BUG, "the rehearsal dry run failed: the workflow raised IndexError: string index out of"),
    ],
    ids=["subprocess", "os-system", "syntax-error", "no-cap", "other-target", "fails-in-dry-run"],
)
def test_a_refused_draft_goes_back_with_the_error_and_is_fixed(
    workspace: Path, bad: str, reason: str
) -> None:
    project(workspace)
    script_replies(
        workspace, [{"match": FIRST, "reply": fenced(bad)}, {"match": REFUSED, "reply": fenced(GOOD)}]
    )
    result = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"draft: round 1: refused: {reason}" in result.stderr
    assert (workspace / "workflow.py").read_text() == GOOD
    events = rows(workspace, "SELECT detail FROM events WHERE kind = 'draft' ORDER BY id")
    details = [json.loads(str(d[0])) for d in events]
    assert [d["outcome"] for d in details] == ["refused", "accepted"] and reason in details[0]["error"]
    assert draft_calls(workspace) == 2


def test_after_the_last_round_it_exits_1_and_writes_nothing(workspace: Path) -> None:
    project(workspace)
    script_replies(
        workspace,
        [
            {"match": FIRST, "reply": fenced(WITH_SUBPROCESS)},
            {"match": REFUSED, "reply": fenced(WITH_OS_SYSTEM)},
        ],
        extra="\n[draft]\nfix_rounds = 1\n",
    )
    result = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", "--run")
    assert result.returncode == 1, result.stderr
    assert "draft: refused after 2 round(s), nothing written: " in result.stderr
    assert "`os.system` is not allowed" in result.stderr.splitlines()[-1]
    assert not (workspace / "workflow.py").exists()
    assert draft_calls(workspace) == 2
    assert [r[0] for r in rows(workspace, "SELECT job FROM runs")] == [
        rows(workspace, "SELECT job FROM runs")[0][0]
    ]


def test_without_an_oracle_it_is_refused_unless_no_oracle(workspace: Path) -> None:
    project(workspace, tests=False)
    script_replies(workspace, [{"match": FIRST, "reply": fenced(GOOD)}])
    refused = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shoal: error: no test suite or other oracle found")
    assert "--no-oracle" in lines[0]
    assert not (workspace / ".shoal" / "journal.db").exists()  # nothing sent, nothing journaled
    allowed = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", "--no-oracle")
    assert allowed.returncode == 0, allowed.stderr
    assert "1. Objective oracle: is there a test suite or ground-truth check? no -> stop" in allowed.stderr


def test_no_terminal_and_no_yes_exits_2_before_anything_is_sent(workspace: Path) -> None:
    project(workspace)
    script_replies(workspace, [{"match": FIRST, "reply": fenced(GOOD)}])
    result = invoke_shoal(workspace, "draft", TASK, "--target", "proj")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert not (workspace / ".shoal" / "journal.db").exists()


def test_an_existing_out_file_is_kept_without_force(workspace: Path) -> None:
    project(workspace)
    script_replies(workspace, [{"match": FIRST, "reply": fenced(GOOD)}])
    (workspace / "mine.py").write_text("# my own script\n")
    kept = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", "--out", "mine.py")
    assert kept.returncode == 2 and "--force" in kept.stderr
    assert (workspace / "mine.py").read_text() == "# my own script\n"
    replaced = invoke_shoal(
        workspace, "draft", TASK, "--target", "proj", "--yes", "--out", "mine.py", "--force"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert (workspace / "mine.py").read_text() == GOOD


def test_declining_writes_nothing_and_runs_nothing(workspace: Path) -> None:
    project(workspace)
    script_replies(workspace, [{"match": FIRST, "reply": fenced(GOOD)}])
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"n\n")  # the answer waits in the terminal until the prompt reads it
        proc = subprocess.Popen(
            shoal_argv("draft", TASK, "--target", "proj", "--run"),
            cwd=workspace,
            env=clean_env(),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 3, err
    assert "Write the workflow to workflow.py? [y/N]" in err and "draft: not written" in err
    assert not (workspace / "workflow.py").exists()
    assert [r[0] for r in rows(workspace, "SELECT job FROM runs")][-1].startswith("draft:")  # no run job
    assert draft_calls(workspace) == 1


def test_rerunning_the_same_draft_sends_nothing(workspace: Path) -> None:
    project(workspace)
    script_replies(
        workspace,
        [{"match": FIRST, "reply": fenced(WITH_SUBPROCESS)}, {"match": REFUSED, "reply": fenced(GOOD)}],
    )
    first = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert first.returncode == 0, first.stderr
    assert "2 requests sent, 0 replayed" in first.stderr
    again = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert again.returncode == 0, again.stderr
    assert "0 requests sent, 2 replayed" in again.stderr
    assert "draft: workflow.py already holds this workflow; unchanged" in again.stderr
    assert draft_calls(workspace) == 2  # no new call in the journal
    assert rows(workspace, "SELECT count(*) FROM runs WHERE job LIKE 'draft:%'")[0][0] == 2


PLAN = """# Identity guides

## Format Reference

docs/completed/authentication-overview.md

## Output Directory

docs/guides/

## Content Rules

- Every guide needs front matter: title, description, category, tags

## Validation Checklist

1. Linter passes: `python lint_content.py <filepath>`
2. File registered in `docs/config.json`

## Phase 1: Fundamentals

| # | Title | Filename | Model | Status |
|---|-------|----------|-------|--------|
| 1 | Role-Based Access Control | rbac.md | haiku | pending |
| 2 | Session Management | session-management.md | haiku | pending |
"""


def test_a_drafted_plan_is_one_shoal_run_accepts(workspace: Path) -> None:
    for item in (EXAMPLES / "guides").iterdir():
        if item.name != "PLAN.md":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, workspace / item.name)
    replies = json.loads((workspace / "rehearsal.json").read_text())
    broken = PLAN.replace("lint_content.py", "no_such_linter.py")
    replies += [
        {"match": "Write the batch plan for this task", "reply": fenced(broken, "markdown")},
        {"match": REFUSED, "reply": fenced(PLAN, "markdown")},
    ]
    (workspace / "rehearsal.json").write_text(json.dumps(replies))
    task = "Write guides on access control and sessions"
    result = invoke_shoal(workspace, "draft", task, "--plan", "--target", "docs", "--no-oracle", "--yes")
    assert result.returncode == 0, result.stderr
    assert "draft: round 1: refused: PLAN.md:" in result.stderr and "no_such_linter.py" in result.stderr
    assert (workspace / "PLAN.md").read_text() == PLAN
    assert "Plan: 2 pending task(s) in 1 phase(s)" in result.stderr
    assert "? yes\n   (`python lint_content.py <filepath>` (the plan's lint command))" in result.stderr
    run = invoke_shoal(workspace, "run", "PLAN.md", "--yes")
    assert run.returncode in (0, 1), run.stderr  # accepted and run (a task may end needs-review)
    assert "Plan PLAN.md: 2 pending task(s), mode phased" in run.stderr
    assert any((workspace / "docs" / "guides").glob("*.md"))


def test_a_hosted_drafting_model_is_asked_once_per_round_and_never_again(workspace: Path) -> None:
    """The fake server stands in for a hosted model: it counts what reaches it. The dry run of the
    drafted script (whose agents name the same hosted model) sends it nothing; a rerun sends nothing."""
    project(workspace)
    (workspace / "shoal.toml").write_text('[workflow]\ndefault_model = "openai:gpt-4o-mini"\n')
    replies = (FakeReply(FIRST, fenced(WITH_SUBPROCESS)), FakeReply(REFUSED, fenced(GOOD)))
    with FakeServer(FakeSettings(latency_s=0.0, replies=replies)) as server:
        env = clean_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.openai_base_url)
        first = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", env=env)
        assert first.returncode == 0, first.stderr
        assert server.backend.stats["requests"] == 2  # two rounds; the dry run's 2 requests stayed in-process
        assert "Models: default openai:gpt-4o-mini" in first.stderr
        assert "2 agent(s), 2 request(s)" in first.stderr
        again = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes", env=env)
        assert again.returncode == 0, again.stderr
        assert server.backend.stats["requests"] == 2
    assert (workspace / "workflow.py").read_text() == GOOD


def test_a_script_that_never_yields_is_killed_at_the_dry_run_timeout(workspace: Path) -> None:
    project(workspace)
    spinning = GOOD.replace(
        '    with phase("scan"):\n', '    while True:\n        pass\n    with phase("scan"):\n'
    )
    script_replies(
        workspace,
        [{"match": FIRST, "reply": fenced(spinning)}],
        extra="\n[draft]\nfix_rounds = 0\nrehearsal_timeout_s = 2\n",
    )
    result = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert result.returncode == 1, result.stderr
    assert "refused after 1 round(s), nothing written: the rehearsal dry run did not finish within 2 s" in (
        result.stderr
    )
    assert not (workspace / "workflow.py").exists()


LOOP = """from shoal import phase, verify_fix, workflow


@workflow(name="port", target="proj", max_agents=8, max_tokens=60000, commands=["python -m pytest"])
async def main() -> str:
    with phase("port"):
        outcome = await verify_fix(
            "Port textkit.py", verify="Find what is wrong", fix="Fix it", oracle="ORACLE", max_rounds=2
        )
    return str(outcome.stopped)
"""


def test_a_drafted_oracle_is_shown_but_not_run_before_approval(workspace: Path) -> None:
    project(workspace)
    sentinel = workspace / "oracle-ran"
    script = LOOP.replace("ORACLE", f"touch {sentinel}")
    script_replies(workspace, [{"match": FIRST, "reply": fenced(script)}])
    result = invoke_shoal(workspace, "draft", TASK, "--target", "proj", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"Oracles of its verify_fix loops: `touch {sentinel}` (not run by the dry run)" in result.stderr
    assert "verify_fix loops 1" in result.stderr
    assert not sentinel.exists()
    assert (workspace / "workflow.py").read_text() == script
