"""How close to the provider's limit does a client run, and how many 429s does it take?

1,000 chat requests of mixed sizes against `shoal fake-server` enforcing RPM 1200 and TPM 150k
(per-minute limits enforced over a 2 s window, as hosted providers quantize them), side by side:

  naive      asyncio.gather behind a semaphore, the OpenAI SDK with its retries on
  cookbook   the algorithm of the OpenAI cookbook's api_request_parallel_processor: full buckets
             at start, a 15 s pause of new dispatches after a 429, up to 5 attempts
  shoal      shoal's engine with the limits configured
  learned    shoal's engine with no limits configured (learned from response headers)

Throughput is reported as a share of the binding limit: the larger of (requests per minute / RPM)
and (tokens per minute / TPM), tokens counted the way the server settles them: prompt + max_tokens
(the server keeps the reservation, as OpenAI does), or prompt + output with --refund-unused.
Targets for shoal: >= 95% with <= 0.5% of requests answered 429 (configured), >= 85% (learned).

    .venv/bin/python bench/rate_ceiling.py [--requests 1000] [--only shoal,learned] [--refund-unused]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai

from shoal._tokens import estimate_tokens
from shoal.config import JobSettings, ModelLimits, ProviderSettings, ShoalConfig
from shoal.engine import CallSpec, LocalExecutor, StateDir, StopSignal, open_job
from shoal.errors import ModelCallError
from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import Message, ModelRef, ModelRequest, ProviderSet

RPM = 1200
TPM = 150_000
CONCURRENCY = 16
MODEL = "gpt-4o-mini"
WORDS = "tide reef kelp current shoal plankton coral drift swell estuary lagoon brine".split()


@dataclass(frozen=True)
class Job:
    prompt: str
    max_tokens: int


@dataclass
class Outcome:
    name: str
    wall_s: float
    ok: int
    failed: int
    rate_limited: int
    requests_seen: int
    tokens_settled: int

    @property
    def utilisation(self) -> float:
        minutes = self.wall_s / 60
        return max(self.ok / minutes / RPM, self.tokens_settled / minutes / TPM)


def make_jobs(count: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for index in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 150)))
        jobs.append(Job(f"Item {index}: summarise: {words}", rng.choice([32, 64, 64, 128, 128, 256])))
    return jobs


def server_settings(refund_unused: bool) -> FakeSettings:
    limits = FakeLimits(rpm=RPM, tpm=TPM, window_s=2.0, refund_unused=refund_unused)
    return FakeSettings(limits=limits, latency_s=0.25, per_token_s=0.002, seed=5)


def settled_tokens(log: Path, refund_unused: bool) -> tuple[int, int]:
    """(answered requests, tokens as the server counted them) from the fake server's request log."""
    answered = tokens = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["status"] == 200:
            answered += 1
            tokens += entry["prompt_tokens"] + entry["output_tokens" if refund_unused else "max_tokens"]
    return answered, tokens


async def naive(server: FakeServer, jobs: list[Job]) -> tuple[int, int]:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="bench")  # SDK retries on (2)
    gate = asyncio.Semaphore(CONCURRENCY)
    failed = 0

    async def one(job: Job) -> None:
        nonlocal failed
        async with gate:
            try:
                await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": job.prompt}], max_tokens=job.max_tokens
                )
            except openai.APIError:
                failed += 1

    await asyncio.gather(*(one(job) for job in jobs))
    await client.close()
    return len(jobs) - failed, failed


class _Capacity:
    """The cookbook's capacity counters: full at start, refilled per elapsed time."""

    def __init__(self) -> None:
        self.requests = float(RPM)
        self.tokens = float(TPM)
        self.stamp = time.monotonic()

    def take(self, tokens: int) -> bool:
        now = time.monotonic()
        self.requests = min(RPM, self.requests + RPM * (now - self.stamp) / 60)
        self.tokens = min(TPM, self.tokens + TPM * (now - self.stamp) / 60)
        self.stamp = now
        if self.requests >= 1 and self.tokens >= tokens:
            self.requests -= 1
            self.tokens -= tokens
            return True
        return False


