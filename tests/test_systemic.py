"""The plan's systemic rule compares failures without what is specific to each task: the same
problem worded with each task's title, slug and numbers still stops the phase."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from helpers import invoke_shoal
from plan_helpers import copy_example, replies, shipped, status_cells, write_replies

# A content linter whose one complaint names the task: its title, its slug and numbers.
LINTER = """
import pathlib, re, sys
path = pathlib.Path(sys.argv[1])
title = re.search(r"^title: (.*)$", path.read_text(), re.M).group(1).strip()
if len(title) > 10:
    print(f"{path}:2: the title {title} of {path.stem} is {len(title)} characters, over 10")
    sys.exit(1)
"""


def test_three_tasks_with_the_same_title_problem_stop_the_phase_instead_of_escalating(
    workspace: Path,
) -> None:
    copy_example(workspace)
    (workspace / "lint_content.py").write_text(LINTER)
    scripted = replies(workspace)
    fixes = []  # every attempt to fix the lint failure hands back the same draft
    for title in ("Role-Based Access Control", "OAuth and OIDC Patterns", "Session Management"):
        draft = next(i["reply"] for i in scripted if i["match"] == f'Create the document "{title}"')
        fixes.append({"match": f'The linter rejected your draft of "{title}"', "reply": draft})
    write_replies(workspace, [*fixes, *scripted])
    result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", "--phase", "1")
    assert result.returncode == 1, result.stderr
    assert "phase 1 stopped after lint: 3 of 3 tasks fail the same way" in result.stderr
    assert "the title <item> of <item> is N characters, over N" in result.stderr
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        failures = [
            json.loads(detail)["violations"][0]
            for (detail,) in conn.execute("SELECT detail FROM events WHERE kind = 'stage'")
            if json.loads(detail).get("outcome") == "failed"
        ]
        escalated = conn.execute("SELECT count(*) FROM calls WHERE model LIKE '%sonnet%'").fetchone()[0]
        reviews = conn.execute("SELECT count(*) FROM calls WHERE stage LIKE '%/review'").fetchone()[0]
    assert len(failures) == 3 and len(set(failures)) == 3  # worded differently for every task
    assert escalated == 0 and reviews == 0  # nothing more was spent on the phase
    assert shipped(workspace) == set()
    statuses = status_cells((workspace / "PLAN.md").read_text())
    assert {statuses[name] for name in ("rbac.md", "oauth-oidc.md", "session-management.md")} == {"pending"}
