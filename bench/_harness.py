"""Shared pieces of the end-to-end benchmarks: datasets, a fake server in its own process, and
running a command while measuring its wall time and peak memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Summarise {topic}."


def write_records(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            record = {"id": f"r{index}", "topic": f"topic number {index}: tides, reefs and kelp"}
            handle.write(json.dumps(record) + "\n")
    return path


def load() -> str:
    """The 1-minute load average and the core count, to print beside every figure."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


@dataclass(frozen=True)
class Measured:
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def measure(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> Measured:
    """Run a command to its end; its own peak RSS comes from wait4, not from its children's max."""
    started = time.perf_counter()
    with (cwd / ".stdout").open("w+") as out, (cwd / ".stderr").open("w+") as err:
        process = subprocess.Popen(list(argv), cwd=cwd, env=dict(env or os.environ), stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(wall, usage.ru_maxrss / 1024, process.returncode, out.read(), err.read())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def fake_server(args: Sequence[str], *, log: Path | None = None) -> Iterator[str]:
    """`shoal fake-server` in its own process (so that its CPU is not the client's); yields the
    OpenAI base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "shoal", "fake-server", "--port", str(port), *args]
    if log is not None:
        argv += ["--log", str(log)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fake server did not start: {argv}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def server_log_figures(log: Path) -> dict[str, int]:
    """Counts from the fake server's request log: answered, 429s, and tokens (settled: prompt +
    output; reserved: prompt + max_tokens)."""
    figures = {"requests": 0, "answered": 0, "rate_limited": 0, "settled_tokens": 0, "reserved_tokens": 0}
    if not log.exists():
        return figures
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        figures["requests"] += 1
        if entry["status"] == 429:
            figures["rate_limited"] += 1
        elif entry["status"] == 200:
            figures["answered"] += 1
            figures["settled_tokens"] += entry["prompt_tokens"] + entry["output_tokens"]
            figures["reserved_tokens"] += entry["prompt_tokens"] + entry["max_tokens"]
    return figures


def shoal_map_argv(records: Path, out: Path, *, model: str, max_tokens: int, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "shoal",
        "map",
        str(records),
        "--prompt",
        PROMPT,
        "--model",
        model,
        "--out",
        str(out),
        "--max-tokens",
        str(max_tokens),
        "--concurrency",
        str(concurrency),
    ]


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
