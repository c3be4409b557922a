"""One rate budget for every process on the same API key, shared through Redis.

Against the Redis on 127.0.0.1:6379 (each test in a namespace of its own, deleted afterwards), and
for the Redis-lost case a redis-server this file starts on another port and stops.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal._clock import SystemClock
from shoal.budget import Demand, SharedBook, SharedBudget
from shoal.budget._redis_book import BEAT_TTL_S
from shoal.config import BudgetConfig, ModelLimits, ShoalConfig
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import ProviderSet

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, output_ids, run_shoal, write_records

redis = pytest.importorskip("redis")

REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "openai:gpt-4o-mini"
SECRET = "sk-test-h12-SECRET-7f3a9c0e5b1d4e2a"


def _redis_up(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


pytestmark = pytest.mark.skipif(not _redis_up(REDIS_URL), reason="no Redis on 127.0.0.1:6379")


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test's own; every key in it is deleted afterwards."""
    name = f"shoaltest-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server of the test's own on a free loopback port, persisting every write (AOF)."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = _free_port()
        self.dir = directory
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", *self.extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def make(*extra: str) -> RedisProcess:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        server = RedisProcess(directory, *extra)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


def _config(namespace: str, url: str = REDIS_URL, *, rpm: int | None = 600, **budget: Any) -> str:
    text = f'[budget]\nredis_url = "{url}"\nnamespace = "{namespace}"\n'
    for key, value in budget.items():
        text += f"{key} = {value}\n"
    if rpm is not None:
        text += f'[limits."{MODEL}"]\nrpm = {rpm}\n'
    return text


def _workspace(root: Path, name: str, records: int, config: str) -> Path:
    path = root / name
    path.mkdir()
    write_records(path / "in.jsonl", records)
    (path / "shoal.toml").write_text(config)
    return path


