"""Local executor vs the Ray executor on a CPU-bound workflow: 100 agents, each calling a typed Python
tool that burns about 0.2 s of pure-Python CPU, side by side in one run.

    .venv/bin/python bench/cluster.py [--agents 100] [--tool-s 0.2] [--workers 2]

The model is a scripted in-process pydantic-ai model (first request: call the tool; second: answer
with its result), so the figure is the tools' placement, not network latency: the rehearsal provider
and the fake server never call function tools. Both runs go through `run_workflow` and the same
`executor_tools` the CLI uses for `shoal run flow.py --executor ray`; the Ray run starts a local Ray
with `--workers` CPUs (its start is timed separately, not in the wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from shoal.providers._http import make_http_client
from shoal.providers._pydantic_ai import PydanticAIProvider
from shoal.workflows import agent, run_workflow, workflow

CONFIG = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=600_000, tpm=100_000_000)})


def burn(rounds: int) -> int:
    """Pure-Python CPU work: holds the GIL for its whole run."""
    total = 0
    for i in range(rounds):
        total = (total + i * i) % 1_000_003
    return total


def rounds_for(seconds: float) -> int:
    probe = 200_000
    started = time.perf_counter()
    burn(probe)
    return max(1, int(probe * seconds / (time.perf_counter() - started)))


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    results = [
        str(p.content)
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]
    if not results:
        return ModelResponse(parts=[ToolCallPart("burn", {"rounds": ROUNDS})])
    return ModelResponse(parts=[TextPart(f"burned: {results[0]}")])


ROUNDS = 0  # set in main() from --tool-s


@dataclass
class Scripted:
    provider: PydanticAIProvider | None = None

    def get(self, name: str) -> PydanticAIProvider:
        if self.provider is None:
            model = lambda model_name: FunctionModel(script, model_name=model_name)  # noqa: E731
            self.provider = PydanticAIProvider("openai", model, make_http_client(5.0))
        return self.provider

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None


async def run_once(root: Path, agents: int, target: RayTarget | None) -> tuple[float, Any, list[Any]]:
    @workflow(name="cpu-tools", model="openai:scripted", max_agents=agents)
    async def main() -> list[str]:
        calls = (agent(f"burn {i}", tools=[burn], name=f"a{i}") for i in range(agents))
        return list(await asyncio.gather(*calls))

    async with (
        executor_tools(target, state_dir=root / ".shoal", local=Scripted()) as providers,
        open_job(
            state=StateDir(root),
            config=CONFIG,
            name="workflow:cpu-tools",
            command="bench",
            env={},
            stop=StopSignal(),
            providers=providers,
        ) as job,
    ):
        started = time.perf_counter()
        result = await run_workflow(main, {}, job, settings=main.settings(CONFIG, cwd=root), root=root)
        wall = time.perf_counter() - started
        assert result.exit_code == 0, result.error or result.failed
        assert len(result.value) == agents
        return wall, result, workers_of(job)


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--tool-s", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ROUNDS = rounds_for(args.tool_s)
    print(f"load average: {os.getloadavg()[0]:.2f}; tool: {ROUNDS} rounds (~{args.tool_s} s here)")

    with tempfile.TemporaryDirectory() as tmp:
        local_root, ray_root = Path(tmp) / "local", Path(tmp) / "ray"
        local_root.mkdir()
        ray_root.mkdir()
        local_wall, _, _ = asyncio.run(run_once(local_root, args.agents, None))

        import ray

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        ray_start = time.perf_counter() - started
        try:
            ray_wall, _, workers = asyncio.run(run_once(ray_root, args.agents, RayTarget(None, args.workers)))
        finally:
            ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{'executor':<10} {'wall':>8}  tool calls per worker")
    print(f"{'local':<10} {local_wall:>7.1f}s  {args.agents} in the driver process")
    per_worker = ", ".join(f"{w.name}: {w.done} calls, {w.busy_s:.1f}s busy" for w in workers)
    print(f"{'ray':<10} {ray_wall:>7.1f}s  {per_worker}   (Ray start {ray_start:.1f}s, not counted)")
    print(f"speed-up: {local_wall / ray_wall:.2f}x with {args.workers} Ray workers")


if __name__ == "__main__":
    sys.exit(main())
