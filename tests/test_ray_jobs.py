"""The Ray executor's jobs: `shoal map` (with roles), `shoal run PLAN.md` and workflows, their requests,
lint checks and agents' tools sent by Ray actors and tasks, against what the local executor does.

One local Ray (2 CPUs, loopback) is started for the module. `shoal` runs in this process
(`helpers.invoke_shoal`), a driver of that Ray already, as a program that set Ray up itself would
run it; `shoal` processes joining a cluster of their own accord are test_ray_cluster.py's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from shoal.cluster import RayTarget, executor_tools, workers_of
from shoal.config import ModelLimits, ShoalConfig
from shoal.engine import StateDir, StopSignal, open_job
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import load_replies
from shoal.providers._http import make_http_client
from shoal.providers._pydantic_ai import PydanticAIProvider
from shoal.workflows import agent, run_workflow, workflow

from helpers import MAP_ARGV, clean_env, invoke_shoal, output_ids, write_records
from plan_helpers import SHIPPED, copy_example, registered_paths, shipped, use_openai_models
from ray_helpers import REDIS, map_env, ray_toml, rows, shoal_actors, wait_for, worker_requests


@pytest.mark.timeout(540)
def test_map_on_ray_matches_the_local_run(tmp_path: Path, ray_address: str) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    for workspace in (local, remote):
        workspace.mkdir()
        ids = write_records(workspace / "in.jsonl", 200)
        (workspace / "shoal.toml").write_text("[job]\nconcurrency = 16\n")
    (remote / "shoal.toml").write_text("[job]\nconcurrency = 16\n" + ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01, seed=5)
    results = {}
    for workspace in (local, remote):
        with FakeServer(settings) as server:
            results[workspace] = invoke_shoal(workspace, *MAP_ARGV, env=map_env(server))
            assert server.backend.stats["requests"] == 200
    for workspace in (local, remote):
        assert results[workspace].returncode == 0, results[workspace].stderr
        assert sorted(output_ids(workspace / "out.jsonl")) == ids
    outcomes = "SELECT outcome, count(*) FROM calls GROUP BY outcome"
    items = "SELECT status, count(*) FROM items GROUP BY status"
    assert rows(local, outcomes) == rows(remote, outcomes) == [("ok", 200)]
    assert rows(local, items) == rows(remote, items)
    # The workers sent every request, spread over both; the driver sent none itself.
    workers = json.loads(rows(remote, "SELECT detail FROM events WHERE kind = 'workers'")[0][0])["workers"]
    assert len(workers) == 2 and sum(w["done"] for w in workers) == 200
    assert all(w["done"] > 0 and w["node"] != "?" for w in workers)
    assert "ray worker" in results[remote].stderr and "ray worker" not in results[local].stderr
    # Visible afterwards: `shoal status` (text and JSON) and the report show each worker.
    status = invoke_shoal(remote, "status", "--json")
    shown = json.loads(status.stdout)["cluster"]
    assert sorted(w["done"] for w in shown) == sorted(w["done"] for w in workers)
    assert "ray worker on node" in invoke_shoal(remote, "status").stdout
    assert json.loads(invoke_shoal(local, "status", "--json").stdout)["cluster"] == []
    assert invoke_shoal(remote, "report", "--out-dir", "rep").returncode == 0
    report = (remote / "rep" / "report.md").read_text()
    assert "Ray workers" in report and workers[0]["name"] in report
    wait_for(lambda: not shoal_actors(), "the job's actors to end with its run")


@pytest.mark.timeout(540)
def test_map_roles_on_ray_match_the_local_run(tmp_path: Path, ray_address: str) -> None:
    from test_roles import ARGV as ROLES_ARGV
    from test_roles import copy_example as copy_roles_example

    local, remote = tmp_path / "local", tmp_path / "remote"
    for workspace in (local, remote):
        workspace.mkdir()
        ids = copy_roles_example(workspace, records=12)
    (remote / "shoal.toml").write_text(ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01, seed=3)
    results = {}
    for workspace in (local, remote):
        with FakeServer(settings) as server:
            results[workspace] = invoke_shoal(workspace, *ROLES_ARGV, env=map_env(server))
            requests = server.backend.stats["requests"]
        assert results[workspace].returncode == 0, results[workspace].stderr
        assert requests == 12 * 4  # every record, every role, once
    for workspace in (local, remote):
        assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)
    items = "SELECT stage, status, count(*) FROM items GROUP BY stage, status ORDER BY stage, status"
    assert rows(local, items) == rows(remote, items)
    assert worker_requests(remote) == 12 * 4 and worker_requests(local) == 0
    assert "ray worker" in results[remote].stderr


@pytest.mark.timeout(540)
def test_example_plan_on_ray_ships_what_the_local_run_ships(workspace: Path, ray_address: str) -> None:
    copy_example(workspace)
    use_openai_models(workspace)
    with (workspace / "shoal.toml").open("a") as toml:
        toml.write(ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(
        limits=FakeLimits(rpm=20_000, tpm=20_000_000),
        latency_s=0.01,
        replies=load_replies(workspace / "rehearsal.json"),
    )
    with FakeServer(settings) as server:
        result = invoke_shoal(workspace, "run", "PLAN.md", "--yes", env=map_env(server))
        requests = server.backend.stats["requests"]
    assert result.returncode == 0, result.stderr
    assert shipped(workspace) == SHIPPED
    # As in test_plan_e2e: 21 requests, all sent by workers; the lint fix came from a worker's lint run.
    events = rows(workspace, "SELECT detail FROM events WHERE kind = 'workers'")
    workers = [w for (detail,) in events for w in json.loads(detail)["workers"]]
    senders = [w for w in workers if not w["name"].startswith("lint-")]
    linters = [w for w in workers if w["name"].startswith("lint-")]
    assert requests == 21 == sum(w["done"] for w in senders)
    lint_checks = rows(
        workspace, "SELECT count(*) FROM events WHERE kind = 'check' AND detail LIKE '%/lint%'"
    )
    assert sum(w["done"] for w in linters) == lint_checks[0][0] >= 7  # every lint run was a worker's
    assert (
        "gate: 1 lint fix (session-management.md), 1 flagged (token-lifecycle.md), 1 fixed, "
        "0 escalated, 0 need review"
    ) in result.stderr
    paths = registered_paths(workspace)
    assert len(paths) == len(set(paths)) == 7


@pytest.mark.timeout(480)
def test_the_cost_budget_holds_across_the_cluster(workspace: Path, ray_address: str) -> None:
    write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text(ray_toml(ray_address, "workers = 2\n"))
    # Rehearsal (sent by the workers) is priced like gpt-4o-mini: about $0.0006 per call at worst.
    argv = ["map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", "rehearsal", "--out", "out.jsonl"]
    result = invoke_shoal(
        workspace, *argv, "--max-tokens", "1000", "--max-cost", "0.004", env=clean_env(SHOAL_REDIS_URL=REDIS)
    )
    assert result.returncode == 3, result.stderr
    assert "budget" in result.stderr and "resume with:" in result.stderr
    assert 0 < len(output_ids(workspace / "out.jsonl")) < 30
    assert rows(workspace, "SELECT sum(cost_usd) FROM calls")[0][0] <= 0.004
    assert worker_requests(workspace) == rows(workspace, "SELECT count(*) FROM calls")[0][0]


@pytest.mark.timeout(480)
def test_the_bug_hunt_example_runs_with_the_ray_executor(workspace: Path, ray_address: str) -> None:
    # The CLI path of a workflow on Ray; its agents use built-in file tools, which stay on the driver.
    (workspace / "shoal.toml").write_text(ray_toml(ray_address))
    example = Path(__file__).resolve().parent.parent / "examples" / "bug_hunt" / "workflow.py"
    env = clean_env(SHOAL_REDIS_URL=REDIS)
    result = invoke_shoal(workspace, "run", str(example), "--yes", "--executor", "ray", env=env)
    assert result.returncode == 0, result.stderr
    report = (workspace / ".shoal" / "reports" / "bug-hunt.md").read_text()
    assert report.startswith("# Bug hunt") and "3 file(s) scanned" in report


@pytest.mark.timeout(480)
def test_rehearsal_scripted_tool_calls_run_on_ray_workers_from_the_cli(
    workspace: Path, ray_address: str
) -> None:
    (workspace / "flow.py").write_text(
        "import os\n"
        "from shoal import agent, parallel, workflow\n\n"
        "def where_am_i(n: int) -> str:\n"
        "    return f'pid {os.getpid()}: {n * 2}'\n\n"
        "@workflow(name='raycli')\n"
        "async def main() -> str:\n"
        "    ask = lambda i: agent(f'Where, {i}?', tools=[where_am_i], name=f'a{i}')\n"
        "    found = await parallel(range(4), ask)\n"
        "    return '\\n'.join(found)\n"
    )
    replies = [
        {"match": "Where,", "call": {"tool": "where_am_i", "args": {"n": 21}}},
        {"match": "Result of tool where_am_i:", "reply": "found it"},
    ]
    (workspace / "replies.json").write_text(json.dumps(replies))
    (workspace / "shoal.toml").write_text(ray_toml(ray_address, '[rehearsal]\nreplies = "replies.json"\n'))
    result = invoke_shoal(workspace, "run", "flow.py", "--yes", env=clean_env(SHOAL_REDIS_URL=REDIS))
    assert result.returncode == 0, result.stderr
    assert (workspace / ".shoal" / "reports" / "raycli.md").read_text().splitlines() == ["found it"] * 4
    assert worker_requests(workspace) == 4  # every tool call ran on a Ray worker
    sessions = [text for (text,) in rows(workspace, "SELECT messages FROM sessions")]
    assert all(": 42" in text for text in sessions)


# -- workflow agents' typed tools on Ray workers ---------------------------------------------------


@dataclass
class Scripted:
    """A provider set whose "openai" provider is a pydantic-ai FunctionModel following `script`."""

    script: Callable[[list[ModelMessage], AgentInfo], ModelResponse]
    provider: PydanticAIProvider | None = None

    def get(self, provider: str) -> PydanticAIProvider:
        if self.provider is None:
            model = lambda name: FunctionModel(lambda m, i: self.script(m, i), model_name=name)  # noqa: E731
            self.provider = PydanticAIProvider("openai", model, make_http_client(5.0))
        return self.provider

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None


def where_am_i(n: int) -> str:
    """The process this tool runs in, and twice n."""
    return f"{os.getpid()}:{n * 2}"


@pytest.mark.timeout(480)
async def test_workflow_typed_tools_run_on_ray_workers(workspace: Path, ray_address: str) -> None:
    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        results = [
            str(part.content)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        if not results:
            return ModelResponse(parts=[ToolCallPart("where_am_i", {"n": 21})])
        return ModelResponse(parts=[TextPart(results[0])])

    @workflow(name="raytools", model="openai:scripted")
    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                *(agent(f"Where are you, {i}?", tools=[where_am_i], name=f"a{i}") for i in range(4))
            )
        )

    config = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=60_000, tpm=10_000_000)})
    target = RayTarget(ray_address, None)
    async with (
        executor_tools(target, state_dir=workspace / ".shoal", local=Scripted(script)) as providers,
        open_job(
            state=StateDir(workspace),
            config=config,
            name="workflow:raytools",
            command="test",
            env={},
            stop=StopSignal(),
            providers=providers,
        ) as job,
    ):
        result = await run_workflow(
            main, {}, job, settings=main.settings(config, cwd=workspace), root=workspace
        )
        workers = workers_of(job)
    assert result.exit_code == 0
    pids = {value.split(":")[0] for value in result.value}
    assert all(value.endswith(":42") for value in result.value)
    assert str(os.getpid()) not in pids  # every call ran in a Ray worker process, not the driver
    assert sum(w.done for w in workers) == 4
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        sessions = [row[0] for row in conn.execute("SELECT messages FROM sessions")]
    assert len(sessions) == 4 and all(":42" in text for text in sessions)  # the driver journaled them
