"""The Ray executor: `shoal map` and `shoal run PLAN.md` with their requests sent by Ray actors.

One local Ray (2 CPUs, loopback) is started for the module; each `shoal` process joins it as a driver,
as it would join a real cluster with `[executor] address`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, output_ids, write_records
from helpers import run_shoal as run_shoal_within
from plan_helpers import SHIPPED, copy_example, registered_paths, shipped, use_openai_models

# Ray's nodes on loopback: set before Ray is imported here and inherited by every `shoal` the tests run.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

REDIS = "redis://127.0.0.1:6379/0"


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
        # With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 the node is 127.0.0.1: Ray traffic stays on loopback.
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()


def rows(workspace: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def shoal_actors() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "shoal"]


def ray_toml(address: str, extra: str = "") -> str:
    return f'[executor]\nkind = "ray"\naddress = "{address}"\n{extra}'


def map_env(server: FakeServer) -> dict[str, str]:
    return clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url, SHOAL_REDIS_URL=REDIS)


def worker_requests(workspace: Path) -> int:
    events = rows(workspace, "SELECT detail FROM events WHERE kind = 'workers'")
    return sum(w["done"] for (detail,) in events for w in json.loads(detail)["workers"])


# Ray starts a Python process per actor and task; on a machine kept busy by other work that takes
# minutes, not seconds. These limits are for a hang, not for speed.
SLOW = 300.0


def run_shoal(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_shoal_within(cwd, *args, env=env, timeout=SLOW)


def wait_for(condition: Any, what: str, timeout: float = SLOW / 2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- bad input: no Ray needed -------------------------------------------------------------------


def test_ray_without_the_shared_budget_is_one_line(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 2)
    result = run_shoal(workspace, *MAP_ARGV, "--executor", "ray", env=clean_env(OPENAI_API_KEY="k"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'shoal: error: executor "ray" needs the shared rate budget: set [budget] redis_url in shoal.toml '
        "(or SHOAL_REDIS_URL), so every worker sends under one budget"
    ]


def test_unreachable_cluster_address_is_one_line(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 2)
    (workspace / "shoal.toml").write_text(ray_toml("127.0.0.1:1"))
    result = run_shoal(workspace, *MAP_ARGV, env=clean_env(OPENAI_API_KEY="k", SHOAL_REDIS_URL=REDIS))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("shoal: error: cannot reach the Ray cluster at 127.0.0.1:1")
    assert not (workspace / ".shoal").exists()  # refused before the job opened


def test_ray_not_installed_is_one_line(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    shadow = tmp_path_factory.mktemp("no-ray")
    (shadow / "ray").mkdir()
    (shadow / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    write_records(workspace / "in.jsonl", 2)
    env = clean_env(OPENAI_API_KEY="k", SHOAL_REDIS_URL=REDIS, PYTHONPATH=str(shadow))
    result = run_shoal(workspace, *MAP_ARGV, "--executor", "ray", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "shoal: error: executor \"ray\" needs Ray: pip install 'shoal[ray]'"
    ]


def test_ray_client_address_without_ray_client_is_one_line(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shadow = tmp_path_factory.mktemp("no-grpc")
    (shadow / "grpc").mkdir()
    (shadow / "grpc" / "__init__.py").write_text("raise ImportError(\"No module named 'grpc'\")\n")
    write_records(workspace / "in.jsonl", 2)
    (workspace / "shoal.toml").write_text(ray_toml("ray://127.0.0.1:1"))
    env = clean_env(OPENAI_API_KEY="k", SHOAL_REDIS_URL=REDIS, PYTHONPATH=str(shadow))
    result = run_shoal(workspace, *MAP_ARGV, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "shoal: error: [executor] address ray://127.0.0.1:1 needs Ray Client: pip install 'ray[client]'"
    ]


# -- a local Ray started by the driver itself (before the module's shared Ray exists) ------------


@pytest.mark.timeout(600)
def test_driver_started_ray_killed_with_the_driver_leaves_nothing_after_the_rerun(
    workspace: Path, spawn: Spawn
) -> None:
    psutil = pytest.importorskip("psutil")
    ids = write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text('[job]\nconcurrency = 4\n[executor]\nkind = "ray"\nworkers = 2\n')
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        server.backend.hold.close(after=5)
        process = spawn(workspace, *MAP_ARGV, env=map_env(server), stderr=subprocess.DEVNULL)
        server.backend.hold.wait_held(4, timeout=SLOW / 2)
        recorded = json.loads((workspace / ".shoal" / "ray-local.json").read_text())
        assert recorded  # the local Ray's processes, by id and start time
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        server.backend.hold.open()
        again = run_shoal(workspace, *MAP_ARGV, env=map_env(server))
    assert again.returncode == 0, again.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    for pid, started in recorded:  # none of the killed run's Ray processes is left running
        try:
            process_now = psutil.Process(pid)
            alive = process_now.create_time() == started and process_now.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, pid


# -- on a local Ray -------------------------------------------------------------------------------


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
            results[workspace] = run_shoal(workspace, *MAP_ARGV, env=map_env(server))
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
    status = run_shoal(remote, "status", "--json")
    shown = json.loads(status.stdout)["cluster"]
    assert sorted(w["done"] for w in shown) == sorted(w["done"] for w in workers)
    assert "ray worker on node" in run_shoal(remote, "status").stdout
    assert json.loads(run_shoal(local, "status", "--json").stdout)["cluster"] == []
    assert run_shoal(remote, "report", "--out-dir", "rep").returncode == 0
    report = (remote / "rep" / "report.md").read_text()
    assert "Ray workers" in report and workers[0]["name"] in report
    wait_for(lambda: not shoal_actors(), "the job's actors to end with its driver")


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
            results[workspace] = run_shoal(workspace, *ROLES_ARGV, env=map_env(server))
            requests = server.backend.stats["requests"]
        assert results[workspace].returncode == 0, results[workspace].stderr
        assert requests == 12 * 4  # every record, every role, once
    for workspace in (local, remote):
        assert sorted(output_ids(workspace / "out.jsonl")) == sorted(ids)
    items = "SELECT stage, status, count(*) FROM items GROUP BY stage, status ORDER BY stage, status"
    assert rows(local, items) == rows(remote, items)
    assert worker_requests(remote) == 12 * 4 and worker_requests(local) == 0
    assert "ray worker" in results[remote].stderr


@pytest.fixture
def ray_client_address(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray Client server (what `ray start --head` runs on port 10001) in front of the module's Ray."""
    pytest.importorskip("grpc")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path_factory.mktemp("ray-client") / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "ray.util.client.server", f"--address={ray_address}"]
        + ["--host=127.0.0.1", f"--port={port}", "--mode=proxy"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(listening, "the Ray Client server")
        yield f"ray://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.timeout(480)
@pytest.mark.parametrize("form", ["auto", "ray://"])
def test_joining_a_running_cluster_by_auto_or_ray_client(
    workspace: Path, ray_address: str, form: str, request: pytest.FixtureRequest
) -> None:
    ids = write_records(workspace / "in.jsonl", 20)
    if form == "auto":  # what `ray start` leaves for drivers on that machine to find
        address, extra = "auto", {"RAY_ADDRESS": ray_address}
    else:
        address, extra = request.getfixturevalue("ray_client_address"), {}
    (workspace / "shoal.toml").write_text(ray_toml(address, "workers = 2\n"))
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01)) as server:
        result = run_shoal(workspace, *MAP_ARGV, env={**map_env(server), **extra})
        assert result.returncode == 0, result.stderr
        assert server.backend.stats["requests"] == 20
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    assert worker_requests(workspace) == 20


