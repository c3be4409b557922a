"""Anthropic's Message Batches API through the official SDK.

Each request carries the same Messages parameters an online call sends (structured output as a
forced `final_result` tool, as pydantic-ai asks for it), with the call's journal key as custom_id.
The API takes no metadata, so a batch lost between "created" and the journal write is found by
its creation time and size (see docs/decisions.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from anthropic import AsyncAnthropic

from ._batch_common import translated
from ._batch_types import BatchFailure, BatchStatus, BatchTag, ItemOutcome
from ._types import ModelReply, ModelRequest, Usage

__all__ = ["AnthropicBatches"]

_OUTPUT_TOOL = "final_result"
_SKEW_S = 600


class AnthropicBatches:
    name = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def __init__(self, client: AsyncAnthropic) -> None:
        self._client = client

    def request_line(self, custom_id: str, request: ModelRequest) -> bytes:
        params: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens}
        system = [m for m in request.messages if m.role == "system"]
        if system:
            params["system"] = [_block(m.content, m.cache) for m in system]
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role == "system":
                continue
            if messages and messages[-1]["role"] == m.role:  # the API wants roles to alternate
                messages[-1]["content"].append(_block(m.content, m.cache))
            else:
                messages.append({"role": m.role, "content": [_block(m.content, m.cache)]})
        params["messages"] = messages
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.schema is not None:
            params["tools"] = [{"name": _OUTPUT_TOOL, "input_schema": dict(request.schema)}]
            params["tool_choice"] = {"type": "tool", "name": _OUTPUT_TOOL}
        line = {"custom_id": custom_id, "params": params}
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()

    async def submit(self, model: str, lines: Sequence[bytes], tag: BatchTag) -> str:
        requests: Any = [json.loads(line) for line in lines]
        batch = await translated(
            self._client.messages.batches.create(requests=requests), "anthropic messages.batches.create"
        )
        return batch.id

    async def find(self, tag: BatchTag) -> list[str]:
        found: list[str] = []

        async def scan() -> None:
            async for batch in self._client.messages.batches.list(limit=100):  # newest first
                if batch.created_at.timestamp() < tag.created_after - _SKEW_S:
                    break
                counts = batch.request_counts
                total = (
                    counts.processing + counts.succeeded + counts.errored + counts.expired + counts.canceled
                )
                if batch.created_at.timestamp() >= tag.created_after - 5 and total == tag.size:
                    found.append(batch.id)

        await translated(scan(), "anthropic messages.batches.list")
        return found

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await translated(
            self._client.messages.batches.retrieve(batch_id), "anthropic messages.batches.retrieve"
        )
        c = batch.request_counts
        return BatchStatus(
            batch.id,
            batch.processing_status,
            batch.processing_status == "ended",
            {
                "processing": c.processing,
                "succeeded": c.succeeded,
                "failed": c.errored,
                "expired": c.expired,
                "cancelled": c.canceled,
            },
        )

    async def results(self, batch_id: str) -> dict[str, ItemOutcome]:
        outcomes: dict[str, ItemOutcome] = {}

        async def read() -> None:
            async for item in await self._client.messages.batches.results(batch_id):
                outcomes[item.custom_id] = _outcome(item.result)

        await translated(read(), "anthropic messages.batches.results")
        return outcomes

    async def cancel(self, batch_id: str) -> None:
        await translated(self._client.messages.batches.cancel(batch_id), "anthropic messages.batches.cancel")

    async def aclose(self) -> None:
        await self._client.close()


def _block(text: str, cache: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return block


def _outcome(result: Any) -> ItemOutcome:
    if result.type == "succeeded":
        message = result.message
        text = ""
        for block in message.content:
            if block.type == "tool_use" and block.name == _OUTPUT_TOOL:
                text = json.dumps(block.input, ensure_ascii=False)
                break
            if block.type == "text":
                text += block.text
        usage = message.usage
        cached = usage.cache_read_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        finish = {"max_tokens": "length", "end_turn": "stop", "tool_use": "stop"}.get(
            str(message.stop_reason), message.stop_reason
        )
        return ModelReply(
            text=text,
            usage=Usage(usage.input_tokens + cached + written, usage.output_tokens, cached),
            finish_reason=finish,
        )
    if result.type == "errored":
        error = result.error.error
        return BatchFailure(f"{error.type}: {error.message}", code=error.type)
    if result.type == "expired":
        return BatchFailure("request expired before the batch processed it", code="expired", kind="expired")
    return BatchFailure("batch was cancelled", code="canceled", kind="cancelled")
