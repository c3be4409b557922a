"""Rate limits through the commands users run: `shoal map` against `shoal fake-server`.

Both sides are the real commands in their own processes. Figures come from the fake server's
request log (what the provider saw), so process start-up is not counted against the rate:

  tpm        TPM binds: 150,000 TPM, the server keeps each reservation (prompt + max_tokens; no
             refund of unused tokens, as OpenAI counts), 1,000 records, concurrency 16,
             max_tokens 256. Target: >= 97% of the limit, <= 0.5% of requests answered 429.
  rpm        RPM binds: 600 RPM, the same records. Target: >= 99% of the limit.
  unlimited  a server with no limits and no rate-limit headers (vLLM, Ollama), 0.25 s latency,
             400 records at concurrency 16: `shoal map` against a plain asyncio semaphore +
             gather client (OpenAI SDK) on the same kind of server. Target: >= 95% of its
             throughput.

"Of limit" is requests (rpm) or tokens as the server counted them (tpm) per minute, over the span
from the first request's arrival to the last answer, divided by the limit. `--learned` leaves the
limits out of shoal.toml, so shoal learns them from headers.

    .venv/bin/python bench/rate_binding.py                       # all three cases, once
    .venv/bin/python bench/rate_binding.py --cases tpm --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import openai

MODEL = "gpt-4o-mini"
CONCURRENCY = 16
WORDS = "tide reef kelp current shoal plankton coral drift swell estuary lagoon brine".split()
PROMPT = "Item {id}: summarise: {text}"


@dataclass(frozen=True)
class Case:
    name: str
    records: int
    server_args: tuple[str, ...]
    rpm: int | None = None
    tpm: int | None = None
    max_tokens: int = 256


CASES = {
    "tpm": Case("tpm", 1000, ("--tpm", "150000", "--latency", "0.25", "--per-token", "0.002"), tpm=150_000),
    "rpm": Case("rpm", 1000, ("--rpm", "600", "--latency", "0.25", "--per-token", "0.002"), rpm=600),
    "unlimited": Case("unlimited", 400, ("--latency", "0.25", "--no-rate-headers")),
}


@dataclass
class Figures:
    span_s: float
    answered: int
    rate_limited: int
    counted_tokens: int
    wall_s: float

    def of_limit(self, case: Case) -> float:
        minutes = self.span_s / 60
        if case.tpm:
            return self.counted_tokens / minutes / case.tpm
        if case.rpm:
            return self.answered / minutes / case.rpm
        return float("nan")

    @property
    def per_s(self) -> float:
        return self.answered / self.span_s


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def write_records(path: Path, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 150)))
            handle.write(json.dumps({"id": f"r{index:05d}", "text": words}) + "\n")


def read_log(log: Path) -> Figures:
    """What the server saw: answered requests, 429s, tokens it counted, first arrival to last answer."""
    first = last = None
    answered = limited = tokens = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        done = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        arrived = done - entry["latency_s"]
        first = arrived if first is None else min(first, arrived)
        last = done if last is None else max(last, done)
        if entry["status"] == 200:
            answered += 1
            tokens += entry["prompt_tokens"] + entry["max_tokens"]  # no refund: the reservation counts
        elif entry["status"] == 429:
            limited += 1
    assert first is not None and last is not None, "the server saw no request"
    return Figures(last - first, answered, limited, tokens, 0.0)


class FakeServerProcess:
    """`shoal fake-server` on a free port, logging every request."""

    def __init__(self, args: tuple[str, ...], log: Path) -> None:
        argv = [sys.executable, "-m", "shoal", "fake-server", "--port", "0", "--log", str(log), *args]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "shoal fake-server: OpenAI base URL http://.../v1 ..."
        self.base_url = line.split("OpenAI base URL ")[1].split()[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def run_shoal_map(case: Case, folder: Path, base_url: str, learned: bool) -> float:
    limits = ""
    if not learned and (case.rpm or case.tpm):
        limits = f'[limits."openai:{MODEL}"]\n'
        limits += f"rpm = {case.rpm}\n" if case.rpm else ""
        limits += f"tpm = {case.tpm}\n" if case.tpm else ""
    (folder / "shoal.toml").write_text(limits)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env |= {"OPENAI_API_KEY": "bench", "OPENAI_BASE_URL": base_url}
    argv = [sys.executable, "-m", "shoal", "map", "in.jsonl", "--prompt", PROMPT]
    argv += ["--model", f"openai:{MODEL}"]
    argv += ["--out", "out.jsonl", "--max-tokens", str(case.max_tokens), "--concurrency", str(CONCURRENCY)]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"shoal map failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return wall


async def plain_client(records: Path, base_url: str, max_tokens: int) -> None:
    """The client a user would write instead: a semaphore and gather over the OpenAI SDK."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=2)
    gate = asyncio.Semaphore(CONCURRENCY)
    rows = [json.loads(line) for line in records.read_text().splitlines()]

    async def one(row: dict[str, str]) -> None:
        async with gate:
            await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": PROMPT.format(**row)}],
                max_tokens=max_tokens,
            )

    await asyncio.gather(*(one(row) for row in rows))
    await client.close()