@pytest.mark.timeout(540)
def test_an_actor_killed_mid_job_loses_nothing_and_resends_nothing_finished(
    workspace: Path, ray_address: str, spawn: Spawn
) -> None:
    ids = write_records(workspace / "in.jsonl", 200)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 8\n" + ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01, seed=7)
    with FakeServer(settings) as server:
        server.backend.hold.close(after=60)  # from the 61st request on, answers wait: some are in flight
        process = spawn(workspace, *MAP_ARGV, env=map_env(server))
        wait_for(lambda: server.backend.hold.held >= 4, "requests held in flight")

        def live_workers() -> list[dict[str, Any]]:
            cluster = json.loads(invoke_shoal(workspace, "status", "--json").stdout).get("cluster") or []
            return cluster if sum(w["running"] for w in cluster) >= 4 else []

        # The live view's snapshot shows each worker with its requests in flight.
        wait_for(lambda: len(live_workers()) == 2, "`shoal status` to show both workers running")
        assert server.backend.hold.held <= 8  # the job's concurrency ceiling holds across both workers
        victim = sorted(shoal_actors())[0]
        ray.kill(ray.get_actor(victim, namespace="shoal"), no_restart=True)
        wait_for(lambda: victim not in shoal_actors(), "the actor to die")
        server.backend.hold.open()
        _, stderr = process.communicate(timeout=120)
        requests = server.backend.stats["requests"]
    assert process.returncode == 0, stderr
    written = output_ids(workspace / "out.jsonl")
    assert sorted(written) == ids and len(written) == 200  # every record exactly once
    assert rows(workspace, "SELECT count(DISTINCT key), count(*) FROM calls WHERE outcome = 'ok'") == [
        (200, 200)
    ]
    lost = rows(workspace, "SELECT count(*) FROM calls WHERE outcome = 'transient' AND error LIKE '%lost%'")
    # Only the requests in flight on the dead actor went out twice; nothing finished did. (One the
    # actor had taken but not yet sent counts as lost too, yet reached the server only once.)
    assert lost[0][0] >= 1
    assert 200 <= requests <= 200 + lost[0][0]
    assert "(lost; its requests in flight went to another worker)" in stderr


