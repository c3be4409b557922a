"""What shoal itself costs per call: 10,000 calls against an instant in-process model through the
whole path (journal lookup, concurrency slot, cost budget, rate budget, answer checks, journal
record, accounting). Target: at least 2,000 calls/s on 2 cores, peak RSS under 200 MB.

    .venv/bin/python bench/overhead.py [--calls 10000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from shoal.config import JobSettings, ModelLimits, ShoalConfig
from shoal.engine import CallSpec, LocalExecutor, StateDir, StopSignal, open_job
from shoal.providers import Message, ModelRef, ModelReply, ModelRequest, Usage

MODEL = ModelRef("openai", "gpt-4o-mini")


class InstantModel:
    """Answers at once, so that only shoal's own work is measured."""

    name = "openai"

    def get(self, provider: str) -> InstantModel:
        return self

    async def complete(self, request: ModelRequest) -> ModelReply:
        return ModelReply("an instant answer", Usage(len(request.messages[0].content) // 4, 4), "stop")

    async def aclose(self) -> None:
        return None


async def measure(calls: int, concurrency: int, root: Path) -> float:
    config = ShoalConfig(
        limits={MODEL.key: ModelLimits(rpm=100_000_000, tpm=10_000_000_000)},
        job=JobSettings(concurrency=concurrency),
    )
    async with open_job(
        state=StateDir(root),
        config=config,
        name="overhead",
        command="bench",
        env={},
        stop=StopSignal(),
        providers=InstantModel(),
    ) as job:

        async def one(index: int) -> None:
            request = ModelRequest(MODEL.name, (Message("user", f"record {index}: summarise this"),), 16)
            await job.caller.call(CallSpec(f"item-{index}", "bench", MODEL, request))

        started = time.perf_counter()
        await LocalExecutor(concurrency).run(range(calls), one, stop=job.stop)
        elapsed = time.perf_counter() - started
        rows = job.journal.query("SELECT count(*) FROM calls WHERE outcome = 'ok'")[0][0]
    assert rows == calls, f"journal has {rows} calls, expected {calls}"
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        elapsed = asyncio.run(measure(args.calls, args.concurrency, Path(root)))
    rate = args.calls / elapsed
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"calls: {args.calls}  concurrency: {args.concurrency}  elapsed: {elapsed:.2f}s")
    print(f"throughput: {rate:,.0f} calls/s (target >= 2,000)  peak RSS: {peak_mb:.0f} MB (target < 200)")
    return 0 if rate >= 2000 and peak_mb < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
