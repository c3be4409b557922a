"""Shared fixtures: an isolated workspace and environment for every test, `shoal` processes that never
outlive their test, a local Ray per test module that asks for one, and seeded randomness for tests that
stop a job at a random moment."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Spawn, shoal_argv


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        from scheduling import Scheduling

        config.pluginmanager.register(Scheduling(), "shoal-scheduling")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` first, for a parallel run (tests/scheduling.py); the order is otherwise kept."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory with no provider keys or URLs in the environment."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """`spawn(cwd, *args, env=..., stdout=..., stderr=...)` starts `shoal args` in a subprocess.

    Whatever the test's outcome, each one is killed if still running, reaped and its pipes closed
    when the test ends, so a failing test leaves no process or open pipe behind for the garbage
    collector to report (as a ResourceWarning) in some later test.
    """
    started: list[subprocess.Popen[str]] = []

    def start(cwd: Path, *args: str, env: dict[str, str], **streams: Any) -> subprocess.Popen[str]:
        options: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, **streams}
        process = subprocess.Popen(shoal_argv(*args), cwd=cwd, env=env, text=True, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture(scope="module")
def ray_address(request: pytest.FixtureRequest) -> Iterator[str]:
    """A local Ray (2 CPUs, loopback) shared by the tests of one module; its address to join.

    One per test module, so that Ray's test files can run in different xdist processes at once.
    """
    # The parallel scheduler keeps a file's tests together by its name (tests/scheduling.py); under
    # another name they would be scattered, each process starting a Ray of its own.
    name = request.path.name
    assert name.startswith("test_ray"), f"{name}: a file sharing a Ray must be named test_ray*.py"
    from ray_helpers import local_ray

    with local_ray() as address:
        yield address


@pytest.fixture
def kill_rng() -> random.Random:
    """Randomness for a random kill moment, seeded and printed so that a failure can be replayed.

    SHOAL_TEST_SEED=N replays a run; the seed shows in the captured output of a failed test.
    """
    given = os.environ.get("SHOAL_TEST_SEED")
    seed = int(given) if given else random.SystemRandom().randrange(2**32)
    print(f"random kill moment: seed {seed} (replay with SHOAL_TEST_SEED={seed})")
    return random.Random(seed)
