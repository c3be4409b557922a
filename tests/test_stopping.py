"""Ctrl-C, SIGTERM and the cost budget stop a job so that the same command resumes it."""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, output_ids, shoal_argv, write_records

ARGV = MAP_ARGV


class StderrLines:
    """A process's stderr, read in a thread, so that a test can wait for a line while the process runs."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self._lines: list[str] = []
        self._ended = False
        self._condition = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                with self._condition:
                    self._lines.append(line)
                    self._condition.notify_all()
        except (OSError, ValueError):  # closed under us by the spawn fixture's clean-up
            pass
        with self._condition:
            self._ended = True
            self._condition.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            return any(text in line for line in self._lines)

        with self._condition:
            self._condition.wait_for(lambda: seen() or self._ended, timeout)
            assert seen(), f"never printed {text!r}: {''.join(self._lines)}"

    @property
    def text(self) -> str:
        """Everything printed, once the process has ended."""
        self._reader.join(timeout=30)
        self._stream.close()
        return "".join(self._lines)


def wait_for_lines(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {count} lines")


def test_first_interrupt_drains_and_exits_3_with_the_resume_command(workspace: Path, spawn: Spawn) -> None:
    ids = write_records(workspace / "in.jsonl", 40)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.01)) as server:
        hold = server.backend.hold
        hold.close(after=2)  # two answers, then the four workers' next calls stay in flight
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = spawn(workspace, *ARGV, env=env)
        stderr = StderrLines(process)
        hold.wait_held(4)
        wait_for_lines(workspace / "out.jsonl", 2)
        process.send_signal(signal.SIGINT)
        stderr.wait_for("shoal: stopping")
        hold.open()  # draining: the four calls in flight finish, and nothing new starts
        assert process.wait(timeout=30) == 3, stderr.text
        assert "Traceback" not in stderr.text
        # The resume line repeats the executable as it was typed (here `python -m shoal`).
        assert f"resume with: {shlex.join(shoal_argv('map', 'in.jsonl'))}" in stderr.text
        partial = output_ids(workspace / "out.jsonl")
        # Draining let the calls in flight finish and ship: nothing sent is lost.
        assert len(partial) == server.backend.stats["requests"] == 6

        result = invoke_shoal(workspace, *ARGV, env=env)
        assert result.returncode == 0, result.stderr
        assert server.backend.stats["requests"] == 40
    assert sorted(output_ids(workspace / "out.jsonl")) == ids


def test_second_interrupt_cancels_and_still_resumes(workspace: Path, spawn: Spawn) -> None:
    ids = write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    with FakeServer(FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.01)) as server:
        hold = server.backend.hold
        hold.close(after=1)
        env = clean_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=server.openai_base_url)
        process = spawn(workspace, *ARGV, env=env)
        stderr = StderrLines(process)
        hold.wait_held(4)
        wait_for_lines(workspace / "out.jsonl", 1)
        process.send_signal(signal.SIGTERM)
        stderr.wait_for("shoal: stopping")
        process.send_signal(signal.SIGINT)
        # The held calls are never let go: the process can only exit by cancelling them.
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("a second interrupt waited for the calls in flight") from None
        assert code == 3, stderr.text
        assert "cancelling calls in flight" in stderr.text and "Traceback" not in stderr.text
        assert len(output_ids(workspace / "out.jsonl")) == 1
        assert server.backend.stats["requests"] == 5

        hold.open()
        result = invoke_shoal(workspace, *ARGV, env=env)
        assert result.returncode == 0, result.stderr
        assert server.backend.stats["requests"] == 5 + 29  # only the unfinished were sent again
    assert sorted(output_ids(workspace / "out.jsonl")) == ids


def test_cost_budget_stops_before_it_is_exceeded(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    # Rehearsal is priced like gpt-4o-mini: each call's worst case is about $0.0006 at 1,000 tokens.
    argv = [
        "map",
        "in.jsonl",
        "--prompt",
        "Explain {topic}.",
        "--model",
        "rehearsal",
        "--out",
        "out.jsonl",
        "--max-tokens",
        "1000",
        "--max-cost",
        "0.004",
    ]
    result = invoke_shoal(workspace, *argv)
    assert result.returncode == 3, result.stderr
    assert "budget" in result.stderr and "resume with:" in result.stderr
    done = len(output_ids(workspace / "out.jsonl"))
    assert 0 < done < 30
    import sqlite3

    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        spent = conn.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
    assert spent <= 0.004


def test_csv_input_with_an_id_field(workspace: Path) -> None:
    (workspace / "in.csv").write_text("sku,name\nA-1,kelp crisps\nB-2,sea salt\n")
    result = invoke_shoal(
        workspace,
        "map",
        "in.csv",
        "--id-field",
        "sku",
        "--prompt",
        "Describe {name}.",
        "--model",
        "rehearsal",
        "--out",
        "out.jsonl",
        "--max-tokens",
        "30",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ["A-1", "B-2"]
