"""The Ray executor's jobs: `shoal map` (with roles), `shoal run PLAN.md` and workflows, their requests,
lint checks and agents' tools sent by Ray actors and tasks, against what the local executor does.

One local Ray (2 CPUs, loopback) is started for the module. `shoal` runs in this process
(`helpers.invoke_shoal`), a driver of that Ray already, as a program that set Ray up itself would
run it; `shoal` processes joining a cluster of their own accord are test_ray_cluster.py's. Workflow
jobs here use a pydantic-ai FunctionModel as the hosted model: its script runs on the driver, so the
requests it answers are counted here, wherever the agents' loops run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_ai import RunContext
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
from shoal.cluster._pool import NAMESPACE
from shoal.config import ModelLimits, ShoalConfig
from shoal.engine import StateDir, StopSignal, open_job
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import load_replies
from shoal.providers._http import make_http_client
from shoal.providers._pydantic_ai import PydanticAIProvider
from shoal.workflows import Workflow, WorkflowResult, agent, parallel, run_workflow, workflow

from helpers import MAP_ARGV, clean_env, invoke_shoal, output_ids, write_records
from plan_helpers import SHIPPED, copy_example, registered_paths, shipped, use_openai_models
from ray_helpers import REDIS, SLOW, map_env, ray, ray_toml, rows, shoal_actors, wait_for, worker_requests


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


Script = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


@dataclass
class Scripted:
    """A provider set whose "openai" provider is a FunctionModel following `script`, counting requests."""

    script: Script
    requests: int = 0
    provider: PydanticAIProvider | None = field(default=None, repr=False)

    def answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        return self.script(messages, info)

    def get(self, provider: str) -> PydanticAIProvider:
        if self.provider is None:
            model = lambda name: FunctionModel(self.answer, model_name=name)  # noqa: E731
            self.provider = PydanticAIProvider("openai", model, make_http_client(5.0))
        return self.provider

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None


def tool_results(messages: list[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def where_am_i(n: int) -> str:
    """The process this tool runs in, and twice n."""
    return f"{os.getpid()}:{n * 2}"


@pytest.mark.timeout(480)
async def test_an_agent_with_workspace_tools_keeps_its_loop_here_and_its_typed_tools_go_to_ray(
    workspace: Path, ray_address: str
) -> None:
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
        # list_files needs the agent's workspace, on the driver's disk: the loop stays here.
        ask = (
            agent(f"Where are you, {i}?", tools=["list_files", where_am_i], name=f"a{i}") for i in range(4)
        )
        return list(await asyncio.gather(*ask))

    config = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=60_000, tpm=10_000_000)})
    target = RayTarget(ray_address, None)
    async with (
        executor_tools(
            target, job_name="workflow:raytools", state_dir=workspace / ".shoal", local=Scripted(script)
        ) as providers,
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
    assert {w.unit for w in workers if w.done} == {"tool calls"}  # no loop went to a worker
    assert sum(w.done for w in workers) == 4
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        sessions = [row[0] for row in conn.execute("SELECT messages FROM sessions")]
    assert len(sessions) == 4 and all(":42" in text for text in sessions)  # the driver journaled them


# -- workflow agents' whole loops on Ray workers -----------------------------------------------


async def run_on_ray(
    workspace: Path,
    ray_address: str,
    flow: Workflow,
    providers: Scripted,
    name: str,
    stop: StopSignal | None = None,
) -> tuple[WorkflowResult, list[dict[str, object]]]:
    config = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=60_000, tpm=10_000_000)})
    target = RayTarget(ray_address, 1)  # one loop worker: each actor is a Python process to start
    async with (
        executor_tools(target, job_name=name, state_dir=workspace / ".shoal", local=providers) as placed,
        open_job(
            state=StateDir(workspace),
            config=config,
            name=name,
            command="test",
            env={},
            stop=stop or StopSignal(),
            providers=placed,
        ) as job,
    ):
        result = await run_workflow(
            flow, {}, job, settings=flow.settings(config, cwd=workspace), root=workspace
        )
        workers = [w.as_dict() for w in workers_of(job)]
    return result, workers


def calls(workspace: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute("SELECT key, outcome FROM calls").fetchall()


# -- the loop on a worker --------------------------------------------------------------------------


class Found(BaseModel):
    pid: int
    doubled: int


def inspect_here(ctx: RunContext[None], n: int) -> str:
    """The process this tool runs in (it takes the run's context, so it runs where the loop runs)."""
    return f"{os.getpid()}:{n * 2}:{ctx.run_step}"


@pytest.mark.timeout(480)
async def test_an_agents_whole_loop_runs_on_a_ray_worker(workspace: Path, ray_address: str) -> None:
    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        results = tool_results(messages)
        if not results:
            return ModelResponse(parts=[ToolCallPart("inspect_here", {"n": 21})])
        pid, doubled, _ = results[0].split(":")
        answer = {"pid": int(pid), "doubled": int(doubled)}
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, answer)])

    @workflow(name="rayloops", model="openai:scripted")
    async def main() -> list[Found]:
        ask = [
            agent(f"Where are you, {i}?", tools=[inspect_here], schema=Found, name=f"a{i}") for i in range(4)
        ]
        return list(await asyncio.gather(*ask))

    providers = Scripted(script)
    result, workers = await run_on_ray(workspace, ray_address, main, providers, "workflow:rayloops")

    assert result.exit_code == 0
    found: list[Found] = result.value
    # The output is the script's own class again, validated on the driver from the worker's JSON.
    assert all(type(item) is Found and item.doubled == 42 for item in found)
    # A tool that takes RunContext runs with the loop: in a Ray worker process, not the driver.
    assert os.getpid() not in {item.pid for item in found}
    loops = [w for w in workers if "-loops-" in str(w["name"])]
    assert sum(int(str(w["done"])) for w in loops) == 4  # four agents ran their loops on workers
    assert providers.requests == 8  # two model requests per agent, all answered by the driver
    assert len(calls(workspace)) == 8 and {outcome for _, outcome in calls(workspace)} == {"ok"}
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        sessions = [row[0] for row in conn.execute("SELECT messages FROM sessions")]
        items = conn.execute("SELECT status FROM items WHERE job = 'workflow:rayloops'").fetchall()
    assert len(sessions) == 4 and all(":42:" in text for text in sessions)  # journaled by the driver
    assert sorted(status for (status,) in items) == ["done"] * 4


