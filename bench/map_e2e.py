"""`shoal map` end to end, as a user runs it: the whole command, start-up and exit included.

  rehearsal  the in-process rehearsal provider with `[rehearsal] latency_s = 0` (no simulated
             latency): what shoal itself costs per record. Target >= 2,000 records/s.
  http       an OpenAI-compatible `shoal fake-server --latency 0` in its own process: shoal's cost
             plus a real HTTP round trip per record.
  memory     100,000 records on rehearsal, then the no-op rerun of the finished job. Targets: peak
             RSS <= 150 MB for both; the rerun in <= 3 s.

Each figure is printed with the load average at the time: on a shared machine, rerun it quiet.

    .venv/bin/python bench/map_e2e.py [--mode rehearsal,http,memory] [--records 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _harness import Measured, count_lines, fake_server, load, measure, shoal_map_argv, write_records

UNLIMITED = "rpm = 100000000\ntpm = 10000000000\n"


def workspace(root: Path, name: str, toml: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "shoal.toml").write_text(toml)
    return path


def run_map(
    ws: Path, records: Path, model: str, args: argparse.Namespace, env: dict[str, str]
) -> tuple[Measured, str]:
    argv = shoal_map_argv(
        records, ws / "out.jsonl", model=model, max_tokens=args.max_tokens, concurrency=args.concurrency
    )
    before = load()
    result = measure(argv, cwd=ws, env=env)
    if result.returncode != 0:
        sys.exit(f"shoal map failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result, before


def rehearsal(root: Path, records: Path, count: int, args: argparse.Namespace) -> None:
    rates = []
    for index in range(args.runs):
        toml = f'[rehearsal]\nlatency_s = 0\n\n[limits."rehearsal:echo"]\n{UNLIMITED}'
        ws = workspace(root, f"rehearsal-{index}", toml)
        result, before = run_map(ws, records, "rehearsal:echo", args, dict(os.environ))
        assert count_lines(ws / "out.jsonl") == count
        rates.append(count / result.wall_s)
        print(
            f"rehearsal run {index + 1}: {count} records in {result.wall_s:.2f} s = "
            f"{rates[-1]:,.0f} records/s, peak RSS {result.peak_rss_mb:.0f} MB ({before})"
        )
    print(f"rehearsal median: {statistics.median(rates):,.0f} records/s")


def http(root: Path, records: Path, count: int, args: argparse.Namespace) -> None:
    rates = []
    for index in range(args.runs):
        with fake_server(["--latency", "0", *args.server_arg]) as base_url:
            toml = (
                f'[providers.openai]\nbase_url = "{base_url}"\n\n[limits."openai:gpt-4o-mini"]\n{UNLIMITED}'
            )
            ws = workspace(root, f"http-{index}", toml)
            env = {**os.environ, "OPENAI_API_KEY": "not-needed"}
            result, before = run_map(ws, records, "openai:gpt-4o-mini", args, env)
        assert count_lines(ws / "out.jsonl") == count
        rates.append(count / result.wall_s)
        print(
            f"http run {index + 1}: {count} records in {result.wall_s:.2f} s = {rates[-1]:,.0f} records/s, "
            f"peak RSS {result.peak_rss_mb:.0f} MB ({before})"
        )
    print(f"http median: {statistics.median(rates):,.0f} records/s")


def memory(root: Path, args: argparse.Namespace) -> None:
    count = args.memory_records
    records = write_records(root / "memory.jsonl", count)
    toml = f'[rehearsal]\nlatency_s = 0\n\n[limits."rehearsal:echo"]\n{UNLIMITED}'
    ws = workspace(root, "memory", toml)
    first, before = run_map(ws, records, "rehearsal:echo", args, dict(os.environ))
    assert count_lines(ws / "out.jsonl") == count
    print(
        f"memory: {count} records in {first.wall_s:.1f} s ({count / first.wall_s:,.0f} records/s), "
        f"peak RSS {first.peak_rss_mb:.0f} MB ({before})"
    )
    for index in range(args.runs):
        again, before = run_map(ws, records, "rehearsal:echo", args, dict(os.environ))
        assert f"(0 now, {count} earlier)" in again.stderr, again.stderr[-2000:]
        print(
            f"no-op rerun {index + 1}: {again.wall_s:.2f} s, peak RSS {again.peak_rss_mb:.0f} MB ({before})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", default="rehearsal,http,memory")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--memory-records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra `shoal fake-server` argument, repeatable"
    )
    args = parser.parse_args()
    modes = args.mode.split(",")
    with tempfile.TemporaryDirectory(prefix="shoal-map-e2e-") as scratch:
        root = Path(scratch)
        records = write_records(root / "records.jsonl", args.records)
        if "rehearsal" in modes:
            rehearsal(root, records, args.records, args)
        if "http" in modes:
            http(root, records, args.records, args)
        if "memory" in modes:
            memory(root, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
