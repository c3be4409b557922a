"""Hung requests and outages: what they cost a `shoal map` job, in wall time and lost records.

hang     10% of requests never answer (`FaultRates(hang=0.1)`): with the timeout fixed at the
         ceiling, then learned from latency (the default floor of 10 s, and a floor of 1 s)
outage   the fake server answers 503, or drops every connection, for 15 s from 3 s into the job

Each run is the command users run (fresh workspace, fresh fake server); the figures are its wall
time, the records written and the records failed. `--baseline` reruns the same cases with another
interpreter (an older checkout's .venv/bin/python) for a before/after comparison.

    .venv/bin/python bench/outages.py [--only hang,outage] [--baseline /work/main/.venv/bin/python]
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
from pathlib import Path

from shoal.fake import FakeServer, FakeSettings, FaultRates

MODEL = "openai:gpt-4o-mini"
LIMITS = f'[limits."{MODEL}"]\nrpm = 6000000\ntpm = 1000000000\n'


def load() -> str:
    return "load " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def run_map(
    python: str, settings: FakeSettings, records: int, job_toml: str, *, adaptive_keys: bool = True
) -> str:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as root, FakeServer(settings) as server:
        workspace = Path(root)
        with (workspace / "in.jsonl").open("w") as handle:
            for index in range(records):
                handle.write(json.dumps({"id": f"r{index}", "topic": f"topic {index}"}) + "\n")
        if not adaptive_keys:  # an older shoal rejects the new keys
            job_toml = "\n".join(
                line for line in job_toml.splitlines() if "request_timeout_min_s" not in line
            )
        (workspace / "shoal.toml").write_text(f"[job]\n{job_toml}\n\n{LIMITS}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))},
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": server.openai_base_url,
        }
        argv = [python, "-m", "shoal", "map", "in.jsonl", "--prompt", "Explain {topic}.", "--model", MODEL]
        argv += ["--out", "out.jsonl", "--max-tokens", "40"]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.monotonic() - started
        out = workspace / "out.jsonl"
        written = len(out.read_text().splitlines()) if out.exists() else 0
        with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
            kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        failed = records - written
        return (
            f"wall {wall:6.1f}s  written {written}/{records}  failed {failed}  exit {done.returncode}  "
            f"outage events {kinds.get('outage_start', 0)}  retries {kinds.get('retry', 0)}  [{load()}]"
        )


def hang_cases(python: str, adaptive_keys: bool) -> None:
    settings = FakeSettings(faults=FaultRates(hang=0.1), latency_s=0.05, hang_s=600.0, seed=5)
    cases = {
        "fixed 30 s": "concurrency = 16\nrequest_timeout_s = 30\nrequest_timeout_min_s = 30",
        "learned, floor 10 s (default)": "concurrency = 16\nrequest_timeout_s = 30",
        "learned, floor 1 s": "concurrency = 16\nrequest_timeout_s = 30\nrequest_timeout_min_s = 1",
    }
    for name, job in cases.items():
        if not adaptive_keys and name != "fixed 30 s":
            continue
        figures = run_map(python, settings, 400, job, adaptive_keys=adaptive_keys)
        print(f"  hang 10%, 400 records, {name:30}: {figures}", flush=True)


def outage_cases(python: str, adaptive_keys: bool) -> None:
    for mode in ("503", "drop"):
        settings = FakeSettings(latency_s=0.05, outage_after_s=3.0, outage_for_s=15.0, outage_mode=mode)  # type: ignore[arg-type]
        job = "concurrency = 8\nrequest_timeout_s = 30"
        figures = run_map(python, settings, 300, job, adaptive_keys=adaptive_keys)
        print(f"  outage 15 s ({mode:4}), 300 records: {figures}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="hang,outage")
    parser.add_argument("--baseline", help="Another interpreter with shoal installed, run the same cases.")
    args = parser.parse_args()
    only = set(args.only.split(","))
    targets = [("this checkout", sys.executable, True)]
    if args.baseline:
        targets.append(("baseline", args.baseline, False))
    print(f"start: {load()}")
    for label, python, adaptive in targets:
        print(f"{label} ({python}):")
        if "hang" in only:
            hang_cases(python, adaptive)
        if "outage" in only:
            outage_cases(python, adaptive)


if __name__ == "__main__":
    main()
