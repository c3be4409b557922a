"""Workflow agents on the Ray executor: an agent's whole loop (tool calls, output validation) runs on a
Ray actor, and the driver answers each of its model requests from the journal or under the budget.

One local Ray (2 CPUs, loopback) is started for the module; the jobs here run in this process as its
driver, with a pydantic-ai FunctionModel as the hosted model (its script runs on the driver, so the
requests it answers are counted here).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
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
from shoal.providers._http import make_http_client
from shoal.providers._pydantic_ai import PydanticAIProvider
from shoal.workflows import Workflow, WorkflowResult, agent, parallel, run_workflow, workflow

# Ray's nodes on loopback: set before Ray is imported here.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

SLOW = 150.0  # Ray starts a process per actor: minutes on a busy machine; this is for a hang


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        namespace="shoal-tests",
        log_to_driver=False,
    )
    try:
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()


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


async def run_on_ray(
    workspace: Path,
    ray_address: str,
    flow: Workflow,
    providers: Scripted,
    name: str,
    stop: StopSignal | None = None,
) -> tuple[WorkflowResult, list[dict[str, object]]]:
    config = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=60_000, tpm=10_000_000)})
    target = RayTarget(ray_address, 2)
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