async def cookbook(server: FakeServer, jobs: list[Job]) -> tuple[int, int]:
    """After openai-cookbook/examples/api_request_parallel_processor.py, on httpx instead of aiohttp."""
    pause_after_429_s = 15.0
    max_attempts = 5
    capacity = _Capacity()
    last_rate_limit = 0.0
    retry: asyncio.Queue[tuple[Job, int]] = asyncio.Queue()
    pending = [(job, max_attempts) for job in reversed(jobs)]
    in_progress = 0
    ok = failed = 0
    client = httpx2.AsyncClient(base_url=server.openai_base_url, timeout=60)

    async def call(job: Job, attempts_left: int) -> None:
        nonlocal in_progress, ok, failed, last_rate_limit
        try:
            response = await client.post(
                "/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": job.prompt}],
                    "max_tokens": job.max_tokens,
                },
            )
            if response.status_code == 429:
                last_rate_limit = time.monotonic()
                raise RuntimeError("rate limit")
            response.raise_for_status()
            ok += 1
        except (RuntimeError, httpx2.HTTPError):
            if attempts_left > 1:
                retry.put_nowait((job, attempts_left - 1))
            else:
                failed += 1
        finally:
            in_progress -= 1

    tasks = set()
    next_job: tuple[Job, int] | None = None
    while next_job is not None or pending or in_progress or not retry.empty():
        if next_job is None:
            next_job = retry.get_nowait() if not retry.empty() else (pending.pop() if pending else None)
        if next_job is not None and capacity.take(
            estimate_tokens(next_job[0].prompt) + next_job[0].max_tokens
        ):
            in_progress += 1
            task = asyncio.create_task(call(*next_job))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_job = None
        await asyncio.sleep(0.001)
        since = time.monotonic() - last_rate_limit
        if since < pause_after_429_s:
            await asyncio.sleep(pause_after_429_s - since)
    await client.aclose()
    return ok, failed


def shoal_variant(configured: bool) -> Callable[[FakeServer, list[Job]], Awaitable[tuple[int, int]]]:
    async def run(server: FakeServer, jobs: list[Job]) -> tuple[int, int]:
        ref = ModelRef("openai", MODEL)
        limits = {ref.key: ModelLimits(rpm=RPM, tpm=TPM)} if configured else {}
        config = ShoalConfig(
            providers={"openai": ProviderSettings(base_url=server.openai_base_url)},
            limits=limits,
            job=JobSettings(concurrency=CONCURRENCY),
        )
        failed = 0
        with tempfile.TemporaryDirectory() as root:
            async with open_job(
                state=StateDir(Path(root)),
                config=config,
                name="bench",
                command="bench",
                env={"OPENAI_API_KEY": "bench"},
                stop=StopSignal(),
                providers=ProviderSet(config, {"OPENAI_API_KEY": "bench"}),
            ) as job:

                async def one(item: tuple[int, Job]) -> None:
                    nonlocal failed
                    index, work = item
                    request = ModelRequest(MODEL, (Message("user", work.prompt),), work.max_tokens)
                    try:
                        await job.caller.call(CallSpec(f"r{index}", "bench", ref, request))
                    except ModelCallError:
                        failed += 1

                await LocalExecutor(CONCURRENCY * 2).run(enumerate(jobs), one, stop=job.stop)
        return len(jobs) - failed, failed

    return run


VARIANTS = {
    "naive": naive,
    "cookbook": cookbook,
    "shoal": shoal_variant(configured=True),
    "learned": shoal_variant(configured=False),
}


async def measure(name: str, jobs: list[Job], logs: Path, refund_unused: bool) -> Outcome:
    log = logs / f"{name}.jsonl"
    with FakeServer(server_settings(refund_unused), log_path=log) as server:
        started = time.monotonic()
        ok, failed = await VARIANTS[name](server, jobs)
        wall = time.monotonic() - started
        stats = server.backend.stats
    answered, tokens = settled_tokens(log, refund_unused)
    return Outcome(name, wall, ok, failed, stats.get("rate_limited", 0), stats["requests"], tokens)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="keep the fake server's request logs in this folder")
    parser.add_argument(
        "--refund-unused", action="store_true", help="the server gives unused max_tokens back"
    )
    args = parser.parse_args()
    jobs = make_jobs(args.requests, args.seed)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    print(f"{args.requests} requests, RPM {RPM}, TPM {TPM:,}, concurrency {CONCURRENCY}")
    print(f"{'variant':<10} {'wall s':>7} {'ok':>5} {'failed':>6} {'429s':>5} {'429 %':>6} {'of limit':>9}")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        logs = args.logs or Path(scratch)
        logs.mkdir(parents=True, exist_ok=True)
        for name in names:
            outcome = asyncio.run(measure(name, jobs, logs, args.refund_unused))
            results.append(outcome)
            share_429 = 100 * outcome.rate_limited / max(1, outcome.requests_seen)
            print(
                f"{name:<10} {outcome.wall_s:7.1f} {outcome.ok:5d} {outcome.failed:6d} "
                f"{outcome.rate_limited:5d} {share_429:5.1f}% {100 * outcome.utilisation:8.1f}%",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
