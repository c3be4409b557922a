"""Does `--concurrency auto` find the throughput of the best fixed concurrency on a saturating server?

`shoal fake-server`'s capacity model stands for a self-hosted server: up to `--capacity` requests in
flight each take `--latency`; past it latency grows in proportion, so throughput stops growing
and only latency does. The command users run, `shoal map`, goes over the same records at a sweep
of fixed concurrencies and at `auto` (fresh workspace each), and each run's throughput is the
journal's answered calls over the span from the first request sent to the last answer.
Target: auto >= 90% of the best fixed concurrency.

    .venv/bin/python bench/auto_concurrency.py [--records 1200] [--capacity 8] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from shoal.fake import FakeServer, FakeSettings

MODEL = "openai:gpt-4o-mini"
LIMITS = f'[limits."{MODEL}"]\nrpm = 6000000\ntpm = 1000000000\n'


@dataclass
class Run:
    concurrency: str
    wall_s: float
    answered: int
    span_s: float
    final_limit: str

    @property
    def throughput(self) -> float:
        return self.answered / self.span_s if self.span_s > 0 else 0.0


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run_map(server: FakeServer, concurrency: str, records: int, maximum: int, python: str) -> Run:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as root:
        workspace = Path(root)
        with (workspace / "in.jsonl").open("w") as handle:
            for index in range(records):
                handle.write(json.dumps({"id": f"r{index}", "topic": f"topic {index}"}) + "\n")
        (workspace / "shoal.toml").write_text(f"[job]\nmax_concurrency = {maximum}\n\n{LIMITS}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))},
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": server.openai_base_url,
        }
        argv = [python, "-m", "shoal", "map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", MODEL]
        argv += ["--out", "out.jsonl", "--max-tokens", "40", "--concurrency", concurrency]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"shoal map --concurrency {concurrency} failed:\n{done.stderr}")
        with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
            answered, first, last = conn.execute(
                "SELECT count(*), min(created_at - latency_s), max(created_at) FROM calls "
                "WHERE outcome = 'ok'"
            ).fetchone()
            limits = conn.execute(
                "SELECT detail FROM events WHERE kind = 'concurrency' ORDER BY id"
            ).fetchall()
        final = json.loads(limits[-1][0])["limit"] if limits else concurrency
        return Run(concurrency, wall, answered, last - first, str(final))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1200)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--fixed", default="2,4,8,16,32")
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--python", default=sys.executable, help="Interpreter with shoal installed.")
    args = parser.parse_args()
    settings = FakeSettings(latency_s=args.latency, capacity=args.capacity)
    ideal = args.capacity / args.latency
    print(f"fake server: latency {args.latency}s, capacity {args.capacity} (ideal {ideal:.1f} answers/s)")
    print(f"{args.records} records per run; {load()} at start")
    runs: list[Run] = []
    for concurrency in [*args.fixed.split(","), "auto"]:
        with FakeServer(settings) as server:  # a fresh server: no state carried between runs
            run = run_map(server, concurrency.strip(), args.records, args.max_concurrency, args.python)
        runs.append(run)
        print(
            f"  concurrency {run.concurrency:>5}: {run.throughput:6.1f} answers/s "
            f"({run.answered} in {run.span_s:.1f}s, wall {run.wall_s:.1f}s, final limit {run.final_limit}); "
            f"{load()}",
            flush=True,
        )
    best = max((r for r in runs if r.concurrency != "auto"), key=lambda r: r.throughput)
    auto = runs[-1]
    share = auto.throughput / best.throughput
    verdict = "meets" if share >= 0.9 else "MISSES"
    print(f"auto: {share:.1%} of the best fixed ({best.concurrency}); {verdict} the 90% target; {load()}")


if __name__ == "__main__":
    main()
