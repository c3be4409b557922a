"""The fake server's batch APIs, through the official SDKs' batch adapters."""

from __future__ import annotations

import asyncio
import time

from shoal.config import ProviderSettings, ShoalConfig
from shoal.fake import FakeBatchSettings, FakeServer, FakeSettings
from shoal.providers import Message, ModelReply, ModelRequest
from shoal.providers._batch import BatchProviderSet
from shoal.providers._batch_types import BatchFailure, BatchTag

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def _config(server: FakeServer) -> ShoalConfig:
    return ShoalConfig(
        providers={
            "openai": ProviderSettings(base_url=server.openai_base_url),
            "anthropic": ProviderSettings(base_url=server.anthropic_base_url),
        }
    )


async def _until_ended(adapter, batch_id: str) -> None:
    for _ in range(400):
        if (await adapter.status(batch_id)).ended:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("batch never ended")


async def test_both_batch_apis_answer_fail_and_expire_per_request() -> None:
    settings = FakeSettings(
        batch=FakeBatchSettings(delay_s=0.05, error_match=("two",), expire_match=("three",))
    )
    async with FakeServer(settings) as server:
        adapters = BatchProviderSet(_config(server), {})
        try:
            for provider in ("openai", "anthropic"):
                adapter = adapters.get(provider)
                lines = [
                    adapter.request_line(
                        f"{provider}-{word}", ModelRequest("m", (Message("user", word),), 50, SCHEMA)
                    )
                    for word in ("one", "two", "three")
                ]
                tag = BatchTag("job", "r1", f"tag-{provider}", time.time(), 3)
                batch_id = await adapter.submit("m", lines, tag)
                assert await adapter.find(tag) == [batch_id]
                await _until_ended(adapter, batch_id)
                results = await adapter.results(batch_id)
                ok = results[f"{provider}-one"]
                assert isinstance(ok, ModelReply) and ok.text.startswith("{")
                failed, expired = results[f"{provider}-two"], results[f"{provider}-three"]
                assert isinstance(failed, BatchFailure) and failed.kind == "error"
                assert isinstance(expired, BatchFailure) and expired.kind == "expired"
        finally:
            await adapters.aclose()
        assert [c["api"] for c in server.batches.created] == ["openai-batch", "anthropic-batch"]
        assert server.batches.created[0]["metadata"]["shoal_tag"] == "tag-openai"


async def test_cancelled_batch_reports_every_request_cancelled() -> None:
    settings = FakeSettings(batch=FakeBatchSettings(delay_s=30.0))
    async with FakeServer(settings) as server:
        adapters = BatchProviderSet(_config(server), {})
        try:
            adapter = adapters.get("openai")
            line = adapter.request_line("k1", ModelRequest("m", (Message("user", "hi"),), 20))
            batch_id = await adapter.submit("m", [line], BatchTag("j", "r", "t", time.time(), 1))
            assert not (await adapter.status(batch_id)).ended
            await adapter.cancel(batch_id)
            status = await adapter.status(batch_id)
            assert status.ended and status.state == "cancelled"
            outcome = (await adapter.results(batch_id))["k1"]
            assert isinstance(outcome, BatchFailure) and outcome.kind == "cancelled"
            assert server.batches.cancelled == [batch_id]
        finally:
            await adapters.aclose()
