"""Four `shoal map` processes on one API key against one `shoal fake-server`: who shares the limit?

The server enforces RPM 1200 and TPM 150,000 and keeps each reservation (prompt + max_tokens, no
refund of unused tokens, as OpenAI counts). Four processes start together, side by side:

  full     four in-process budgets, each configured with the whole limit (each believes it owns it)
  quarter  four in-process budgets, each configured with a quarter (what users do by hand today)
  shared   the Redis budget ([budget] redis_url), each process configured with the whole limit

Each is run with equal work (400 requests per process) and unequal work (100/200/400/900).
Figures come from the server's request log: combined throughput as a share of the binding limit
(requests per minute / RPM or counted tokens per minute / TPM, whichever is higher, from the first
arrival to the last answer), 429s as a share of requests, and wall time from the start of the four
processes to the end of the last. Targets for `shared`: >= 95% of the binding limit, <= 0.5% 429s,
and a wall time below `quarter`'s with unequal work.

    .venv/bin/python bench/shared_budget.py                     # everything (about 15 minutes)
    .venv/bin/python bench/shared_budget.py --cases shared --work unequal
    .venv/bin/python bench/shared_budget.py --scale 0.25        # a quick look: a quarter of the work
    .venv/bin/python bench/shared_budget.py --no-rate-headers   # a server (gateway) that sends none

Needs Redis at SHOAL_BENCH_REDIS (default redis://127.0.0.1:6379/0); its keys go in a namespace of
their own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RPM, TPM = 1200, 150_000
MODEL = "openai:gpt-4o-mini"
MAX_TOKENS = 100
CONCURRENCY = 16
SERVER_ARGS = ("--rpm", str(RPM), "--tpm", str(TPM), "--latency", "0.25", "--per-token", "0.002")
WORK = {"equal": (400, 400, 400, 400), "unequal": (100, 200, 400, 900)}
WORDS = "tide reef kelp current shoal plankton coral drift swell estuary lagoon brine".split()
PROMPT = "Item {id}: summarise: {text}"


@dataclass(frozen=True)
class Figures:
    of_limit: float
    binding: str
    requests: int
    rate_limited: int
    wall_s: float


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


def write_records(path: Path, count: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 150)))
            handle.write(json.dumps({"id": f"r{index:05d}", "text": words}) + "\n")


def read_log(log: Path, wall_s: float) -> Figures:
    first = last = None
    answered = limited = tokens = total = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        total += 1
        done = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        arrived = done - entry["latency_s"]
        first = arrived if first is None else min(first, arrived)
        last = done if last is None else max(last, done)
        if entry["status"] == 200:
            answered += 1
            tokens += entry["prompt_tokens"] + entry["max_tokens"]
        elif entry["status"] == 429:
            limited += 1
    assert first is not None and last is not None, "the server saw no request"
    minutes = (last - first) / 60
    rpm_share, tpm_share = answered / minutes / RPM, tokens / minutes / TPM
    binding = "tpm" if tpm_share >= rpm_share else "rpm"
    return Figures(max(rpm_share, tpm_share), binding, total, limited, wall_s)


class FakeServerProcess:
    def __init__(self, log: Path, extra: tuple[str, ...]) -> None:
        argv = [sys.executable, "-m", "shoal", "fake-server", "--port", "0", "--log", str(log), *SERVER_ARGS]
        argv += extra
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.base_url = line.split("OpenAI base URL ")[1].split()[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def config(case: str, redis_url: str, namespace: str) -> str:
    share = 4 if case == "quarter" else 1
    text = f'[limits."{MODEL}"]\nrpm = {RPM // share}\ntpm = {TPM // share}\n'
    if case == "shared":
        text += f'[budget]\nredis_url = "{redis_url}"\nnamespace = "{namespace}"\n'
    return text


def run_case(case: str, work: tuple[int, ...], redis_url: str, extra: tuple[str, ...] = ()) -> Figures:
    namespace = f"shoalbench-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        log = root / "server.jsonl"
        server = FakeServerProcess(log, extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "SHOAL_"))}
        env |= {"OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": server.base_url}
        folders = []
        for index, count in enumerate(work):
            folder = root / f"p{index}"
            folder.mkdir()
            write_records(folder / "in.jsonl", count, seed=index + 1)
            (folder / "shoal.toml").write_text(config(case, redis_url, namespace))
            folders.append(folder)
        argv = [sys.executable, "-m", "shoal", "map", "in.jsonl", "--prompt", PROMPT, "--model", MODEL]
        argv += ["--out", "out.jsonl", "--max-tokens", str(MAX_TOKENS), "--concurrency", str(CONCURRENCY)]
        try:
            quiet = subprocess.DEVNULL
            started = time.monotonic()
            processes = [
                subprocess.Popen(argv, cwd=f, env=env, stdout=quiet, stderr=subprocess.PIPE, text=True)
                for f in folders
            ]
            for process in processes:
                _, err = process.communicate()
                if process.returncode not in (0, 1):
                    raise SystemExit(f"shoal map failed ({process.returncode}):\n{err[-2000:]}")
            wall = time.monotonic() - started
        finally:
            server.stop()
            if case == "shared":
                _forget(redis_url, namespace)
        return read_log(log, wall)


def _forget(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--cases", default="full,quarter,shared")
    parser.add_argument("--work", default="equal,unequal")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every process's requests")
    parser.add_argument(
        "--no-rate-headers", action="store_true", help="the server sends no rate-limit headers (a gateway)"
    )
    args = parser.parse_args()
    redis_url = os.environ.get("SHOAL_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    server = " ".join(SERVER_ARGS)
    server += " --no-rate-headers" if args.no_rate_headers else ""
    print(f"fake server: {server}; max_tokens {MAX_TOKENS}, concurrency {CONCURRENCY} per process")
    for work_name in [w.strip() for w in args.work.split(",") if w.strip()]:
        work = tuple(max(1, round(n * args.scale)) for n in WORK[work_name])
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            before = load()
            extra = ("--no-rate-headers",) if args.no_rate_headers else ()
            figures = run_case(case, work, redis_url, extra)
            share_429 = 100 * figures.rate_limited / max(1, figures.requests)
            print(
                f"{work_name:8} {'/'.join(map(str, work)):16} {case:8} "
                f"{100 * figures.of_limit:5.1f}% of the binding limit ({figures.binding}), "
                f"429s {figures.rate_limited} ({share_429:.2f}%), wall {figures.wall_s:6.1f}s  "
                f"[{before} -> {load()}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
