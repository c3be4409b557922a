"""The Ray executor refusing what it cannot use, and a local Ray that `shoal` starts itself.

The tests with a Ray of the module's own are in test_ray_cluster.py (`shoal` processes joining it,
killed, interrupted) and test_ray_jobs.py (map, roles, plans and workflows sent by Ray workers).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, Spawn, clean_env, output_ids, write_records
from ray_helpers import REDIS, SLOW, map_env, ray_toml, run_shoal

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


# -- a local Ray started by the driver itself --------------------------------------------------


@pytest.mark.long
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
