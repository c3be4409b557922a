"""Running the real `shoal` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# The `spawn` fixture: starts `shoal args` in a subprocess that ends with the test.
Spawn = Callable[..., "subprocess.Popen[str]"]


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


def invoke_shoal(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`shoal args` run in this process through `shoal.cli.main`, answered like `run_shoal`.

    For commands that need no process of their own (usage errors, status and journal reads): the
    exit code and the one-line errors are main()'s own, without a second interpreter's start-up.
    """
    from contextlib import chdir
    from unittest import mock

    from click.testing import CliRunner

    from shoal.cli import main

    wanted = env if env is not None else clean_env()
    overrides: dict[str, str | None] = {**dict.fromkeys(os.environ), **wanted}  # None: unset
    with chdir(cwd), CliRunner().isolation(env=overrides) as (stdout, stderr, _):
        with mock.patch.object(sys, "argv", ["shoal", *args]):
            try:
                main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    return subprocess.CompletedProcess(["shoal", *args], code, out, err)
