"""The fake server's capacity model and outage window, which let it disagree with shoal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.fake import FakeSettings
from shoal.fake._backend import FakeBackend
from shoal.fake._settings import FakeCall

from helpers import run_shoal


class RecordingClock:
    """Time moves only when the test says; sleeps are recorded and return at once."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        await asyncio.sleep(0)


CALL = FakeCall(api="openai", model="m", prompt_text="hello", prompt_tokens=2, max_tokens=20)


async def test_latency_grows_in_proportion_past_the_capacity() -> None:
    clock = RecordingClock()
    backend = FakeBackend(FakeSettings(latency_s=0.1, jitter=0.0, capacity=2), clock=clock)
    results = await asyncio.gather(*(backend.handle(CALL) for _ in range(4)))
    assert [r.kind for r in results] == ["ok"] * 4
    # Each request's latency is set as it starts: 1, 2 in flight at base, then 3/2 and 4/2 of it.
    assert clock.sleeps == [0.1, 0.1, 0.15, 0.2]
    clock.sleeps.clear()
    await backend.handle(CALL)  # all done: one in flight again
    assert clock.sleeps == [0.1]


async def test_an_outage_window_answers_503_then_the_server_is_back() -> None:
    clock = RecordingClock()
    settings = FakeSettings(latency_s=0.0, outage_after_s=5.0, outage_for_s=10.0)
    backend = FakeBackend(settings, clock=clock)
    assert (await backend.handle(CALL)).status == 200  # the first request starts the clock
    clock.t += 6
    refused = await backend.handle(CALL)
    assert (refused.kind, refused.status) == ("error", 503)
    clock.t += 10
    assert (await backend.handle(CALL)).status == 200
    assert backend.stats["outage"] == 1


async def test_a_drop_outage_ends_connections_without_an_answer() -> None:
    clock = RecordingClock()
    settings = FakeSettings(outage_after_s=0.0, outage_for_s=1.0, outage_mode="drop")
    result = await FakeBackend(settings, clock=clock).handle(CALL)
    assert result.kind == "drop" and result.text == ""


def test_bad_capacity_or_outage_mode_is_a_usage_error(tmp_path: Path) -> None:
    bad = run_shoal(tmp_path, "fake-server", "--capacity", "0")
    assert bad.returncode == 2 and "--capacity" in bad.stderr
    bad = run_shoal(tmp_path, "fake-server", "--outage-after", "1", "--outage-mode", "teapot")
    assert bad.returncode == 2 and "--outage-mode" in bad.stderr


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FakeSettings(capacity=0)
    with pytest.raises(ValueError, match="outage_for_s"):
        FakeSettings(outage_after_s=1.0, outage_for_s=-1.0)
