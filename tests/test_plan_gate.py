"""Plan runs on the rehearsal provider: escalation, needs-review, systemic stops, approval, bad plans."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from helpers import invoke_shoal
from plan_helpers import copy_example as copy_plan_example
from plan_helpers import replies, shipped, status_cells, write_replies

FLAG = json.dumps(
    {
        "verdict": "flagged",
        "flags": [
            {"kind": "invented_fact", "quote": "Role-based", "problem": "cannot be verified from the brief"}
        ],
    }
)


def copy_example(workspace: Path) -> Path:
    """The example plan, with the rehearsal's simulated latency off: these tests are about the gate."""
    copy_plan_example(workspace)
    config = workspace / "shoal.toml"
    config.write_text(config.read_text().replace("latency_s = 0.2", "latency_s = 0.0"))
    return workspace


def calls(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def test_still_flagged_escalates_once_then_needs_review_and_is_not_shipped(workspace: Path) -> None:
    copy_example(workspace)
    scripted = replies(workspace)
    draft = next(
        i["reply"] for i in scripted if i["match"] == 'Create the document "Role-Based Access Control"'
    )
    write_replies(
        workspace,
        [
            {"match": 'Review the draft of "Role-Based Access Control"', "reply": FLAG},  # every time
            {"match": 'A reviewer flagged these problems in your draft of "Role-Based', "reply": draft},
            *scripted,
        ],
    )
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--phase", "1")
    assert result.returncode == 1, result.stderr
    assert "needs-review: rbac.md: still flagged" in result.stderr
    assert shipped(workspace) == {"oauth-oidc.md", "session-management.md"}
    assert not (workspace / "docs/guides/rbac.md").exists()
    plan = (workspace / "PLAN.md").read_text()
    statuses = status_cells(plan)
    assert statuses["rbac.md"] == "needs-review" and statuses["oauth-oidc.md"] == "complete"
    assert statuses["zero-trust-patterns.md"] == "pending"  # phase 2 was not asked for
    header = next(line for line in plan.splitlines() if line.startswith("| # |") and "Notes" in line)
    assert header.rstrip().endswith("Notes |")
    rbac_row = next(line for line in plan.splitlines() if "rbac.md" in line)
    assert "still flagged" in rbac_row
    # One draft per tier: haiku first, then sonnet after the escalation; never a third.
    drafts = calls(
        workspace, "SELECT model FROM calls WHERE scope LIKE '%rbac.md/writer%' AND stage LIKE '%/generate'"
    )
    assert [m for (m,) in drafts] == ["rehearsal:haiku", "rehearsal:sonnet"]
    # Items that passed were never regenerated.
    others = calls(
        workspace,
        "SELECT count(*) FROM calls WHERE scope LIKE '%oauth-oidc.md/writer%' AND stage LIKE '%/generate'",
    )
    assert others[0][0] == 1


@pytest.mark.parametrize("mode", ["phased", "pipeline"])
def test_the_same_lint_failure_in_most_tasks_stops_the_phase(workspace: Path, mode: str) -> None:
    copy_example(workspace)
    items = replies(workspace)
    for item in items:  # every draft of phase 1, and every attempted fix, quotes a price
        if str(item["match"]).startswith(("Create the document", "The linter rejected")):
            item["reply"] = str(item["reply"]).replace("## Overview\n", "## Overview\n\nPlans start at $9.\n")
    items.insert(
        0,
        {
            "match": "The linter rejected",
            "reply": next(i["reply"] for i in items if "Create the document" in str(i["match"])),
        },
    )
    write_replies(workspace, items)
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--mode", mode)
    assert result.returncode == 1, result.stderr
    stage = "lint" if mode == "phased" else "gate"
    assert f"phase 1 stopped after {stage}: 3 of 3 tasks fail the same way" in result.stderr
    assert "dollar amounts" in result.stderr
    assert shipped(workspace) == set()
    assert calls(workspace, "SELECT count(*) FROM calls WHERE stage LIKE '%/review'")[0][0] == 0
    assert calls(workspace, "SELECT count(*) FROM calls WHERE stage LIKE 'phase-2/%'")[0][0] == 0
    statuses = status_cells((workspace / "PLAN.md").read_text())
    assert {statuses[name] for name in ("zero-trust-patterns.md", "token-lifecycle.md")} == {"pending"}
    # Phased: all three stop together, still pending. Pipeline: tasks finished before the rule
    # tripped keep their verdict.
    expected = {"pending"} if mode == "phased" else {"pending", "needs-review"}
    assert {statuses[name] for name in ("rbac.md", "oauth-oidc.md", "session-management.md")} <= expected


def test_canary_runs_k_tasks_then_the_rest(workspace: Path) -> None:
    copy_example(workspace)
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--canary", "2", "--mode", "pipeline")
    assert result.returncode == 0, result.stderr
    assert "canary: 2 shipped, 0 need review" in result.stderr
    assert len(shipped(workspace)) == 6


def test_without_a_terminal_or_yes_nothing_starts(workspace: Path) -> None:
    copy_example(workspace)
    result = invoke_shoal(workspace, "run", "PLAN.md")
    assert result.returncode == 2
    assert "pass --yes" in result.stderr and "Traceback" not in result.stderr
    assert "rbac.md" in result.stderr  # the plan of what would happen was shown first
    assert not (workspace / ".shoal" / "journal.db").exists()


def test_rerun_of_a_finished_plan_does_nothing(workspace: Path) -> None:
    copy_example(workspace)
    assert invoke_shoal(workspace, "run", "PLAN.md", "--yes").returncode == 0
    again = invoke_shoal(workspace, "run", "PLAN.md", "--yes")
    assert again.returncode == 0 and "nothing pending" in again.stderr


def test_a_cost_budget_with_an_unpriced_model_is_refused(workspace: Path) -> None:
    copy_example(workspace)
    (workspace / "shoal.toml").write_text(
        (workspace / "shoal.toml")
        .read_text()
        .replace('haiku = "rehearsal:haiku"', 'haiku = "openai:my-local-llm"')
        .replace("[job]", '[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n\n[job]')
    )
    result = invoke_shoal(workspace, "run", "PLAN.md")  # no --yes: stops at the question, sends nothing
    assert result.returncode == 2
    assert "no price known for openai:my-local-llm" in result.stderr
