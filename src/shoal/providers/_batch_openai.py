"""OpenAI's Batch API through the official SDK: a JSONL file through the Files API, then /v1/batches.

Each line is the same Chat Completions request an online call sends (structured output as a
json_schema response format), with the call's journal key as its custom_id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from openai import AsyncOpenAI

from ._batch_common import translated
from ._batch_types import BatchFailure, BatchStatus, BatchTag, ItemOutcome
from ._types import ModelReply, ModelRequest, Usage

__all__ = ["OpenAIBatches"]

_ENDED = ("completed", "expired", "failed", "cancelled")
# How far back before an intent a batch of it may have been created (clock skew).
_SKEW_S = 600


class OpenAIBatches:
    name = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    def request_line(self, custom_id: str, request: ModelRequest) -> bytes:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_completion_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "result", "schema": dict(request.schema)},
            }
        line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()

    async def submit(self, model: str, lines: Sequence[bytes], tag: BatchTag) -> str:
        data = b"\n".join(lines) + b"\n"
        uploaded = await translated(
            self._client.files.create(file=("shoal-batch.jsonl", data, "application/jsonl"), purpose="batch"),
            "openai files.create",
        )
        batch = await translated(
            self._client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata=tag.metadata(),
            ),
            "openai batches.create",
        )
        return batch.id

    async def find(self, tag: BatchTag) -> list[str]:
        found: list[str] = []

        async def scan() -> None:
            async for batch in self._client.batches.list(limit=100):  # newest first
                if batch.created_at < tag.created_after - _SKEW_S:
                    break
                if (batch.metadata or {}).get("shoal_tag") == tag.tag:
                    found.append(batch.id)

        await translated(scan(), "openai batches.list")
        return found

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await translated(self._client.batches.retrieve(batch_id), "openai batches.retrieve")
        counts = batch.request_counts
        total, done, failed = (counts.total, counts.completed, counts.failed) if counts else (0, 0, 0)
        return BatchStatus(
            batch.id,
            batch.status,
            batch.status in _ENDED,
            {"processing": max(0, total - done - failed), "succeeded": done, "failed": failed},
        )

    async def results(self, batch_id: str) -> dict[str, ItemOutcome]:
        batch = await translated(self._client.batches.retrieve(batch_id), "openai batches.retrieve")
        outcomes: dict[str, ItemOutcome] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await translated(self._client.files.content(file_id), "openai files.content")
            for line in content.text.splitlines():
                if line.strip():
                    entry = json.loads(line)
                    outcomes[str(entry.get("custom_id"))] = _outcome(entry)
        return outcomes

    async def cancel(self, batch_id: str) -> None:
        await translated(self._client.batches.cancel(batch_id), "openai batches.cancel")

    async def aclose(self) -> None:
        await self._client.close()


def _outcome(entry: dict[str, Any]) -> ItemOutcome:
    error = entry.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        kind = {"batch_expired": "expired", "batch_cancelled": "cancelled"}.get(code, "error")
        return BatchFailure(str(error.get("message") or code), code=code, kind=kind)
    response = entry.get("response") or {}
    status = response.get("status_code")
    body = response.get("body") or {}
    if status != 200:
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        why = str(detail.get("message") or f"HTTP {status}")
        error_code = detail.get("code") or detail.get("type")
        code_text = str(error_code) if error_code else None
        return BatchFailure(f"HTTP {status}: {why}", code=code_text, status=status)
    choice = (body.get("choices") or [{}])[0]
    answer: dict[str, Any] = choice.get("message") or {}
    text = answer.get("content") or ""
    for tool_call in answer.get("tool_calls") or []:
        text = (tool_call.get("function") or {}).get("arguments") or text
    usage = body.get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    finish = choice.get("finish_reason")
    return ModelReply(
        text=text,
        usage=Usage(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), int(cached)
        ),
        finish_reason="stop" if finish == "tool_calls" else finish,
    )
