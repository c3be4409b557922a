"""`shoal dashboard`: the token, the JSON it serves, the SSE stream, and the page in headless Chromium,
all against a job running on `shoal fake-server`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shoal.cluster import WorkerStat
from shoal.fake import FakeLimits, FakeServer, FakeSettings, Hold

from helpers import MAP_ARGV, Spawn, clean_env, invoke_shoal, write_records

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAP = MAP_ARGV
DONE_AT_LEAST = "(n) => Number(document.querySelector('#items-done').dataset.value) >= n"
# Keys that change from one moment to the next even when the job has finished.
MOMENTARY = {"now", "elapsed_s", "age_s"}


def start_dashboard(spawn: Spawn, workspace: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return spawn(workspace, "dashboard", *args, env=env, stdout=subprocess.PIPE)


def printed_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url, url
    return url


def stop_dashboard(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=15)
    assert "Traceback" not in stderr, stderr


@contextmanager
def dashboard(spawn: Spawn, workspace: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """`shoal dashboard` in a subprocess; yields the URL it prints (with its token)."""
    process = start_dashboard(spawn, workspace, env, *args)
    try:
        yield printed_url(process)
    finally:
        stop_dashboard(process)


def api(url: str, path: str, **headers: str) -> Any:
    """GET path with the token of `url` (or with `headers` only, when given)."""
    parts = urlsplit(url)
    token = parts.query.removeprefix("token=")
    target = f"{parts.scheme}://{parts.netloc}{path}"
    if not headers:
        target += ("&" if "?" in path else "?") + f"token={token}"
    request = urllib.request.Request(target, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if response.headers.get_content_type() == "application/json" else body


def status_json(workspace: Path, env: dict[str, str]) -> dict[str, Any]:
    result = invoke_shoal(workspace, "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stable(data: Any) -> Any:
    """The status without the fields that move with the clock."""
    if isinstance(data, dict):
        return {k: stable(v) for k, v in data.items() if k not in MOMENTARY}
    if isinstance(data, list):
        return [stable(v) for v in data]
    return data


def done_in_journal(workspace: Path) -> int:
    import sqlite3

    path = workspace / ".shoal" / "journal.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM items WHERE status = 'done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start_job(spawn: Spawn, workspace: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return spawn(workspace, *MAP, env=env)


def test_the_dashboard_refuses_a_missing_or_wrong_token(workspace: Path, spawn: Spawn) -> None:
    with dashboard(spawn, workspace, clean_env()) as url:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        for path in ("/", "/app.js", "/api/status", "/api/items", "/api/stream"):
            for suffix, headers, expected in (
                ("", {}, 401),
                ("?token=wrong-token-0123456789", {}, 403),
                ("", {"Authorization": "Bearer wrong-token-0123456789"}, 403),
                ("", {"X-Shoal-Token": ""}, 403),
            ):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(
                        urllib.request.Request(base + path + suffix, headers=headers), timeout=5
                    )
                refused.value.close()
                assert refused.value.code == expected, (path, suffix, headers)
        token = parts.query.removeprefix("token=")
        page = api(url, "/")
        assert b"<title>shoal dashboard</title>" in page and f"app.js?token={token}".encode() in page
        status = api(url, "/api/status", Authorization=f"Bearer {token}")
        assert status["job"] is None and "no journal" in status["note"]


def test_the_dashboard_refuses_a_host_other_than_loopback(workspace: Path, spawn: Spawn) -> None:
    """DNS rebinding: a page on another name that resolves to 127.0.0.1 gets nothing, token or not."""
    with dashboard(spawn, workspace, clean_env()) as url:
        parts = urlsplit(url)
        token = parts.query.removeprefix("token=")
        target = f"{parts.scheme}://{parts.netloc}/api/status?token={token}"
        for host in (f"evil.example:{parts.port}", "evil.example", f"127.0.0.1.evil.example:{parts.port}"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(target, headers={"Host": host}), timeout=5)
            refused.value.close()
            assert refused.value.code == 400, host
        for host in (f"localhost:{parts.port}", f"127.0.0.1:{parts.port}", "localhost"):
            request = urllib.request.Request(target, headers={"Host": host})
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200, host


def test_status_and_dashboard_agree_during_and_after_a_run(workspace: Path, spawn: Spawn) -> None:
    write_records(workspace / "in.jsonl", 30)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 6\n")
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        # Three answers, then the next calls stay in flight: the job runs until the test lets them go.
        server.backend.hold.close(after=3)
        env = clean_env(OPENAI_API_KEY="k-test-dashboard", OPENAI_BASE_URL=server.openai_base_url)
        with dashboard(spawn, workspace, env) as url:
            job = start_job(spawn, workspace, env)
            try:
                server.backend.hold.wait_held(6)
                wait_until(lambda: done_in_journal(workspace) == 3)
                first = api(url, "/api/status")
                cli = status_json(workspace, env)
                second = api(url, "/api/status")
                stream = read_one_event(url)
            finally:
                server.backend.hold.open()
                _, stderr = job.communicate(timeout=30)
            assert job.returncode == 0, stderr
            assert first["run"]["state"] == cli["run"]["state"] == second["run"]["state"] == "running"
            for key in ("done", "total"):
                assert first["items"][key] == cli["items"][key] == second["items"][key]
            assert first["items"]["done"] == 3 and first["items"]["total"] == 30
            assert first["totals"]["job"]["calls"] == cli["totals"]["job"]["calls"] == 3
            assert second["totals"]["job"]["calls"] == 3
            assert stream["job"] == cli["job"] and stream["items"]["done"] == 3
            assert cli["workers"]["ceiling"] == first["workers"]["ceiling"] == 6

            after_dashboard = api(url, "/api/status")
            after_cli = status_json(workspace, env)
            assert stable(after_dashboard) == stable(after_cli)
            assert after_cli["items"]["done"] == 30 and after_cli["run"]["state"] == "done"

            items = api(url, "/api/items?limit=5")
            assert items["total"] == 30 and [i["id"] for i in items["items"]] == [
                f"rec-{i:03d}" for i in range(5)
            ]
            assert all(
                i["calls"] == 1 and i["input_tokens"] > 0 and i["cost_usd"] > 0 for i in items["items"]
            )
            calls = api(url, "/api/calls?limit=100")["calls"]
            assert (
                len(calls) == 30
                and sum(c["output_tokens"] for c in calls) == after_cli["totals"]["job"]["output_tokens"]
            )
            source = api(url, "/api/source")
            assert source["kind"] == "prompt" and source["text"] == "Explain {topic}."


def read_one_event(url: str) -> dict[str, Any]:
    """The first `status` event of the SSE stream."""
    parts = urlsplit(url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/api/stream?{parts.query}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers.get_content_type() == "text/event-stream"
        event = None
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "status":
                return json.loads(line.removeprefix("data: "))
    raise AssertionError("no status event")


def page_numbers(page: Any) -> dict[str, str]:
    ids = ["items-done", "items-total", "items-failed", "tokens-in", "tokens-out", "cost-spent", "calls-job"]
    return {name: page.get_attribute(f"#{name}", "data-value") for name in ids}


def test_the_page_updates_live_and_matches_status_in_chromium(
    workspace: Path, tmp_path: Path, spawn: Spawn
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    write_records(workspace / "in.jsonl", 24)
    (workspace / "shoal.toml").write_text("[job]\nconcurrency = 4\n")
    settings = FakeSettings(limits=FakeLimits(rpm=6000, tpm=5_000_000), latency_s=0.01)
    with FakeServer(settings) as server:
        hold = server.backend.hold
        hold.close(after=3)  # the job runs until the test lets its calls go
        env = clean_env(OPENAI_API_KEY="k-test-chromium", OPENAI_BASE_URL=server.openai_base_url)
        # The job, the dashboard and the browser start side by side.
        job = start_job(spawn, workspace, env)
        server_process = start_dashboard(spawn, workspace, env, "--interval", "0.25")
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1300, "height": 1800})
                    page.goto(printed_url(server_process))
                    check_page(page, workspace, env, job, hold)
                    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                finally:
                    browser.close()
        finally:
            hold.open()
            stop_dashboard(server_process)
            if job.poll() is None:
                job.kill()
                job.wait()


def check_page(
    page: Any, workspace: Path, env: dict[str, str], job: subprocess.Popen[str], hold: Hold
) -> None:
    hold.wait_held(4)
    page.wait_for_function(DONE_AT_LEAST, arg=3, timeout=20_000)
    seen_first = int(page_numbers(page)["items-done"])
    cli = status_json(workspace, env)
    assert page.text_content("#state") == "running"
    hold.allow(3)  # three more answers; the calls after them are held again
    page.wait_for_function(DONE_AT_LEAST, arg=6, timeout=20_000)
    seen_second = int(page_numbers(page)["items-done"])
    assert page.text_content("#state") == "running"
    assert page.get_attribute("#ceiling", "data-value") == "4"
    # The numbers changed while the job ran, and match what `shoal status` said meanwhile.
    assert seen_first == cli["items"]["done"] == 3 and seen_second == 6
    hold.open()
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == 0, stderr

    page.wait_for_function("() => document.querySelector('#state').textContent === 'done'", timeout=10_000)
    final = status_json(workspace, env)
    shown = page_numbers(page)
    totals = final["totals"]["job"]
    assert int(shown["items-done"]) == final["items"]["done"] == 24
    assert int(shown["items-total"]) == final["items"]["total"]
    assert int(shown["items-failed"]) == final["items"]["failed"]
    assert int(shown["tokens-in"]) == totals["input_tokens"]
    assert int(shown["tokens-out"]) == totals["output_tokens"]
    assert int(shown["calls-job"]) == totals["calls"]
    assert abs(float(shown["cost-spent"]) - final["cost"]["spent_usd"]) < 1e-9
    page.wait_for_function("() => document.querySelectorAll('#items tbody tr').length === 24")
    assert page.text_content("#source") == "Explain {topic}."


RAY_WORKERS = [
    WorkerStat("shoal-1a2b-101-0-0", node="node-aaaa", done=40, running=3, busy_s=21.5).as_dict(),
    WorkerStat("shoal-1a2b-102-1-0", node="node-bbbb", done=12, busy_s=6.0, lost=True).as_dict(),
]


def test_the_page_shows_an_interrupted_run_ray_workers_and_a_max_tokens_limit(
    tmp_path: Path, spawn: Spawn
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from shoal.journal import Journal
    from test_view_limits import MODEL, journal_with_live_snapshot

    live, dead = tmp_path / "live", tmp_path / "dead"
    gone = subprocess.Popen(["true"])
    gone.wait()

    async def journals() -> None:
        # A run 30 s in whose snapshot stays fresh: answers of ~100 tokens against max_tokens 2,000.
        now = time.time()
        path = live / ".shoal" / "journal.db"
        await journal_with_live_snapshot(
            path, learning=False, max_tokens=2000, at=now - 30, snapshot_at=now + 600, cluster=RAY_WORKERS
        )
        journal = Journal.open(dead / ".shoal" / "journal.db")  # a run whose process is gone
        await journal.begin_run("map:/tmp/x.jsonl", "shoal map x", gone.pid)
        await journal.close()

    asyncio.run(journals())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for where, state, advice in (
                (live, "running", f"{MODEL}: max_tokens 2,000, not the provider, limits throughput"),
                (dead, "interrupted", "interrupted: the job's process is gone"),
            ):
                with dashboard(spawn, where, clean_env()) as url:
                    page = browser.new_page()
                    page.goto(url)
                    page.wait_for_function(
                        "(s) => document.querySelector('#state').textContent === s", arg=state, timeout=20_000
                    )
                    assert advice in (page.text_content("#advice") or "")
                    assert page.is_visible("#advice")
                    # A Ray job's workers get their own table; a local job shows none.
                    rows = page.eval_on_selector_all(
                        "#cluster tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
                    )
                    if where is live:
                        assert page.is_visible("#cluster-section")
                        assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
                            ("shoal-1a2b-101-0-0", "node-aaaa", "40", "3", "up"),
                            ("shoal-1a2b-102-1-0", "node-bbbb", "12", "0", "lost"),
                        ]
                    else:
                        assert not page.is_visible("#cluster-section") and rows == []
                    page.close()
        finally:
            browser.close()