def _wait_for(condition: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _last_shared(workspace: Path) -> dict[str, Any]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        row = conn.execute("SELECT data FROM snapshots ORDER BY ts DESC LIMIT 1").fetchone()
    return dict(json.loads(row[0])["models"][MODEL]["shared"])


def _everything_in(client: Any) -> list[bytes]:
    """Every key in the database and every value stored under it, whatever its type."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"zset":
            found += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"set":
            found += list(client.smembers(key))
        elif kind == b"list":
            found += list(client.lrange(key, 0, -1))
    return found


@pytest.mark.long
def test_two_processes_on_one_key_stay_within_the_limit_together(
    workspace: Path, spawn: Spawn, namespace: str
) -> None:
    """Each process alone could fill the limit; together, through Redis, the server sees no 429.

    The server sends no rate-limit headers, so nothing but the shared budget tells one process what
    the other sends (without Redis, the same two jobs meet 429s: the control below).
    """
    settings = FakeSettings(limits=FakeLimits(rpm=600), latency_s=0.01, rate_headers=False)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        first = _workspace(workspace, "one", 30, _config(namespace))
        second = _workspace(workspace, "two", 30, _config(namespace))
        jobs = [spawn(path, *MAP_ARGV, env=env) for path in (first, second)]
        for job in jobs:
            _, err = job.communicate(timeout=50)
            assert job.returncode == 0, err
        stats = dict(server.backend.stats)
    assert sorted(output_ids(first / "out.jsonl")) == sorted(output_ids(second / "out.jsonl"))
    assert stats["requests"] == 60
    assert stats["rate_limited"] == 0
    # Each job's own view said the budget was shared by two processes; the report says so.
    assert max(_last_shared(first)["processes_max"], _last_shared(second)["processes_max"]) == 2
    report = invoke_shoal(first, "report", env=env)
    assert report.returncode == 0, report.stderr
    assert "shared through Redis by up to 2 processes" in (first / "report.md").read_text()
    # No API key and no prefix of one was written to Redis: every key and value, scanned.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stored = _everything_in(client)
    finally:
        client.close()
    assert any(namespace.encode() in item for item in stored)
    for length in range(6, len(SECRET) + 1):
        prefix = SECRET[:length].encode()
        assert not any(prefix in item for item in stored), f"{prefix!r} found in Redis"


@pytest.mark.long
def test_without_redis_the_same_two_jobs_meet_429s(workspace: Path, spawn: Spawn) -> None:
    """The control of the test above: two in-process budgets each believe they own the limit."""
    settings = FakeSettings(limits=FakeLimits(rpm=600), latency_s=0.01, rate_headers=False)
    limits = f'[limits."{MODEL}"]\nrpm = 600\n'
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        jobs = [spawn(_workspace(workspace, name, 30, limits), *MAP_ARGV, env=env) for name in ("a", "b")]
        for job in jobs:
            _, err = job.communicate(timeout=50)
            assert job.returncode == 0, err
        assert server.backend.stats["rate_limited"] > 0


@pytest.fixture
async def two_books(namespace: str) -> AsyncIterator[tuple[SharedBook, SharedBook]]:
    """Two processes' books on one budget (as two processes would build them)."""
    config = ShoalConfig(budget=BudgetConfig(redis_url=REDIS_URL, namespace=namespace))
    lookup = ProviderSet(config, {"OPENAI_API_KEY": SECRET}).budget_identity
    books = [
        await SharedBook.connect(
            config.budget, {MODEL: ModelLimits()}, lookup, clock=SystemClock(), rng=random.Random(seed)
        )
        for seed in (1, 2)
    ]
    yield books[0], books[1]
    for book in books:
        await book.aclose()


async def _settled(book: SharedBook) -> None:
    await asyncio.gather(*list(book._tasks))


async def test_a_429_seen_by_one_process_pauses_the_other(two_books: tuple[SharedBook, SharedBook]) -> None:
    first, second = (book.for_model(MODEL) for book in two_books)
    assert isinstance(first, SharedBudget) and first.redis_key == second.redis_key
    demand = Demand(input_tokens=100, max_tokens=50)
    # No limits configured or learned (a local server): nothing is paced.
    for _ in range(200):
        await asyncio.wait_for(second.acquire(demand), 30)
    first.rate_limited(30.0)
    await _settled(two_books[0])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second.acquire(demand), 0.5)
    assert second.paused_for > 25
    assert second.rate_limited_count == 1


async def test_limits_and_the_slowdown_are_shared(two_books: tuple[SharedBook, SharedBook]) -> None:
    from shoal.providers._types import RateSnapshot

    first, second = (book.for_model(MODEL) for book in two_books)
    first.observe(RateSnapshot(limit_requests=600, remaining_requests=600, reset_requests_s=0.0))
    await _settled(two_books[0])
    await second.beat()
    assert second.limits() == {"rpm": 600.0}
    first.rate_limited(2.0)
    await _settled(two_books[0])
    await second.beat()
    assert second.factor < 1.0


