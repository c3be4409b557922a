"""`shoal map` against a server that sends no rate-limit headers and has no configured limits.

Unknown limits are not small limits: only the job's concurrency ceiling holds requests back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.fake import FakeBackend, FakeCall, FakeResult, FakeServer, FakeSettings

from helpers import MAP_ARGV, clean_env, output_ids, run_shoal, write_records


class GatheringBackend(FakeBackend):
    """Holds each request until `target` are open at once (or a generous timeout passes)."""

    def __init__(self, settings: FakeSettings, target: int) -> None:
        super().__init__(settings)
        self.target = target
        self.open = self.peak = 0
        self._full: asyncio.Event | None = None

    async def handle(self, call: FakeCall) -> FakeResult:
        if self._full is None:
            self._full = asyncio.Event()  # made in the server's own loop
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            if self.open >= self.target:
                self._full.set()
            try:
                await asyncio.wait_for(self._full.wait(), 20.0)
            except TimeoutError:
                pass
            return await super().handle(call)
        finally:
            self.open -= 1


def test_no_headers_and_no_limits_fills_the_concurrency_ceiling(workspace: Path) -> None:
    ids = write_records(workspace / "in.jsonl", 48)
    backend = GatheringBackend(FakeSettings(latency_s=0.01, rate_headers=False), target=16)
    with FakeServer(backend=backend) as server:
        env = clean_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.openai_base_url)
        result = run_shoal(workspace, *MAP_ARGV, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(output_ids(workspace / "out.jsonl")) == ids
    # All 16 of the job's slots were in flight at once: nothing paced them (the old start of
    # 60 requests a minute let one through per second).
    assert backend.peak == 16
    assert backend.stats["requests"] == 48 and backend.stats["rate_limited"] == 0
