"""The live view's pieces: read_status over a journal, the Rich panel and log line, the snapshot
publisher and the terminal view around a real (rehearsal) job, the redactor, the SVG charts."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from shoal.config import JobSettings, ShoalConfig
from shoal.engine import StateDir, StopSignal, open_job
from shoal.journal import CallRecord, ItemStatus, Journal, RunStatus
from shoal.map import plan_map, run_map
from shoal.providers import ModelRef
from shoal.report._svg import Bar as SvgBar
from shoal.report._svg import Series, line_chart, nice_ticks, stacked_bar_chart
from shoal.view import CallTotalsCache, Redactor, compact_line, read_status, render_status, watch_job
from shoal.view._redact import REDACTED

from clocks import VirtualClock

JOB = "plan:demo"
T0 = 1_700_000_000.0


def call(n: int, scope: str, stage: str, outcome: str = "ok", *, run_id: int = 1) -> CallRecord:
    return CallRecord(
        key=f"k{n}",
        job=JOB,
        run_id=run_id,
        scope=f"{JOB}#{scope}",
        stage=stage,
        model="openai:gpt-4o-mini",
        outcome=outcome,
        attempt=1,
        input_tokens=100 if outcome == "ok" else 0,
        output_tokens=20 if outcome == "ok" else 0,
        cached_tokens=10 if outcome == "ok" else 0,
        cost_usd=0.01 if outcome == "ok" else 0.0,
        latency_s=0.5,
        queue_s=0.1,
        created_at=T0 + n,
    )


async def two_phase_journal(path: Path, *, finish: bool) -> None:
    """Two phases of two stages' worth of items, calls, a 429, a retry and a snapshot."""
    journal = Journal.open(path, VirtualClock(T0))
    run_id = await journal.begin_run(JOB, "shoal run plan.md", os.getpid())
    await journal.set_items(JOB, [f"i{n}" for n in range(6)], ItemStatus.PENDING)  # no stage yet
    await journal.set_item(JOB, "i0", ItemStatus.DONE, stage="phase-1/draft")
    await journal.set_item(JOB, "i1", ItemStatus.DONE, stage="phase-1/draft")
    await journal.set_item(JOB, "i2", ItemStatus.FAILED, stage="phase-1/draft", error="boom")
    await journal.set_item(JOB, "i0", ItemStatus.NEEDS_REVIEW, stage="phase-2/review", error="unsure")
    await journal.set_item(JOB, "i3", ItemStatus.RUNNING, stage="phase-2/review")
    for n, (scope, stage, outcome) in enumerate(
        [
            ("i0", "phase-1/draft", "ok"),
            ("i1", "phase-1/draft", "rate_limited"),
            ("i1", "phase-1/draft", "ok"),
            ("i2", "phase-1/draft", "transient"),
            ("i0", "phase-2/review", "ok"),
        ]
    ):
        await journal.record_call(call(n, scope, stage, outcome, run_id=run_id))
    journal.event(run_id, "rate_limited", "openai:gpt-4o-mini", retry_after=1.0)
    journal.event(run_id, "retry", "openai:gpt-4o-mini", scope=f"{JOB}#i2", error="HTTP 500")
    journal.snapshot(
        run_id,
        {
            "ts": T0 + 10,
            "run_id": run_id,
            "stages": [],
            "stop": {"state": "running", "reason": None},
            "workers": {"in_flight": 3, "waiting": 1, "ceiling": 8},
            "counters": {"sent": 5, "replayed": 0},
            "models": {
                "openai:gpt-4o-mini": {
                    "limits": {"rpm": 60.0, "tpm": 10000.0},
                    "learning": False,
                    "factor": 0.5,
                    "paused_for_s": 0.0,
                    "rate_limited": 1,
                    "pauses": 1,
                }
            },
            "ledger": {"max_cost_usd": 1.0, "reserved_usd": 0.002, "unpriced": []},
        },
    )
    if finish:
        await journal.finish_run(run_id, RunStatus.STOPPED)
    await journal.close()


