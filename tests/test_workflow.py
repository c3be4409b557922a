"""Workflow runs in-process on the rehearsal provider: results, journal, replay, caps, verify_fix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shoal.budget import BudgetSettings
from shoal.config import JobSettings, ModelLimits, ShoalConfig
from shoal.engine import StateDir, StopSignal, open_job
from shoal.errors import InputError
from shoal.fake import FakeLimits, FakeReply, FakeSettings
from shoal.providers import ProviderSet
from shoal.workflows import (
    Finding,
    Workflow,
    WorkflowResult,
    agent,
    bind_args,
    parallel,
    phase,
    pipeline,
    run_workflow,
    verify_fix,
    workflow,
)


class Bug(BaseModel):
    file: str
    line: int
    problem: str


class Count(BaseModel):
    widgets: int


MODELS = ("default", "fast", "smart")


def config(**job: Any) -> ShoalConfig:
    limits = {f"rehearsal:{m}": ModelLimits(rpm=60_000, tpm=50_000_000) for m in MODELS}
    return ShoalConfig(limits=limits, job=JobSettings.model_validate({"max_tokens": 200, **job}))


@dataclass
class Harness:
    """Runs workflows in one workspace; counts the requests the rehearsal backends received."""

    root: Path
    replies: tuple[FakeReply, ...] = ()
    requests: int = 0
    results: list[WorkflowResult] = field(default_factory=list)

    async def run(
        self, wf: Workflow[..., Any], cfg: ShoalConfig | None = None, **args: Any
    ) -> WorkflowResult:
        cfg = cfg or config()
        settings = FakeSettings(limits=FakeLimits(), latency_s=0.0, jitter=0.0, replies=self.replies)
        providers = ProviderSet(cfg, {}, rehearsal_settings=lambda model: settings)
        async with open_job(
            state=StateDir(self.root),
            config=cfg,
            name=f"workflow:{wf.name}",
            command="test",
            env={},
            stop=StopSignal(),
            providers=providers,
            budget_settings=BudgetSettings(pause_jitter_s=0.0, spacing_jitter=0.0),
        ) as job:
            result = await run_workflow(
                wf, args, job, settings=wf.settings(cfg, cwd=self.root), root=self.root
            )
            rehearsal = providers.get("rehearsal")
            self.requests = sum(rehearsal.backend(m).stats["requests"] for m in MODELS)  # type: ignore[attr-defined]
        self.results.append(result)
        return result

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import sqlite3

        with sqlite3.connect(self.root / ".shoal" / "journal.db") as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture
def harness(workspace: Path) -> Harness:
    return Harness(workspace)


def scan_workflow(prompts: dict[str, str], *, name: str = "scan") -> Workflow[..., Any]:
    @workflow(name=name)
    async def main() -> list[list[Bug] | None]:
        with phase("scan"):
            return await parallel(
                sorted(prompts), lambda f: agent(prompts[f], schema=list[Bug], model="fast")
            )

    return main


async def test_agents_return_validated_instances_journaled_under_their_step_paths(harness: Harness) -> None:
    wf = scan_workflow({"a.py": "Find bugs in a.py", "b.py": "Find bugs in b.py"})
    result = await harness.run(wf)
    assert result.exit_code == 0 and result.failed == {}
    assert [type(b) for batch in result.value for b in batch] and all(
        isinstance(b, Bug) for batch in result.value for b in batch
    )
    scopes = [row[0] for row in harness.rows("SELECT scope FROM calls WHERE outcome = 'ok' ORDER BY scope")]
    assert (
        len(scopes) == 2 and scopes[0].startswith("scan/a.py/agent-") and scopes[1].startswith("scan/b.py/")
    )
    items = harness.rows("SELECT item, status, stage FROM items ORDER BY item")
    assert [(i[1], i[2]) for i in items] == [("done", "scan"), ("done", "scan")]
    assert [i[0] for i in items] == scopes
    stages = {row[0] for row in harness.rows("SELECT stage FROM calls")}
    assert stages == {"scan"}
    report = harness.root / ".shoal" / "reports" / "scan.md"
    assert result.report == report and "[rehearsal]" in report.read_text()
    sessions = harness.rows("SELECT item, messages FROM sessions ORDER BY item")
    assert [s[0] for s in sessions] == scopes
    assert "Find bugs in a.py" in sessions[0][1]


async def test_a_rerun_replays_every_finished_call_and_sends_nothing(harness: Harness) -> None:
    wf = scan_workflow(
        {"a.py": "Find bugs in a.py", "b.py": "Find bugs in b.py", "c.py": "Find bugs in c.py"}
    )
    first = await harness.run(wf)
    assert harness.requests == 3
    second = await harness.run(wf)
    assert harness.requests == 0  # nothing reached the provider
    assert second.value == first.value
    assert second.runtime.job.caller.stats.replayed == 3 and second.runtime.job.caller.stats.sent == 0
    assert harness.rows("SELECT count(*) FROM calls")[0][0] == 3  # a replay writes no call rows


async def test_an_edited_script_reuses_every_call_whose_inputs_did_not_change(harness: Harness) -> None:
    prompts = {"a.py": "Find bugs in a.py", "b.py": "Find bugs in b.py", "c.py": "Find bugs in c.py"}
    first = await harness.run(scan_workflow(prompts))
    edited = {
        **prompts,
        "b.py": "Find security bugs in b.py",
        "0.py": "Find bugs in 0.py",
    }  # one changed, one new
    second = await harness.run(scan_workflow(edited))
    assert harness.requests == 2
    assert second.runtime.job.caller.stats.replayed == 2
    assert second.value[1] == first.value[0] and second.value[3] == first.value[2]  # a.py and c.py reused


async def test_an_invalid_structured_answer_is_sent_back_and_retried(workspace: Path) -> None:
    harness = Harness(workspace, replies=(FakeReply("Count the widgets", '{"widgets": "many"}', times=1),))

    @workflow(name="count")
    async def main() -> Count:
        return await agent("Count the widgets", schema=Count)

    result = await harness.run(main)
    assert result.exit_code == 0 and isinstance(result.value, Count)
    assert harness.requests == 2
    sent = harness.rows("SELECT response FROM calls ORDER BY id")
    assert '\\"many\\"' in sent[0][0] and len(sent) == 2
    messages = harness.rows("SELECT messages FROM sessions")[0][0]
    assert '"cause": "validation_error"' in messages  # the model was shown what was wrong


async def test_an_agent_whose_retries_run_out_fails_and_the_item_resolves_to_none(workspace: Path) -> None:
    bad = "not json at all"
    harness = Harness(workspace, replies=(FakeReply("Count the gears", bad), FakeReply("validation", bad)))

    @workflow(name="count")
    async def main() -> list[Count | None]:
        return await parallel(["widgets", "gears"], lambda thing: agent(f"Count the {thing}", schema=Count))

    result = await harness.run(main)
    assert result.exit_code == 1
    assert result.value[0] is not None and result.value[1] is None  # the survivor is kept
    assert len(result.failed) == 1 and next(iter(result.failed)).startswith("gears/")
    # One plain line: the cause in the user's terms, the problem shown to the model, its answer.
    reason = next(iter(result.failed.values()))
    assert reason.startswith("the model's answer did not fit the expected output in 3 tries (last problem: ")
    assert reason.endswith('it answered: "not json at all"') and "\n" not in reason
    assert "pydantic" not in reason.lower() and "Exceeded maximum" not in reason
    assert harness.requests == 1 + 3  # widgets once; gears once and twice more with the errors
    assert result.report is not None  # the workflow finished: its report is written even so
    assert harness.rows("SELECT status FROM items WHERE item LIKE 'gears/%'") == [("failed",)]


async def test_a_workflow_whose_agent_fails_still_writes_its_report(workspace: Path) -> None:
    bad = "I could not count them, sorry"
    harness = Harness(workspace, replies=(FakeReply("Count the gears", bad), FakeReply("validation", bad)))

    @workflow(name="inventory")
    async def main() -> int:
        widgets = await agent("Count the widgets", schema=Count)
        gears = await agent("Count the gears", schema=Count)  # fails for good: the script ends here
        return int(widgets.widgets + gears.widgets)

    result = await harness.run(main)
    assert result.exit_code == 1 and result.error is not None
    assert result.report is not None and result.report.exists()
    report = result.report.read_text()
    assert report.startswith("# Workflow inventory: did not finish")
    assert "## Failed agents" in report and 'it answered: "I could not count them, sorry"' in report
    assert "## Finished agents (1)" in report and "widgets" in report


async def test_the_agent_cap_refuses_the_agent_before_it_starts(harness: Harness) -> None:
    @workflow(name="capped", max_agents=2)
    async def main() -> Any:
        return await parallel(["a", "b", "c"], lambda x: agent(f"Describe {x}"))

    result = await harness.run(main)
    assert result.exit_code == 1 and result.error is not None and "agent cap reached" in result.error
    assert harness.requests == 2  # the third agent never sent anything
    assert result.report is not None  # what the two agents did is reported, with why it ended
    assert "agent cap reached" in result.report.read_text()


async def test_the_token_budget_drains_the_run_and_a_rerun_resumes_it(harness: Harness) -> None:
    @workflow(name="tokens", max_tokens=250)  # one 200-token answer fits, two do not
    async def main() -> list[str]:
        first = await agent("Describe the first thing")
        second = await agent("Describe the second thing")
        return [first, second]

    stopped = await harness.run(main)
    assert stopped.exit_code == 3 and stopped.stopped is not None and "token budget" in stopped.stopped
    assert harness.requests == 1
    main.max_tokens = 50_000  # the user raises the budget and runs the same command again
    resumed = await harness.run(main)
    assert resumed.exit_code == 0 and harness.requests == 1
    assert resumed.runtime.job.caller.stats.replayed == 1


async def test_the_cost_budget_drains_the_run(harness: Harness) -> None:
    @workflow(name="costly")
    async def main() -> str:
        return await agent("Describe something")

    result = await harness.run(main, config(max_cost_usd=0.000001))
    assert result.exit_code == 3 and result.stopped is not None and "budget" in result.stopped
    assert harness.requests == 0


async def test_pipeline_items_flow_on_by_themselves_and_none_drops_an_item(harness: Harness) -> None:
    @workflow(name="flow")
    async def main() -> list[Any]:
        async def find(path: str) -> str | None:
            return None if path == "skip.py" else await agent(f"Summarise {path}", name="find")

        async def check(summary: str) -> str:
            return await agent("Check this summary", reference=summary, name="check")

        return await pipeline(["a.py", "skip.py", "b.py"], find, check)

    result = await harness.run(main)
    assert result.value[1] is None and result.value[0] and result.value[2]
    scopes = sorted(row[0] for row in harness.rows("SELECT scope FROM calls"))
    assert scopes == ["a.py/1-find/find", "a.py/2-check/check", "b.py/1-find/find", "b.py/2-check/check"]


def test_arguments_are_converted_by_the_entry_points_type_hints() -> None:
    @workflow(name="args")
    async def main(files: list[str], rounds: int = 2, strict: bool = False) -> None:
        return None

    assert bind_args(main, ["files=a.py,b.py", "rounds=3"]) == {"files": ["a.py", "b.py"], "rounds": 3}
    assert bind_args(main, ['files=["x y.py"]', "strict=true"]) == {"files": ["x y.py"], "strict": True}
    with pytest.raises(InputError, match="no such argument"):
        bind_args(main, ["files=a", "nope=1"])
    with pytest.raises(InputError, match="needs --arg files"):
        bind_args(main, [])
    with pytest.raises(InputError, match="rounds=many"):
        bind_args(main, ["files=a", "rounds=many"])


# -- verify_fix ----------------------------------------------------------------------------


def loop_workflow(oracle: str | None, max_rounds: int = 3) -> Workflow[..., Any]:
    @workflow(name="loop")
    async def main() -> Any:
        return await verify_fix(
            "Implement the parser",
            verify="Check the parser",
            fix="Fix the parser",
            oracle=oracle,
            max_rounds=max_rounds,
        )

    return main


async def test_verify_fix_stops_when_the_oracle_passes(harness: Harness) -> None:
    result = await harness.run(loop_workflow("test -d ."))
    outcome = result.value
    assert outcome.stopped == "oracle-passed" and outcome.rounds == 1 and outcome.passed
    assert outcome.oracle.exit_code == 0 and outcome.workspace.is_dir()
    assert harness.requests == 2  # implement and verify; no fixer was needed
    assert all(isinstance(f, Finding) for f in outcome.findings)  # the verifier's, overruled


async def test_verify_fix_stops_after_max_rounds_when_the_oracle_keeps_failing(harness: Harness) -> None:
    result = await harness.run(loop_workflow("echo 2 tests failed; exit 1", max_rounds=2))
    outcome = result.value
    assert outcome.stopped == "max-rounds" and outcome.rounds == 2 and not outcome.passed
    assert harness.requests == 4  # implement, verify, fix, verify
    assert outcome.findings[-1].location == "oracle" and "2 tests failed" in outcome.findings[-1].problem
    fixer = harness.rows("SELECT messages FROM sessions WHERE item LIKE '%/fix'")[0][0]
    assert "2 tests failed" in fixer  # the fixer was given the oracle's finding
    events = harness.rows("SELECT detail FROM events WHERE kind = 'verify_fix'")
    assert json.loads(events[0][0]) == {"path": "verify-fix", "stopped": "max-rounds", "rounds": 2}


async def test_verify_fix_without_oracle_stops_when_the_verifier_finds_nothing(workspace: Path) -> None:
    flagged = '{"response": [{"problem": "the parser drops the last line", "location": "parse()"}]}'
    harness = Harness(
        workspace,
        replies=(
            FakeReply("Check the parser", flagged, times=1),
            FakeReply("Check the parser", '{"response": []}'),
        ),
    )
    result = await harness.run(loop_workflow(None))
    outcome = result.value
    assert outcome.stopped == "clean" and outcome.rounds == 2 and outcome.findings == []
    assert harness.requests == 4  # implement, verify (1 finding), fix, verify (clean)
    fixer = harness.rows("SELECT messages FROM sessions WHERE item = 'verify-fix/round-1/fix'")[0][0]
    assert "the parser drops the last line" in fixer


async def test_thunks_a_json_schema_dict_and_a_bare_decorator(harness: Harness) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    @workflow
    async def bare() -> list[Any]:
        return await parallel([lambda: agent("Pick a number", schema=schema), lambda: agent("Say hi")])

    result = await harness.run(bare)
    assert result.name == "bare" and result.exit_code == 0
    assert isinstance(result.value[0]["n"], int) and result.value[1].startswith("[rehearsal]")
    assert sorted(row[0].split("/")[0] for row in harness.rows("SELECT scope FROM calls")) == ["1", "2"]


async def test_an_unknown_tool_or_model_is_a_usage_error(harness: Harness) -> None:
    from shoal.workflows import WorkflowError

    @workflow(name="typo")
    async def main() -> str:
        return await agent("Look around", tools=["read_files"])

    with pytest.raises(WorkflowError, match="unknown tool 'read_files'"):
        await harness.run(main)

    @workflow(name="typo2", model="openai:gpt-4o-mini")
    async def hosted() -> str:
        return await agent("Look around", model="fastest")

    with pytest.raises(WorkflowError, match="unknown model 'fastest'"):
        await harness.run(hosted)

    @workflow(name="toolong", model="openai:gpt-4o-mini")
    async def too_long() -> str:
        return await agent("Write a book", max_tokens=20_000)

    with pytest.raises(
        WorkflowError, match=r"agent\(max_tokens=\.\.\.\) 20,000 is above openai:gpt-4o-mini's limit"
    ):
        await harness.run(too_long)
    assert harness.requests == 0