@pytest.mark.timeout(600)
def test_driver_killed_then_the_same_command_completes_without_orphans(
    workspace: Path, ray_address: str, spawn: Spawn
) -> None:
    ids = write_records(workspace / "in.jsonl", 120)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 8\n" + ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01, seed=9)
    with FakeServer(settings) as server:
        server.backend.hold.close(after=50)
        process = spawn(workspace, *MAP_ARGV, env=map_env(server), stderr=subprocess.DEVNULL)
        wait_for(lambda: server.backend.hold.held >= 4, "requests held in flight")
        assert shoal_actors()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        finished_before = {row[0] for row in rows(workspace, "SELECT key FROM calls WHERE outcome = 'ok'")}
        assert finished_before
        server.backend.hold.open()
        again = run_shoal(workspace, *MAP_ARGV, env=map_env(server))
    assert again.returncode == 0, again.stderr
    written = output_ids(workspace / "out.jsonl")
    assert sorted(written) == ids  # every record exactly once: nothing shipped twice
    last_run = rows(workspace, "SELECT max(id) FROM runs")[0][0]
    sent_again = {row[0] for row in rows(workspace, f"SELECT key FROM calls WHERE run_id = {last_run}")}
    assert not finished_before & sent_again
    assert worker_requests(workspace) == 120 - len(finished_before)
    wait_for(lambda: not shoal_actors(), "no actor of either run left")


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
        result = run_shoal(workspace, "run", "PLAN.md", "--yes", env=map_env(server))
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


@pytest.mark.timeout(540)
def test_ctrl_c_drains_the_cluster_and_the_same_command_resumes(
    workspace: Path, ray_address: str, spawn: Spawn
) -> None:
    ids = write_records(workspace / "in.jsonl", 40)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n" + ray_toml(ray_address, "workers = 2\n"))
    settings = FakeSettings(limits=FakeLimits(rpm=100_000, tpm=50_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        hold = server.backend.hold
        hold.close(after=2)
        process = spawn(workspace, *MAP_ARGV, env=map_env(server))
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(iter(process.stderr.readline, "")))  # type: ignore[union-attr]
        reader.start()
        hold.wait_held(4, timeout=SLOW / 2)
        process.send_signal(signal.SIGINT)
        wait_for(lambda: any("shoal: stopping" in line for line in stderr), "the drain to start")
        hold.open()  # draining: the four requests in flight on the workers finish, nothing new starts
        assert process.wait(timeout=60) == 3
        reader.join(timeout=10)
        assert not any("Traceback" in line for line in stderr), "".join(stderr)
        partial = output_ids(workspace / "out.jsonl")
        assert len(partial) == server.backend.stats["requests"] == 6  # nothing sent was lost
        again = run_shoal(workspace, *MAP_ARGV, env=map_env(server))
        assert again.returncode == 0, again.stderr
        assert server.backend.stats["requests"] == 40
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    wait_for(lambda: not shoal_actors(), "the job's actors to end")


@pytest.mark.timeout(480)
def test_the_cost_budget_holds_across_the_cluster(workspace: Path, ray_address: str) -> None:
    write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text(ray_toml(ray_address, "workers = 2\n"))
    # Rehearsal (sent by the workers) is priced like gpt-4o-mini: about $0.0006 per call at worst.
    argv = ["map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", "rehearsal", "--out", "out.jsonl"]
    result = run_shoal(
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
    result = run_shoal(workspace, "run", str(example), "--yes", "--executor", "ray", env=env)
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
    result = run_shoal(workspace, "run", "flow.py", "--yes", env=clean_env(SHOAL_REDIS_URL=REDIS))
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
    assert sum(w.done for w in workers) == 4
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        sessions = [row[0] for row in conn.execute("SELECT messages FROM sessions")]
    assert len(sessions) == 4 and all(":42" in text for text in sessions)  # the driver journaled them