def measure(case: Case, runner: str, learned: bool) -> Figures:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_records(folder / "in.jsonl", case.records)
        log = folder / "server.jsonl"
        server = FakeServerProcess(case.server_args, log)
        try:
            started = time.monotonic()
            if runner == "shoal":
                wall = run_shoal_map(case, folder, server.base_url, learned)
            else:
                asyncio.run(plain_client(folder / "in.jsonl", server.base_url, case.max_tokens))
                wall = time.monotonic() - started
        finally:
            server.stop()
        figures = read_log(log)
        figures.wall_s = wall
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="tpm,rpm,unlimited")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measure; the median is shown")
    parser.add_argument("--learned", action="store_true", help="no limits in shoal.toml: learn from headers")
    args = parser.parse_args()
    for name in [n.strip() for n in args.cases.split(",") if n.strip()]:
        case = CASES[name]
        runners = ("shoal", "plain") if name == "unlimited" else ("shoal",)
        results: dict[str, list[Figures]] = {runner: [] for runner in runners}
        for attempt in range(args.repeat):
            for runner in runners:  # interleaved, so load changes hit both alike
                before = load()
                figures = measure(case, runner, args.learned)
                results[runner].append(figures)
                share = 100 * figures.rate_limited / case.records
                of_limit = figures.of_limit(case)
                limit_text = "" if of_limit != of_limit else f" of-limit {100 * of_limit:.1f}%"
                print(
                    f"{name:<9} {runner:<5} run {attempt + 1}: span {figures.span_s:6.1f}s "
                    f"wall {figures.wall_s:6.1f}s answered {figures.answered} "
                    f"429s {figures.rate_limited} ({share:.2f}%){limit_text} "
                    f"{figures.per_s:.1f} req/s  [{before} -> {load()}]",
                    flush=True,
                )
        if name == "unlimited":
            shoal_rate = statistics.median(f.per_s for f in results["shoal"])
            plain_rate = statistics.median(f.per_s for f in results["plain"])
            shoal_wall = statistics.median(case.records / f.wall_s for f in results["shoal"])
            plain_wall = statistics.median(case.records / f.wall_s for f in results["plain"])
            print(
                f"unlimited: shoal map {shoal_rate:.1f} req/s vs plain {plain_rate:.1f} req/s "
                f"= {100 * shoal_rate / plain_rate:.1f}% (server span); end to end with start-up "
                f"{shoal_wall:.1f} vs {plain_wall:.1f} records/s = {100 * shoal_wall / plain_wall:.1f}%"
            )
        else:
            median = statistics.median(f.of_limit(case) for f in results["shoal"])
            limited = statistics.median(f.rate_limited for f in results["shoal"])
            print(f"{name}: median {100 * median:.1f}% of the limit, {limited:g} 429s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