# -- a worker killed mid-agent ---------------------------------------------------------------------


def hold(n: int, where: str) -> str:
    """Marks that it started, then waits for the test's word (the first time only)."""
    folder = Path(where)
    (folder / f"started-{n}-{os.getpid()}").touch()
    deadline = time.monotonic() + SLOW
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"held {n}"


def loop_actors() -> list[str]:
    named = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in named if a["namespace"] == NAMESPACE and "-loops-" in a["name"]]


@pytest.mark.timeout(480)
async def test_a_worker_killed_mid_agent_resends_no_finished_request(
    workspace: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    where = tmp_path_factory.mktemp("hold")

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        results = tool_results(messages)
        if not results:
            prompt = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
            n = int(prompt.rsplit(" ", 1)[-1])
            return ModelResponse(parts=[ToolCallPart("hold", {"n": n, "where": str(where)})])
        return ModelResponse(parts=[TextPart(results[0])])

    @workflow(name="raykill", model="openai:scripted")
    async def main() -> list[str]:
        return list(
            await asyncio.gather(*(agent(f"Hold number {i}", tools=[hold], name=f"h{i}") for i in range(4)))
        )

    providers = Scripted(script)
    job = asyncio.create_task(run_on_ray(workspace, ray_address, main, providers, "workflow:raykill"))
    deadline = time.monotonic() + SLOW
    while len(list(where.glob("started-*"))) < 4:  # every agent has had its first answer, on a worker
        assert time.monotonic() < deadline and not job.done(), "agents did not reach their tools"
        await asyncio.sleep(0.05)
    pids = {int(p.name.rsplit("-", 1)[-1]) for p in where.glob("started-*")}
    victims = loop_actors()
    assert victims
    for name in victims:  # every loop worker dies with its agents' tools mid-call
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    (where / "release").touch()
    result, workers = await asyncio.wait_for(job, SLOW)

    assert result.exit_code == 0
    assert sorted(result.value) == [f"held {i}" for i in range(4)]
    # Each agent's first request was answered before the kill: the re-dispatched agent replays it
    # from the journal; only the second request of each reaches the model.
    assert providers.requests == 8
    keys = [key for key, _ in calls(workspace)]
    assert len(keys) == len(set(keys)) == 8
    lost = [w for w in workers if w["lost"]]
    assert {str(w["name"]) for w in lost} == set(victims)
    reruns = {int(p.name.rsplit("-", 1)[-1]) for p in where.glob("started-*")} - pids
    assert reruns and os.getpid() not in reruns  # the tools ran again on the replacement workers


@pytest.mark.timeout(480)
async def test_an_agent_that_fails_on_a_worker_fails_in_one_line(workspace: Path, ray_address: str) -> None:
    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # Never fits the schema: the worker's output validation sends it back until retries run out.
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"pid": "not a number"})])

    @workflow(name="rayfail", model="openai:scripted")
    async def main() -> Found:
        return await agent("Where are you?", schema=Found, name="lost")

    providers = Scripted(script)
    result, workers = await run_on_ray(workspace, ray_address, main, providers, "workflow:rayfail")

    assert result.exit_code == 1
    reason = result.runtime.failures["lost"]
    assert reason.startswith("the model's answer did not fit the expected output in 3 tries"), reason
    assert "not a number" in reason
    assert providers.requests == 3  # the first answer and two retries, each journaled by the driver
    assert len(calls(workspace)) == 3
    assert sum(int(str(w["done"])) for w in workers if "-loops-" in str(w["name"])) == 1


