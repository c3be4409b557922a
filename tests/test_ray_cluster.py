"""The Ray executor with `shoal` processes joining a running cluster: by address, by "auto", through
Ray Client; killed, their actors killed, interrupted, and the same command run again.

One local Ray (2 CPUs, loopback) is started for the module; each `shoal` process joins it as a driver,
as it would join a real cluster with `[executor] address`.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, Spawn, invoke_shoal, output_ids, write_records
from ray_helpers import SLOW, map_env, ray, ray_toml, rows, run_shoal, shoal_actors, wait_for, worker_requests


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
    assert lost[0][0] >= 1
    # Nothing finished went out twice: every request beyond the 200 answered ones is a failed attempt
    # in the journal, one in flight on the dead actor or (on a busy machine) one that timed out. (One
    # the actor had taken but not yet sent counts as lost too, yet reached the server only once.)
    failed = rows(workspace, "SELECT count(*) FROM calls WHERE outcome != 'ok'")
    assert 200 <= requests <= 200 + failed[0][0]
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