async def test_read_status_counts_stages_phases_calls_and_events(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await two_phase_journal(path, finish=False)
    status = read_status(path, now=T0 + 11)

    assert status["job"] == JOB and status["run"]["state"] == "running"
    assert status["items"] == {
        "total": 6,
        "pending": 2,
        "running": 1,
        "done": 1,
        "failed": 1,
        "needs_review": 1,
    }
    stages = {s["name"]: s for s in status["stages"]}
    # Items without a stage cannot be attributed when the job has several stages.
    assert set(stages) == {"phase-1/draft", "phase-2/review", "(no stage)"}
    assert stages["phase-1/draft"]["done"] == 1 and stages["phase-1/draft"]["failed"] == 1
    assert stages["phase-1/draft"]["calls"] == 4 and stages["phase-1/draft"]["rate_limited"] == 1
    assert stages["phase-2/review"]["needs_review"] == 1 and stages["phase-2/review"]["running"] == 1
    phases = {p["name"]: p for p in status["phases"]}
    assert phases["phase-1"]["stages"] == ["phase-1/draft"] and phases["phase-2"]["total"] == 2
    job = status["totals"]["job"]
    assert (job["calls"], job["ok"], job["rate_limited"], job["errors"], job["retries"]) == (5, 3, 1, 1, 1)
    assert (job["input_tokens"], job["output_tokens"], job["cached_tokens"]) == (300, 60, 30)
    assert status["workers"]["in_flight"] == 3 and status["workers"]["ceiling"] == 8
    model = status["models"][0]
    assert model["budget"]["limits"] == {"rpm": 60.0, "tpm": 10000.0}
    # All five calls fall in the 11 s since the run began: 5 per 11 s is 27 per minute.
    assert round(model["usage"]["per_minute"]["rpm"]) == 27
    assert round(model["usage"]["percent"]["rpm"]) == 45
    assert status["cost"]["spent_usd"] == 0.03 and status["cost"]["max_usd"] == 1.0
    # $0.03 for 3 finished items projects $0.06 for all 6.
    assert status["cost"]["projected_usd"] == 0.06
    assert status["progress"]["remaining"] == 3 and status["progress"]["eta_s"] is not None


async def test_a_finished_run_shows_no_live_figures(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await two_phase_journal(path, finish=True)
    status = read_status(path, now=T0 + 100)
    assert status["run"]["state"] == "stopped"
    assert status["workers"] is None and status["progress"]["eta_s"] is None
    assert status["models"][0]["usage"] is None


async def test_a_polling_reader_reads_each_call_once_and_agrees_with_a_fresh_read(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await two_phase_journal(path, finish=False)
    cache = CallTotalsCache()
    read_status(path, now=T0 + 11, cache=cache)
    assert cache.last_id == 5
    journal = Journal.open(path, VirtualClock(T0 + 12))
    await journal.record_call(call(20, "i4", "phase-2/review"))
    await journal.close()
    polled = read_status(path, now=T0 + 12, cache=cache)
    fresh = read_status(path, now=T0 + 12)
    assert cache.last_id == 6
    assert polled["totals"] == fresh["totals"] and polled["stages"] == fresh["stages"]
    assert polled["totals"]["job"]["calls"] == 6

    # A journal deleted and started again is read from the start.
    for leftover in path.parent.iterdir():
        leftover.unlink()
    await two_phase_journal(path, finish=False)
    assert read_status(path, now=T0 + 11, cache=cache)["totals"]["job"]["calls"] == 5


async def test_a_run_whose_process_is_gone_is_shown_as_interrupted(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid no longer runs
    path = tmp_path / ".shoal" / "journal.db"
    journal = Journal.open(path, VirtualClock(T0))
    await journal.begin_run(JOB, "shoal map x", finished.pid)
    await journal.close()
    status = read_status(path, now=T0 + 60)
    assert status["run"]["status"] == "running" and status["run"]["state"] == "interrupted"
    out = io.StringIO()
    Console(file=out, width=120).print(render_status(status))
    assert "interrupted" in out.getvalue() and "run the same command again to resume" in out.getvalue()


async def test_a_killed_unreaped_or_reused_pid_is_not_running(tmp_path: Path) -> None:
    """kill -9 leaves a zombie until the parent waits; later a new process may get the same pid."""
    killed = subprocess.Popen(["sleep", "30"])
    try:
        killed.kill()
        zombie = Path(f"/proc/{killed.pid}/stat")
        while zombie.exists() and zombie.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            await asyncio.sleep(0.01)
        path = tmp_path / "zombie" / "journal.db"
        journal = Journal.open(path, VirtualClock(time.time()))
        await journal.begin_run(JOB, "shoal map x", killed.pid)
        await journal.close()
        assert read_status(path, now=time.time() + 60)["run"]["state"] == "interrupted"
    finally:
        killed.wait()
    # This very process is alive, but it started long after a run that began at T0 said it did.
    path = tmp_path / "reused" / "journal.db"
    journal = Journal.open(path, VirtualClock(T0))
    await journal.begin_run(JOB, "shoal map x", os.getpid())
    await journal.close()
    assert read_status(path, now=T0 + 60)["run"]["state"] == "interrupted"
    # The same pid in a run that started after it: running.
    path = tmp_path / "alive" / "journal.db"
    journal = Journal.open(path, VirtualClock(time.time()))
    await journal.begin_run(JOB, "shoal map x", os.getpid())
    await journal.close()
    assert read_status(path, now=time.time() + 60)["run"]["state"] == "running"


def test_read_status_without_a_journal(tmp_path: Path) -> None:
    status = read_status(tmp_path / ".shoal" / "journal.db")
    assert status["job"] is None and "no journal" in status["note"]
    assert not (tmp_path / ".shoal").exists()  # reading never creates anything


async def test_read_status_never_writes(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await two_phase_journal(path, finish=True)
    before = path.read_bytes()
    read_status(path)
    assert path.read_bytes() == before


async def test_the_panel_and_the_log_line_show_the_numbers(tmp_path: Path) -> None:
    path = tmp_path / ".shoal" / "journal.db"
    await two_phase_journal(path, finish=False)
    status = read_status(path, now=T0 + 11)
    out = io.StringIO()
    Console(file=out, width=140, force_terminal=False).print(render_status(status))
    text = out.getvalue()
    for expected in (
        "phase-1  draft",  # with a phase column the stage reads without its phase prefix
        "phase-2  review",
        "workers 3/8 in flight",
        "27/60 45%",
        "$0.03",
        "limit $1.00",
    ):
        assert expected in text, expected
    line = compact_line(status)
    assert line.startswith("shoal: 1/6 done, 1 flagged, 1 failed | 3/8 in flight")
    assert "rpm 45%" in line and "429s 1, retries 1" in line and "300 in / 60 out / 30 cached" in line


async def run_rehearsal_job(workspace: Path, console: Console, count: int = 12) -> None:
    (workspace / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "topic": f"t{i}"}) + "\n" for i in range(count))
    )
    config = ShoalConfig(job=JobSettings(concurrency=4))
    plan = plan_map(
        input_path=workspace / "in.jsonl",
        template="Explain {topic}.",
        model=ModelRef("rehearsal", "default"),
        out=workspace / "out.jsonl",
        id_field="id",
        id_required=True,
        schema=None,
        max_tokens=30,
    )
    async with open_job(
        state=StateDir(workspace),
        config=config,
        name=plan.job_name,
        command="shoal map in.jsonl",
        env={},
        stop=StopSignal(),
    ) as job:
        async with watch_job(job, stages=("map",), console=console, publish_every_s=0.1, log_every_s=0.3):
            result = await run_map(plan, job)
    assert result.done == count


async def test_without_a_terminal_the_view_logs_compact_lines(workspace: Path) -> None:
    out = io.StringIO()
    await run_rehearsal_job(workspace, Console(file=out, force_terminal=False))
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("shoal: ") and "/12 done" in line for line in lines)
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        snapshots = [json.loads(row[0]) for row in conn.execute("SELECT data FROM snapshots ORDER BY ts")]
    assert len(snapshots) >= 3
    last = snapshots[-1]
    assert last["workers"]["ceiling"] == 4 and last["counters"]["sent"] == 12
    assert last["stages"] == ["map"] and "rehearsal:default" in last["models"]
    # After the job the status reads the same stored figures from another "process".
    status = read_status(workspace / ".shoal" / "journal.db")
    assert status["run"]["state"] == "done" and status["items"]["done"] == 12
    assert [s["name"] for s in status["stages"]] == ["map"]


async def test_on_a_terminal_the_view_draws_a_live_panel(workspace: Path) -> None:
    out = io.StringIO()
    await run_rehearsal_job(workspace, Console(file=out, force_terminal=True, width=120), count=6)
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with terminal control codes, redrawn in place
    assert re.search(r"workers \d/4 in flight", text)
    assert "6 finished, 0 to go" in text  # the last frame, drawn before the block ends


def test_the_redactor_hides_keys_and_authorization_headers() -> None:
    redactor = Redactor.from_env(
        {"OPENAI_API_KEY": "sk-live-abcdef123456", "HOME": "/root", "SHORT_TOKEN": "x"}
    )
    text = redactor.text("key sk-live-abcdef123456; Authorization: Bearer abc.def.ghi123; x-api-key=zzz999")
    assert "sk-live" not in text and "abc.def" not in text and "zzz999" not in text
    assert text.count(REDACTED) == 3
    assert redactor.data({"a": ["sk-live-abcdef123456", 3]}) == {"a": [REDACTED, 3]}
    assert redactor.text("/root stays") == "/root stays"


def test_svg_charts_are_well_formed_and_labelled() -> None:
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    svg = line_chart(
        [Series("requests/min", [(0, 1), (1, 50), (2, 40)]), Series("limit", [(0, 60), (2, 60)], step=True)],
        title="t <&>",
        x_label="seconds",
        y_label="requests",
    )
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and "t <&>" in "".join(root.itertext())
    bars = stacked_bar_chart([SvgBar("map", [1.0, 2.0], "3s")], keys=["queue", "model"], title="x")
    assert ET.fromstring(bars) is not None and "map" in bars
