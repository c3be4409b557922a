"""What the Ray test files share: one local Ray per test module, and reading what a job left.

Importing this module sets Ray's nodes on loopback (before Ray is imported) and skips the importing
test module when Ray is not installed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from shoal.fake import FakeServer

from helpers import clean_env
from helpers import run_shoal as run_shoal_within

# Ray's nodes on loopback: set before Ray is imported here and inherited by every `shoal` the tests run.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

REDIS = "redis://127.0.0.1:6379/0"

# Ray starts a Python process per actor and task; on a machine kept busy by other work that takes
# minutes, not seconds. These limits are for a hang, not for speed.
SLOW = 300.0


@contextmanager
def local_ray() -> Iterator[str]:
    """A local Ray (2 CPUs, loopback) in this process; yields its address for `shoal` to join."""
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


def run_shoal(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_shoal_within(cwd, *args, env=env, timeout=SLOW)


def wait_for(condition: Any, what: str, timeout: float = SLOW / 2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
