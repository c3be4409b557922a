"""`shoal map` online against `shoal map --batch`, the command users run, on the fake server.

Both runs take the same records, template and schema through a FakeServer on 127.0.0.1 (online
answers at --latency seconds, batches ending at once), in fresh workspaces. Reported: wall time,
requests sent online, batches created, and the cost the journal holds. The batch run's cost
should be half the online run's for the same tokens; its wall time is shoal's own overhead on the
batch path (building request lines, journaling every answer), since the fake ends batches at once.

    .venv/bin/python bench/batch_map.py [--records 2000] [--latency 0.05]
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

from shoal.fake import FakeLimits, FakeServer, FakeSettings

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


def run(root: Path, records: int, server: FakeServer, batch: bool) -> dict[str, float]:
    root.mkdir()
    with (root / "in.jsonl").open("w") as handle:
        for index in range(records):
            handle.write(json.dumps({"id": f"r{index}", "topic": f"topic number {index}"}) + "\n")
    (root / "schema.json").write_text(json.dumps(SCHEMA))
    (root / "shoal.toml").write_text(
        '[job]\nconcurrency = 64\n\n[batch]\npoll_s = 0.2\n\n[limits."openai:gpt-4o-mini"]\n'
        "rpm = 30000\ntpm = 30000000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(OPENAI_API_KEY="bench", OPENAI_BASE_URL=server.openai_base_url)
    argv = [sys.executable, "-m", "shoal", "map", "in.jsonl", "--prompt", "Explain {topic}.", "--schema"]
    argv += ["schema.json", "--model", "openai:gpt-4o-mini", "--out", "out.jsonl", "--max-tokens", "60"]
    requests, batches = server.backend.stats["requests"], len(server.batches.created)
    started = time.monotonic()
    done = subprocess.run([*argv, *(["--batch"] if batch else [])], cwd=root, env=env, capture_output=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode())
    with sqlite3.connect(root / ".shoal" / "journal.db") as conn:
        calls, cost = conn.execute(
            "SELECT count(*), sum(cost_usd) FROM calls WHERE outcome = 'ok'"
        ).fetchone()
    return {
        "wall_s": round(wall, 2),
        "online_requests": server.backend.stats["requests"] - requests,
        "batches": len(server.batches.created) - batches,
        "answers": calls,
        "cost_usd": round(cost, 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeServer(
            FakeSettings(limits=FakeLimits(rpm=30_000, tpm=30_000_000), latency_s=args.latency)
        ) as server,
    ):
        online = run(Path(tmp) / "online", args.records, server, batch=False)
        batch = run(Path(tmp) / "batch", args.records, server, batch=True)
    print(json.dumps({"records": args.records, "online": online, "batch": batch}, indent=2))
    print(f"batch cost / online cost: {batch['cost_usd'] / online['cost_usd']:.3f}", file=sys.stderr)
    print(f"load average: {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
