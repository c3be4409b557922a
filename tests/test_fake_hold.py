"""The fake's hold: tests keep requests in flight for as long as they need, whatever the machine's load."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.fake import FakeServer, FakeSettings, Hold


async def test_held_requests_wait_until_allowed_then_all_go_when_opened() -> None:
    import openai

    async with FakeServer(FakeSettings(latency_s=0.0)) as server:
        hold = server.backend.hold
        hold.close(after=1)
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as client:
            messages: Any = [{"role": "user", "content": "hi"}]
            asks = [
                asyncio.create_task(client.chat.completions.create(model="m", messages=messages))
                for _ in range(4)
            ]
            await asyncio.to_thread(hold.wait_held, 3)
            done, pending = await asyncio.wait(asks, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1 and len(pending) == 3 and hold.held == 3
            hold.allow(1)
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1 and len(pending) == 2
            await asyncio.to_thread(hold.wait_held, 2)  # still held, not answered
            hold.open()
            answers = await asyncio.gather(*asks)
    assert all(a.choices[0].message.content for a in answers)
    assert server.backend.stats["ok"] == 4


async def test_stopping_the_server_ends_held_requests() -> None:
    import openai

    server = FakeServer(FakeSettings(latency_s=0.0))
    async with server:
        server.backend.hold.close()
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        ask = asyncio.create_task(client.chat.completions.create(model="m", messages=messages))
        await asyncio.to_thread(server.backend.hold.wait_held, 1)
    # The server stopped although the request was held, and the client saw the connection end.
    with pytest.raises(openai.APIConnectionError):
        await ask
    await client.close()
    assert server.backend.hold.held == 0


def test_waiting_for_more_held_requests_than_arrive_times_out() -> None:
    hold = Hold()
    hold.close(after=2)
    with pytest.raises(TimeoutError, match="0 requests held"):
        hold.wait_held(1, timeout=0.05)
    with pytest.raises(ValueError):
        hold.close(after=-1)
