"""The engine's batch round on its own: durability across a crash, splitting, the queue limit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from shoal.config import BatchSettings, ProviderSettings, ShoalConfig
from shoal.engine import CallSpec, StateDir, StopSignal, open_job
from shoal.engine._batch import BatchRound
from shoal.fake import FakeBatchSettings, FakeServer, FakeSettings
from shoal.journal import BatchBook, BatchState
from shoal.providers import Message, ModelRef, ModelRequest
from shoal.providers._batch import BatchProviderSet
from shoal.providers._batch_types import BatchProvider, BatchTag


class Killed(Exception):
    """Stands for kill -9 between the provider's "created" and the journal write of the batch id."""


class CrashAfterCreate:
    """Batch adapters whose submit creates the batch at the provider, then dies before returning."""

    def __init__(self, inner: BatchProviderSet) -> None:
        self._inner = inner

    def get(self, provider: str) -> BatchProvider:
        adapter = self._inner.get(provider)
        outer = self

        class Crashing:
            name = adapter.name
            max_requests = adapter.max_requests
            max_bytes = adapter.max_bytes
            request_line = adapter.request_line
            find = adapter.find
            status = adapter.status
            results = adapter.results
            cancel = adapter.cancel
            aclose = adapter.aclose

            async def submit(self, model: str, lines: Sequence[bytes], tag: BatchTag) -> str:
                await adapter.submit(model, lines, tag)
                raise Killed(outer)

        return Crashing()  # type: ignore[return-value]

    async def aclose(self) -> None:
        await self._inner.aclose()


def specs(model: ModelRef, count: int) -> list[CallSpec]:
    return [
        CallSpec(
            scope=f"item-{i}",
            stage="map",
            model=model,
            request=ModelRequest(model.name, (Message("user", f"explain topic {i}"),), 40),
        )
        for i in range(count)
    ]


def config_for(server: FakeServer, **batch: object) -> ShoalConfig:
    return ShoalConfig(
        providers={
            "openai": ProviderSettings(base_url=server.openai_base_url),
            "anthropic": ProviderSettings(base_url=server.anthropic_base_url),
        },
        batch=BatchSettings(poll_s=0.02, **batch),  # type: ignore[arg-type]
    )


async def run_round(workspace: Path, config: ShoalConfig, calls: list[CallSpec], crash: bool = False):
    async with open_job(
        state=StateDir(workspace), config=config, name="job", command="test", env={}, stop=StopSignal()
    ) as job:
        adapters = BatchProviderSet(config, {})
        source = CrashAfterCreate(adapters) if crash else adapters
        try:
            outcome = await BatchRound(job, source, config.batch).run(calls, "map")
            return outcome, BatchBook(job.journal).rows("job")
        finally:
            await source.aclose()


@pytest.mark.parametrize(
    "model", [ModelRef("openai", "gpt-4o-mini"), ModelRef("anthropic", "claude-haiku-4-5")]
)
async def test_a_batch_created_but_not_journaled_is_found_not_resubmitted(
    tmp_path: Path, model: ModelRef
) -> None:
    calls = specs(model, 5)
    async with FakeServer(FakeSettings(batch=FakeBatchSettings(delay_s=0.2))) as server:
        config = config_for(server)
        with pytest.raises(Killed):
            await run_round(tmp_path, config, calls, crash=True)
        assert len(server.batches.created) == 1
        outcome, rows = await run_round(tmp_path, config, calls)
        assert len(server.batches.created) == 1  # adopted, not submitted again
    assert len(outcome.results) == 5 and not outcome.failed
    assert [(r.state, r.batch_id) for r in rows] == [
        (BatchState.COLLECTED, server.batches.created[0]["batch_id"])
    ]


async def test_batches_are_split_by_requests_and_bytes(tmp_path: Path) -> None:
    model = ModelRef("openai", "gpt-4o-mini")
    async with FakeServer(FakeSettings()) as server:
        outcome, rows = await run_round(tmp_path, config_for(server, max_requests=3), specs(model, 8))
        assert [c["requests"] for c in server.batches.created] == [3, 3, 2]
        assert len(outcome.results) == 8
        one_line = len(
            BatchProviderSet(config_for(server), {})
            .get("openai")
            .request_line("k" * 64, specs(model, 1)[0].request)
        )
        outcome, _ = await run_round(
            tmp_path / "b", config_for(server, max_bytes=2 * one_line + 2), specs(model, 5)
        )
        assert [c["requests"] for c in server.batches.created[3:]] == [2, 2, 1]
    assert len(outcome.results) == 5


async def test_queue_limit_holds_a_batch_until_the_one_before_has_ended(tmp_path: Path) -> None:
    model = ModelRef("openai", "gpt-4o-mini")
    async with FakeServer(FakeSettings(batch=FakeBatchSettings(delay_s=0.1))) as server:
        # About 5 tokens per prompt: 12 tokens of queue fit two requests per batch, one batch at a time.
        outcome, rows = await run_round(tmp_path, config_for(server, queue_tokens=12), specs(model, 4))
        created = [c["requests"] for c in server.batches.created]
    assert sum(created) == 4 and len(created) >= 2 and len(outcome.results) == 4
    # Every batch was created after the previous one was collected.
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert later.created_at >= earlier.updated_at


async def test_an_outage_while_polling_is_waited_out(tmp_path: Path) -> None:
    model = ModelRef("anthropic", "claude-haiku-4-5")
    async with FakeServer(FakeSettings(batch=FakeBatchSettings(delay_s=0.05, status_errors=3))) as server:
        outcome, rows = await run_round(tmp_path, config_for(server), specs(model, 3))
        assert server.batches.status_errors == 3 and len(server.batches.created) == 1
    assert len(outcome.results) == 3 and [r.state for r in rows] == [BatchState.COLLECTED]
