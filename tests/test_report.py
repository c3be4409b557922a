"""`shoal report`: report.html and report.md for a job with failures, flags and 429s; and no API key
anywhere: not in the journal, the dashboard or the report."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings, FaultRates
from shoal.journal import ItemStatus, Journal
from test_dashboard import printed_url, read_one_event, start_dashboard, stop_dashboard

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, run_shoal, shoal_argv, write_records

SECRET = "sk-report-secret-do-not-leak-0123456789"
MAP = MAP_ARGV
FLAGS = {"rec-003": "the summary contradicts the source", "rec-007": "names a person the record does not"}


def journal_rows(workspace: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        return conn.execute(sql).fetchall()


def md_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """The cells of every Markdown table row whose first cell is `first_cell`."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


async def flag_for_review(workspace: Path, job: str) -> None:
    """What a review stage does: flag items with a reason (stage "review/check": phase "review")."""
    journal = Journal.open(workspace / ".shoal" / "journal.db")
    for item, reason in FLAGS.items():
        await journal.set_item(job, item, ItemStatus.NEEDS_REVIEW, stage="review/check", error=reason)
    await journal.close()


async def test_report_for_a_job_with_failures_flags_and_429s(workspace: Path) -> None:
    write_records(workspace / "in.jsonl", 30)
    # shoal is told of a far higher limit than the fake server enforces, so early requests meet 429s;
    # one attempt per call, so the injected empty answers fail their records (a 500 is the provider's
    # trouble, not the record's: it is retried, and shows as a transient outcome).
    (workspace / "shoal.toml").write_text(
        "[job]\nconcurrency = 16\nmax_attempts = 1\nmax_pause_s = 1\n"
        '[limits."openai:gpt-4o-mini"]\nrpm = 6000\n'
    )
    settings = FakeSettings(
        limits=FakeLimits(rpm=1200, tpm=5_000_000, window_s=0.3),
        latency_s=0.2,
        faults=FaultRates(error_500=0.1, empty=0.15),
        seed=5,
    )
    with FakeServer(settings) as server:
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        result = run_shoal(workspace, *MAP, env=env)
    assert result.returncode == 1, result.stderr  # some records failed for good
    job = journal_rows(workspace, "SELECT job FROM runs")[0][0]
    await flag_for_review(workspace, job)

    report = invoke_shoal(workspace, "report", "--out-dir", "rep")
    assert report.returncode == 0, report.stderr
    html = (workspace / "rep" / "report.html").read_text()
    markdown = (workspace / "rep" / "report.md").read_text()

    outcomes = dict(journal_rows(workspace, "SELECT outcome, count(*) FROM calls GROUP BY outcome"))
    limited, calls = outcomes.get("rate_limited", 0), sum(outcomes.values())
    assert limited >= 1 and outcomes.get("transient", 0) >= 1, outcomes
    # Throughput table: every request and every 429, for the model.
    model_rows = md_rows(markdown, "openai:gpt-4o-mini")
    assert model_rows[0][1:3] == [str(calls), str(limited)]
    # Overview: calls, ok, 429s, other errors.
    overview = md_rows(markdown, str(calls))[0]
    others = calls - outcomes["ok"] - limited  # the 500s and the empty answers
    assert overview[:4] == [str(calls), str(outcomes["ok"]), str(limited), str(others)]

    failed = dict(journal_rows(workspace, "SELECT item, error FROM items WHERE status = 'failed'"))
    assert failed
    for item, reason in FLAGS.items():
        # the review table comes last; the item may also be among the heaviest in tokens
        assert md_rows(markdown, item)[-1][:4] == [item, "review/check", "needs-review", reason]
        assert reason in html
    for item, error in failed.items():
        # Its own reason, as the journal holds it: an empty answer, or a 500 that the outage gate
        # counted against the record (which of the two depends on how the calls interleave).
        row = md_rows(markdown, item)[-1]
        assert row[2] == "failed" and row[3] == error, (row, error)
        assert "empty" in error or "HTTP 500" in error
    # Cost by phase: the review flags put a second phase next to the map's single one.
    assert "## Cost by model, phase and stage" in markdown and md_rows(markdown, "(single phase)")

    for section in (
        "Throughput against the rate limit",
        "Where the time went",
        "Tokens per item",
        "Outcomes",
    ):
        assert f"<h2>{section}</h2>" in html
    assert html.count("<svg") >= 8
    plots = sorted((workspace / "rep" / "report-plots").glob("*.svg"))
    assert len(plots) == html.count("<svg") and all(f"report-plots/{p.name}" in markdown for p in plots)
    for plot in plots:
        ET.fromstring(plot.read_text())  # well-formed SVG
    assert SECRET not in html + markdown


def fetch(url: str, path: str) -> bytes:
    base, _, query = url.partition("/?")
    with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}{query}", timeout=10) as response:
        return bytes(response.read())


def test_no_api_key_reaches_the_journal_the_dashboard_or_the_report(workspace: Path, spawn: Spawn) -> None:
    write_records(workspace / "in.jsonl", 12)
    (workspace / "shoal.toml").write_text("[job]\nmax_attempts = 2\n")
    settings = FakeSettings(
        limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.02, faults=FaultRates(error_500=0.3)
    )
    with FakeServer(settings) as server:
        # The key is in the environment of every process: the job, the dashboard and the report.
        env = clean_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url)
        dashboard = start_dashboard(spawn, workspace, env)
        try:
            url = printed_url(dashboard)
            job = subprocess.run(
                shoal_argv(*MAP), cwd=workspace, env=env, capture_output=True, text=True, timeout=60
            )
            assert job.returncode in (0, 1), job.stderr
            served = [
                fetch(url, p)
                for p in ("/", "/app.js", "/app.css", "/api/status", "/api/agents", "/api/source")
            ]
            served += [
                fetch(url, p) for p in ("/api/items?limit=1000", "/api/calls?limit=1000", "/api/events")
            ]
            served.append(json.dumps(read_one_event(url)).encode())
        finally:
            stop_dashboard(dashboard)
        report = invoke_shoal(workspace, "report", "--out-dir", "rep", env=env)
        assert report.returncode == 0, report.stderr
    status = invoke_shoal(workspace, "status", "--json", env=env)
    journal = invoke_shoal(workspace, "journal", "--jsonl", env=env)
    assert json.loads(served[3])["items"]["total"] == 12
    outputs = [
        (workspace / ".shoal" / "journal.db").read_bytes(),
        *(p.read_bytes() for p in (workspace / ".shoal").glob("journal.db*")),
        *served,
        *(p.read_bytes() for p in (workspace / "rep").rglob("*") if p.is_file()),
        status.stdout.encode(),
        journal.stdout.encode(),
    ]
    for data in outputs:
        assert SECRET.encode() not in data
        assert b"bearer sk-" not in data.lower()