@pytest.mark.long
def test_a_process_killed_mid_job_leaves_the_budget_whole(
    workspace: Path, spawn: Spawn, namespace: str
) -> None:
    settings = FakeSettings(limits=FakeLimits(rpm=600), latency_s=0.01, rate_headers=False)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        doomed = _workspace(workspace, "doomed", 200, _config(namespace))
        survivor = _workspace(workspace, "survivor", 60, _config(namespace))
        victim = spawn(doomed, *MAP_ARGV, env=env)
        _wait_for(lambda: _lines(doomed / "out.jsonl") >= 3)
        job = spawn(survivor, *MAP_ARGV, env=env)
        _wait_for(lambda: _lines(survivor / "out.jsonl") >= 3)

        def status_says_two() -> bool:
            shown = invoke_shoal(survivor, "status", env=env).stdout
            return "shared by 2 processes" in " ".join(shown.replace("│", " ").split())

        _wait_for(status_says_two, timeout=20)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        _, err = job.communicate(timeout=50)
        assert job.returncode == 0, err
        assert len(output_ids(survivor / "out.jsonl")) == 60
        assert server.backend.stats["rate_limited"] == 0
    client = redis.Redis.from_url(REDIS_URL)
    try:
        (budget,) = [k for k in client.scan_iter(match=f"{namespace}:budget:*") if not k.endswith(b":procs")]

        # The killed process's heartbeat lapses: it no longer counts as using the budget.
        def live() -> int:
            now = float(client.time()[0])
            return int(client.zcount(budget + b":procs", now - BEAT_TTL_S, "+inf"))

        _wait_for(lambda: live() == 0, timeout=3 * BEAT_TTL_S)
        # Nothing it held is missing: the bucket is full again after one burst of refill.
        capacity = 600 / 60 * 1.0
        config = ShoalConfig(budget=BudgetConfig(redis_url=REDIS_URL, namespace=namespace))

        async def fill() -> float:
            book = await SharedBook.connect(
                config.budget,
                {MODEL: ModelLimits(rpm=600)},
                ProviderSet(config, {"OPENAI_API_KEY": SECRET}).budget_identity,
                clock=SystemClock(),
                rng=random.Random(0),
            )
            try:
                await book.for_model(MODEL).beat()
                return float(client.hget(budget, "lvl:rpm") or 0)
            finally:
                await book.aclose()

        _wait_for(lambda: asyncio.run(fill()) >= capacity - 1e-6, timeout=20)
    finally:
        client.close()


@pytest.mark.long
def test_redis_lost_mid_job_drains_and_the_same_command_resumes(
    workspace: Path, spawn: Spawn, own_redis: Callable[..., RedisProcess]
) -> None:
    server_redis = own_redis()
    settings = FakeSettings(limits=FakeLimits(rpm=300), latency_s=0.01)
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        config = _config("lost", server_redis.url, rpm=300, redis_timeout_s=2)
        path = _workspace(workspace, "job", 60, config)
        job = spawn(path, *MAP_ARGV, env=env)
        _wait_for(lambda: _lines(path / "out.jsonl") >= 5)
        server_redis.stop()
        _, err = job.communicate(timeout=60)
        assert job.returncode == 3, err
        assert "Redis" in err
        done = _lines(path / "out.jsonl")
        assert 5 <= done < 60
        server_redis.start()  # the same port and data directory: the budget's state is back
        again = run_shoal(path, *MAP_ARGV, env=env, timeout=90)
        assert again.returncode == 0, again.stderr
        assert sorted(output_ids(path / "out.jsonl")) == sorted(f"rec-{i:03d}" for i in range(60))
        sent = server.backend.stats["requests"]
    # Every request the server saw was granted by the shared budget first (the grants survived
    # Redis's restart in its append-only file): none went out while Redis was away.
    client = redis.Redis.from_url(server_redis.url)
    try:
        (budget,) = [k for k in client.scan_iter(match="lost:budget:*") if not k.endswith(b":procs")]
        granted = float(client.hget(budget, "g:rpm") or 0)
    finally:
        client.close()
    assert sent == granted


async def test_the_book_is_shared_only_when_redis_is_configured(namespace: str) -> None:
    from shoal.budget import BudgetBook, open_budget_book

    def build(config: ShoalConfig, env: dict[str, str]) -> Any:
        return open_budget_book(
            config,
            env,
            {},
            key_of=ProviderSet(config, env).budget_identity,
            clock=SystemClock(),
            rng=random.Random(0),
        )

    plain = await build(ShoalConfig(), {})
    assert isinstance(plain, BudgetBook) and not plain.shared
    config = ShoalConfig(budget=BudgetConfig(namespace=namespace))
    shared = await build(config, {"SHOAL_REDIS_URL": REDIS_URL, "OPENAI_API_KEY": SECRET})
    try:
        assert isinstance(shared, SharedBook) and shared.shared
        budget = shared.for_model(MODEL)
        assert budget.redis_key.startswith(f"{namespace}:budget:{MODEL}:")
        assert SECRET[:6] not in budget.redis_key
    finally:
        await shared.aclose()
