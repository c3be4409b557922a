"""`shoal status`, `shoal dashboard`, `shoal report` and `shoal journal`: seeing a job, from the
journal in this directory, read-only, also while the job runs in another terminal."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..engine import StateDir
from ..errors import UsageError
from ..journal import ItemRow, ItemStatus, items_of
from ..preflight import check_workspace
from ..view import Redactor, describe_jobs, latest_run, match_job, read_status, reading, render_status
from ._runtime import say

__all__ = ["register"]

_JOB_HELP = "The job to show: its name, OUT path, plan file or workflow (default: the job of the newest run)."
_NO_JOURNAL = "no journal here (.shoal/journal.db): run a job in this directory first"


def register(app: typer.Typer) -> None:
    """Add `status`, `dashboard`, `report` and `journal` to `app`."""
    app.command("status")(status_command)
    app.command("dashboard")(dashboard_command)
    app.command("report")(report_command)
    app.command("journal")(journal_command)


def _journal_path() -> Path:
    root = Path.cwd()
    try:
        check_workspace(root)  # a damaged journal, or .shoal being a file: one line, not a traceback
    except UsageError as exc:
        raise _fail(str(exc)) from None
    return StateDir(root).journal_path


def _fail(message: str, code: int = 2) -> typer.Exit:
    say(f"shoal: error: {message}")
    return typer.Exit(code)


def _resolve_job(job: str | None) -> str | None:
    """The journal's name for the job `--job` names; exit 2 listing the jobs when none matches."""
    path = _journal_path()
    if job is None or not path.exists():
        return job
    try:
        with reading(path) as conn:
            found = match_job(conn, job, Path.cwd())
            if found is None:
                raise _fail(f"no job here matches --job {job!r}; {describe_jobs(conn)}")
    except sqlite3.Error as exc:
        raise _fail(f"cannot read the journal: {exc}", 1) from None
    return found


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    job: Annotated[str | None, typer.Option("--job", help=_JOB_HELP)] = None,
) -> None:
    """Where the job stands: items per stage, workers, budget use, 429s, tokens, cost, ETA."""
    job = _resolve_job(job)
    try:
        status = read_status(_journal_path(), job=job)
    except sqlite3.Error as exc:
        raise _fail(f"cannot read the journal: {exc}", 1) from None
    if status["job"] is None:
        raise _fail(status.get("note") or _NO_JOURNAL)
    status = Redactor.from_env(os.environ).data(status)
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        Console().print(render_status(status))


def dashboard_command(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: a free one).")] = 0,
    job: Annotated[str | None, typer.Option("--job", help=_JOB_HELP)] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between live updates of the page.")
    ] = 1.0,
) -> None:
    """A live web view on 127.0.0.1, behind a random access token (the printed URL carries it)."""
    from ..dashboard import DashboardSettings, new_token, serve_dashboard

    path = _journal_path()
    job = _resolve_job(job)
    settings = DashboardSettings(
        journal=path, token=new_token(), job=job, every_s=interval, redactor=Redactor.from_env(os.environ)
    )

    def ready(url: str) -> None:
        typer.echo(url)
        say(f"shoal dashboard: open {url}  (Ctrl-C stops it)")
        if not path.exists():
            say("shoal dashboard: no journal here yet; the page shows the job once one starts")

    try:
        asyncio.run(serve_dashboard(settings, port=port, on_ready=ready))
    except OSError as exc:
        raise _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass


def report_command(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where report.html, report.md and report-plots/ go.")
    ] = Path("."),
    job: Annotated[str | None, typer.Option("--job", help=_JOB_HELP)] = None,
) -> None:
    """Write report.html and report.md: throughput against the limit, time, tokens, cost, outcomes."""
    from ..report import write_report

    job = _resolve_job(job)
    try:
        files = write_report(_journal_path(), out_dir, job=job, redactor=Redactor.from_env(os.environ))
    except sqlite3.Error as exc:
        raise _fail(f"cannot read the journal: {exc}", 1) from None
    except OSError as exc:
        raise _fail(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    if files is None:
        raise _fail(_NO_JOURNAL if not _journal_path().exists() else "the journal holds no run of that job")
    say(f"report: {files.html} and {files.markdown} ({len(files.plots)} plots) for {files.job}")


def _journal_rows(job: str | None, status: str | None) -> tuple[str, list[ItemRow]]:
    path = _journal_path()
    if not path.exists():
        raise _fail(_NO_JOURNAL)
    job = _resolve_job(job)
    with reading(path) as conn:
        run = latest_run(conn, job)
        if run is None:
            raise _fail("the journal holds no run" if job is None else f"the journal holds no run of {job!r}")
        rows = items_of(conn, run.job, status=status)
    return run.job, rows


def journal_command(
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help='One JSON object per line: {"id", "status", "file"}.')
    ] = False,
    status: Annotated[
        str | None, typer.Option("--status", help="Only items in this state (pending, done, failed, ...).")
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help=_JOB_HELP)] = None,
) -> None:
    """Every item of the job with its state and output file, in input order."""
    known = [s.value for s in ItemStatus]
    if status is not None and status not in known:
        raise _fail(f"unknown status {status!r}; one of {', '.join(known)}")
    _, rows = _journal_rows(job, status)
    redact = Redactor.from_env(os.environ).text
    for row in rows:
        error = redact(row.error) if row.error else None
        if jsonl:
            record: dict[str, Any] = {"id": row.id, "status": row.status, "file": row.file}
            if error:
                record["error"] = error
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            line = f"{row.id}\t{row.status}\t{row.file or '-'}"
            typer.echo(line + (f"\t{error}" if error else ""))
