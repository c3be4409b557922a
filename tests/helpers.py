"""Running the real `shoal` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def shoal_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "shoal", *args]


def run_shoal(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        shoal_argv(*args), cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )


def write_records(path: Path, count: int) -> list[str]:
    ids = [f"rec-{i:03d}" for i in range(count)]
    with path.open("w") as handle:
        for index, record_id in enumerate(ids):
            handle.write(json.dumps({"id": record_id, "topic": f"topic number {index}"}) + "\n")
    return ids


def output_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


# A small map job against an OpenAI-compatible fake server, as several tests run it.
MAP_ARGV = [
    "map",
    "in.jsonl",
    "--prompt",
    "Explain {topic}.",
    "--model",
    "openai:gpt-4o-mini",
    "--out",
    "out.jsonl",
    "--max-tokens",
    "40",
]