@pytest.mark.timeout(480)
async def test_a_drained_job_stops_its_agents_on_workers_and_the_rerun_finishes_them(
    workspace: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    where = tmp_path_factory.mktemp("drain")

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        results = tool_results(messages)
        if not results:
            prompt = str(messages[0].parts[-1].content)  # type: ignore[union-attr]
            return ModelResponse(
                parts=[ToolCallPart("hold", {"n": int(prompt.rsplit(" ", 1)[-1]), "where": str(where)})]
            )
        return ModelResponse(parts=[TextPart(results[0])])

    @workflow(name="raydrain", model="openai:scripted")
    async def main() -> list[str]:
        return await parallel(range(3), lambda i: agent(f"Hold number {i}", tools=[hold], name=f"h{i}"))

    stop = StopSignal()
    first = Scripted(script)
    job = asyncio.create_task(run_on_ray(workspace, ray_address, main, first, "workflow:raydrain", stop))
    deadline = time.monotonic() + SLOW
    while len(list(where.glob("started-*"))) < 3:
        assert time.monotonic() < deadline and not job.done(), "agents did not reach their tools"
        await asyncio.sleep(0.05)
    stop.drain("Ctrl-C")  # as the first Ctrl-C does: nothing new starts, the job ends resumable
    (where / "release").touch()
    result, _ = await asyncio.wait_for(job, SLOW)
    assert result.exit_code == 3 and result.stopped
    assert first.requests == 3  # each agent's second request was refused by the drain, not sent
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        statuses = conn.execute("SELECT status FROM items WHERE job = 'workflow:raydrain'").fetchall()
    assert sorted(status for (status,) in statuses) == ["pending"] * 3

    again = Scripted(script)
    result, _ = await run_on_ray(workspace, ray_address, main, again, "workflow:raydrain")
    assert result.exit_code == 0
    assert sorted(result.value) == [f"held {i}" for i in range(3)]
    assert again.requests == 3  # only the requests the drain stopped: the first ones replay
    keys = [key for key, _ in calls(workspace)]
    assert len(keys) == len(set(keys)) == 6
