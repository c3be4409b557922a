"""Scripted tool calls on the keyless rehearsal provider: `shoal run flow.py` whose agents call their
typed tools because the replies file says so, journaled and replayed like every other model turn."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from helpers import invoke_shoal

FLOW = """
from shoal import agent, workflow

def square(n: int) -> str:
    \"\"\"The square of n, in words.\"\"\"
    return f"{n} squared is {n * n}"

@workflow(name="squares")
async def main() -> str:
    answers = [await agent(f"Task {i}: please square", tools=[square], name=f"a{i}") for i in range(2)]
    return "\\n".join(answers)
"""


def rows(workspace: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def scripted(workspace: Path, replies: list[dict[str, Any]]) -> None:
    (workspace / "flow.py").write_text(FLOW)
    (workspace / "replies.json").write_text(json.dumps(replies))
    (workspace / "shoal.toml").write_text('[rehearsal]\nreplies = "replies.json"\n')


def test_a_scripted_call_runs_the_tool_and_its_result_answers_the_agent(workspace: Path) -> None:
    scripted(
        workspace,
        [
            {"match": "please square", "call": {"tool": "square", "args": {"n": 7}}},
            # The tool's return is the next turn's last message: "Result of tool square: ...".
            {"match": "Result of tool square: 7 squared is 49", "reply": "the tool said 49"},
        ],
    )
    first = invoke_shoal(workspace, "run", "flow.py", "--yes")
    assert first.returncode == 0, first.stderr
    assert "requests 4 sent, 0 replayed" in first.stderr
    report = (workspace / ".shoal" / "reports" / "squares.md").read_text()
    assert report.splitlines() == ["the tool said 49", "the tool said 49"]
    # Each agent's first turn is journaled as a model answer that calls the tool.
    answers = [json.loads(text)[0]["parts"][0] for (text,) in rows(workspace, "SELECT response FROM calls")]
    calls = [part for part in answers if part["part_kind"] == "tool-call"]
    assert len(calls) == 2 and all(c["tool_name"] == "square" and c["args"] == {"n": 7} for c in calls)
    assert all(c["tool_call_id"] for c in calls)

    again = invoke_shoal(workspace, "run", "flow.py", "--yes")
    assert again.returncode == 0, again.stderr
    assert "requests 0 sent, 4 replayed" in again.stderr
    # Nothing sent twice: the journal holds the first run's four calls and no more.
    assert rows(workspace, "SELECT count(*), count(DISTINCT key) FROM calls") == [(4, 4)]
    assert (workspace / ".shoal" / "reports" / "squares.md").read_text() == report


def test_without_a_reply_for_the_result_the_default_answer_ends_the_agent(workspace: Path) -> None:
    scripted(workspace, [{"match": "please square", "call": {"tool": "square", "args": {"n": 3}}}])
    result = invoke_shoal(workspace, "run", "flow.py", "--yes")
    assert result.returncode == 0, result.stderr
    report = (workspace / ".shoal" / "reports" / "squares.md").read_text()
    assert report.count("[rehearsal]") == 2
    assert rows(workspace, "SELECT count(*) FROM calls WHERE outcome = 'ok'") == [(4,)]
    sessions = [text for (text,) in rows(workspace, "SELECT messages FROM sessions")]
    assert all("3 squared is 9" in text for text in sessions)  # the tool ran for every agent


def test_a_call_to_a_tool_the_agent_lacks_fails_the_agent_in_one_line(workspace: Path) -> None:
    scripted(workspace, [{"match": "please square", "call": {"tool": "cube", "args": {"n": 3}}}])
    result = invoke_shoal(workspace, "run", "flow.py", "--yes")
    assert result.returncode == 1
    refusal = "scripted reply calls tool 'cube', which agent a0 does not have (its tools: square)"
    assert refusal in result.stderr
    assert rows(workspace, "SELECT outcome, count(*) FROM calls GROUP BY outcome") == [("rejected", 1)]


def test_a_bad_call_entry_stops_the_run_in_one_line(workspace: Path) -> None:
    scripted(workspace, [{"match": "please square", "reply": "x", "call": {"tool": "square"}}])
    result = invoke_shoal(workspace, "run", "flow.py", "--yes")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'needs exactly one of "reply" (text) and "call"' in lines[0], result.stderr


@pytest.mark.long
def test_a_call_entry_that_matches_a_plain_map_call_fails_that_record_not_silently(workspace: Path) -> None:
    (workspace / "in.jsonl").write_text('{"id": "r1", "topic": "squares"}\n{"id": "r2", "topic": "cubes"}\n')
    (workspace / "replies.json").write_text(
        json.dumps([{"match": "about squares", "call": {"tool": "square", "args": {"n": 2}}}])
    )
    (workspace / "shoal.toml").write_text('[rehearsal]\nreplies = "replies.json"\n')
    argv = ("map", "in.jsonl", "--prompt", "Write about {topic}.", "--model", "rehearsal", "--out", "o.jsonl")
    result = invoke_shoal(workspace, *argv)
    assert result.returncode == 1
    assert "r1: the reply calls tool 'square', but this call has no tools" in result.stderr
    written = [json.loads(line) for line in (workspace / "o.jsonl").read_text().splitlines()]
    assert [record["id"] for record in written] == ["r2"]  # the other record is unaffected
    assert rows(workspace, "SELECT count(*) FROM calls WHERE outcome = 'invalid'")[0][0] >= 1
