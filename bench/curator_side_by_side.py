"""`shoal map` and bespokelabs-curator side by side on the same dataset, the same fake server and
the same machine, runs interleaved (shoal, curator, shoal, curator, ...), a fresh server each run.

curator is not a dependency of shoal: install it into a separate virtualenv and point
`--curator-python` at that interpreter (bench/_curator_run.py sets TIKTOKEN_CACHE_DIR to litellm's
bundled encodings so that it starts offline):

    python3.11 -m venv /work/benchenv-h5 && /work/benchenv-h5/bin/pip install bespokelabs-curator

Instant server (what each costs per record; target: shoal >= 1.5x curator's records/s):

    .venv/bin/python bench/curator_side_by_side.py --curator-python /work/benchenv-h5/bin/python

Rate-bound (`--mode tpm` or `--mode rpm`: 1,000 records, concurrency 16, max_tokens 256, a server
with 0.25 s + 2 ms per output token of latency enforcing TPM 150,000 or RPM 600, both clients told
the limit; any of these can be overridden). Extra server flags pass through, e.g. a server that does
not refund unused max_tokens:

    .venv/bin/python bench/curator_side_by_side.py --mode tpm --server-arg=--no-refund-unused
    .venv/bin/python bench/curator_side_by_side.py --mode rpm

Records/s is records over the whole command's wall time (start-up and exit included), as a user
waits for it. "of limit" (rate-bound runs) is requests per minute / RPM and tokens per minute / TPM
over that wall time, tokens as the server logged them: settled (prompt + output) and reserved
(prompt + max_tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _harness import (
    ROOT,
    count_lines,
    fake_server,
    load,
    measure,
    server_log_figures,
    shoal_map_argv,
    write_records,
)

MODEL = "gpt-4o-mini"


def shoal_run(root: Path, records: Path, base_url: str, args: argparse.Namespace) -> tuple[float, int]:
    ws = root / "shoal"
    ws.mkdir()
    limits = ""
    if args.shoal_limits == "configured":
        rpm = args.rpm or 100_000_000
        tpm = args.tpm or 10_000_000_000
        limits = f'\n[limits."openai:{MODEL}"]\nrpm = {rpm}\ntpm = {tpm}\n'
    (ws / "shoal.toml").write_text(f'[providers.openai]\nbase_url = "{base_url}"\n{limits}')
    argv = shoal_map_argv(
        records,
        ws / "out.jsonl",
        model=f"openai:{MODEL}",
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
    )
    result = measure(argv, cwd=ws, env={**os.environ, "OPENAI_API_KEY": "not-needed"})
    if result.returncode != 0:
        print(f"  shoal exited {result.returncode}: {result.stderr[-500:]}", file=sys.stderr)
    return result.wall_s, count_lines(ws / "out.jsonl")


def curator_run(root: Path, records: Path, base_url: str, args: argparse.Namespace) -> tuple[float, int]:
    ws = root / "curator"
    ws.mkdir()
    argv = [
        args.curator_python,
        str(ROOT / "bench" / "_curator_run.py"),
        "--base-url",
        base_url,
        "--input",
        str(records),
        "--out",
        str(ws / "cache"),
        "--model",
        MODEL,
        "--max-tokens",
        str(args.max_tokens),
        "--concurrency",
        str(args.concurrency),
    ]
    if args.rpm:
        argv += ["--rpm", str(args.rpm)]
    if args.tpm:
        argv += ["--tpm", str(args.tpm)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = measure(argv, cwd=ws, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"  curator exited {result.returncode}: {result.stderr[-800:]}", file=sys.stderr)
        return result.wall_s, 0
    return result.wall_s, int(json.loads(lines[-1])["done"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--curator-python", default="/work/benchenv-h5/bin/python")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rpm", type=int, default=None, help="limit told to the server and both clients")
    parser.add_argument("--tpm", type=int, default=None, help="limit told to the server and both clients")
    parser.add_argument("--latency", type=float, default=0.0, help="the server's base latency, seconds")
    parser.add_argument("--server-arg", action="append", default=[], help="extra fake-server argument")
    parser.add_argument(
        "--shoal-limits",
        choices=("configured", "learned"),
        default="configured",
        help="give shoal the limits in shoal.toml, or let it learn them from the headers",
    )
    parser.add_argument("--only", default="shoal,curator")
    parser.add_argument("--mode", choices=("instant", "tpm", "rpm"), default="instant")
    args = parser.parse_args()
    if args.mode != "instant":  # the rate-bound presets; explicit flags win
        preset = {"records": 1000, "concurrency": 16, "max_tokens": 256, "latency": 0.25}
        preset |= {"tpm": 150_000} if args.mode == "tpm" else {"rpm": 600}
        for name, value in preset.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        if not any(arg.startswith("--per-token") for arg in args.server_arg):
            args.server_arg.append("--per-token=0.002")
    tools = {"shoal": shoal_run, "curator": curator_run}
    chosen = [name for name in args.only.split(",") if name in tools]
    server_args = ["--latency", str(args.latency)]
    if args.rpm:
        server_args += ["--rpm", str(args.rpm)]
    if args.tpm:
        server_args += ["--tpm", str(args.tpm)]
    server_args += args.server_arg
    rates: dict[str, list[float]] = {name: [] for name in chosen}
    print(
        f"{args.records} records, concurrency {args.concurrency}, max_tokens {args.max_tokens}, "
        f"server: {' '.join(server_args)}"
    )
    print("| run | tool | wall s | done | records/s | 429s | RPM share | TPM settled | TPM reserved | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="shoal-vs-curator-") as scratch:
        base = Path(scratch)
        records = write_records(base / "records.jsonl", args.records)
        for run in range(args.runs):
            for name in chosen:
                root = base / f"{name}-{run}"
                root.mkdir()
                log = root / "server.jsonl"
                before = load()
                with fake_server(server_args, log=log) as base_url:
                    wall, done = tools[name](root, records, base_url, args)
                figures = server_log_figures(log)
                minutes = wall / 60
                rpm_share = f"{100 * figures['answered'] / minutes / args.rpm:.1f}%" if args.rpm else "-"
                settled = f"{100 * figures['settled_tokens'] / minutes / args.tpm:.1f}%" if args.tpm else "-"
                reserved = (
                    f"{100 * figures['reserved_tokens'] / minutes / args.tpm:.1f}%" if args.tpm else "-"
                )
                rates[name].append(done / wall)
                print(
                    f"| {run + 1} | {name} | {wall:.2f} | {done} | {done / wall:,.0f} "
                    f"| {figures['rate_limited']} | {rpm_share} | {settled} | {reserved} | {before} |",
                    flush=True,
                )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"{name} median: {value:,.0f} records/s")
    if "shoal" in medians and medians.get("curator"):
        print(f"shoal / curator: x{medians['shoal'] / medians['curator']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
