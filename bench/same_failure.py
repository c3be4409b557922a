"""What a map spends when every answer fails the same way: `shoal map` (the command users run)
over N records against `shoal fake-server`, which answers every call with JSON that does not
match the schema. Before the same-failure stop a job spent records x max_attempts requests; now
it stops after 10 alike failures (plus the calls already in flight).

    .venv/bin/python bench/same_failure.py [--records 200] [--python OTHER_VENV/bin/python]

`--python` runs another checkout's shoal (e.g. /work/main/.venv/bin/python) against the same
fake server, for a before/after figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeReply, FakeServer, FakeSettings

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


def run(records: int, python: str, concurrency: int) -> tuple[int, int, float]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with (root / "in.jsonl").open("w") as handle:
            for index in range(records):
                handle.write(json.dumps({"id": f"r{index}", "topic": f"topic {index}"}) + "\n")
        (root / "schema.json").write_text(json.dumps(SCHEMA))
        (root / "shoal.toml").write_text(
            f"[job]\nconcurrency = {concurrency}\nmax_attempts = 5\n\n"
            "[limits.'openai:gpt-4o-mini']\nrpm = 600000\ntpm = 500000000\n"
        )
        settings = FakeSettings(
            limits=FakeLimits(rpm=600_000, tpm=500_000_000),
            latency_s=0.02,
            replies=(FakeReply("Explain", '{"title": 42}'),),
        )
        with FakeServer(settings) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
            env.update(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
            argv = [python, "-m", "shoal", "map", "in.jsonl", "--prompt", "Explain {topic}.", "--model"]
            argv += ["openai:gpt-4o-mini", "--out", "out.jsonl", "--schema", "schema.json"]
            started = time.monotonic()
            done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=900)
            elapsed = time.monotonic() - started
            return server.backend.stats["requests"], done.returncode, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    requests, code, elapsed = run(args.records, args.python, args.concurrency)
    print(
        f"{args.records} records, max_attempts 5, concurrency {args.concurrency}: "
        f"{requests} requests, exit {code}, {elapsed:.1f} s ({args.python})"
    )


if __name__ == "__main__":
    main()
