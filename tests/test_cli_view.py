"""What the CLI shows about itself and its jobs: `--version`, the resume line's executable, and
`--job` naming a job by its OUT path or plan file (and listing the jobs when nothing matches)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shoal.cli._runtime import invoked_as
from shoal.journal import Journal, RunStatus

from helpers import invoke_shoal


class Clock:
    def now(self) -> float:
        return 1_700_000_000.0

    def wall(self) -> float:
        return 1_700_000_000.0

    async def sleep(self, seconds: float) -> None:
        return None


def test_version_prints_the_installed_version(workspace: Path) -> None:
    from importlib.metadata import version

    result = invoke_shoal(workspace, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"shoal {version('shoal')}"


def test_the_resume_line_repeats_the_executable_as_typed(tmp_path: Path) -> None:
    venv_shoal = tmp_path / ".venv" / "bin" / "shoal"
    venv_shoal.parent.mkdir(parents=True)
    venv_shoal.write_text("#!/bin/sh\n")
    venv_shoal.chmod(0o755)
    assert invoked_as(".venv/bin/shoal", [sys.executable, ".venv/bin/shoal"]) == [".venv/bin/shoal"]
    assert invoked_as("/opt/x/__main__.py", ["python3.11", "-m", "shoal"]) == ["python3.11", "-m", "shoal"]
    # A `shoal` found on PATH reaches Python as its full path: it reads as the `shoal` typed.
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{venv_shoal.parent}{os.pathsep}{old}"
    try:
        assert invoked_as(str(venv_shoal), [sys.executable, str(venv_shoal)]) == ["shoal"]
    finally:
        os.environ["PATH"] = old
    assert invoked_as(str(venv_shoal), [sys.executable, str(venv_shoal)]) == [str(venv_shoal)]


async def _journal_with_jobs(workspace: Path) -> None:
    journal = Journal.open(workspace / ".shoal" / "journal.db", Clock())
    for name in (f"map:{(workspace / 'out.jsonl').resolve()}", f"plan:{(workspace / 'PLAN.md').resolve()}"):
        run_id = await journal.begin_run(name, "shoal ...", os.getpid())
        await journal.finish_run(run_id, RunStatus.DONE)
    await journal.close()


async def test_job_accepts_the_out_path_or_the_plan_file(workspace: Path) -> None:
    await _journal_with_jobs(workspace)
    for given, expected in (
        ("out.jsonl", f"map:{workspace.resolve() / 'out.jsonl'}"),
        ("./PLAN.md", f"plan:{workspace.resolve() / 'PLAN.md'}"),
        (f"map:{workspace.resolve() / 'out.jsonl'}", f"map:{workspace.resolve() / 'out.jsonl'}"),
    ):
        result = invoke_shoal(workspace, "status", "--json", "--job", given)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["job"] == expected


async def test_a_job_that_matches_nothing_lists_the_jobs(workspace: Path) -> None:
    await _journal_with_jobs(workspace)
    for command in ("status", "report", "journal"):
        result = invoke_shoal(workspace, command, "--job", "nope.jsonl")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert "no job here matches --job 'nope.jsonl'" in lines[0]
        assert "out.jsonl (1 run" in lines[0] and "PLAN.md (1 run" in lines[0]


async def test_a_killed_run_reads_as_interrupted_in_status_and_report(workspace: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    job = f"map:{(workspace / 'out.jsonl').resolve()}"
    journal = Journal.open(workspace / ".shoal" / "journal.db", Clock())
    await journal.begin_run(job, "shoal map in.jsonl", gone.pid)  # killed: never finished
    await journal.close()
    status = invoke_shoal(workspace, "status")
    assert status.returncode == 0, status.stderr
    assert "interrupted" in status.stdout and "run the same command again to resume" in status.stdout
    assert json.loads(invoke_shoal(workspace, "status", "--json").stdout)["run"]["state"] == "interrupted"

    journal = Journal.open(workspace / ".shoal" / "journal.db", Clock())
    second = await journal.begin_run(job, "shoal map in.jsonl", os.getpid())
    await journal.finish_run(second, RunStatus.DONE)
    await journal.close()
    report = invoke_shoal(workspace, "report", "--out-dir", "rep")
    assert report.returncode == 0, report.stderr
    markdown = (workspace / "rep" / "report.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    runs = {cells[0]: cells[1] for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}
    assert runs["1"] == "interrupted" and runs["2"] == "done"
