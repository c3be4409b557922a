"""The batch APIs of both providers on the fake server: OpenAI's Files + Batches, Anthropic's Message Batches.

Each request of a batch is answered like an online call (the backend's schema-shaped answers),
without rate limits or latency: a batch ends `delay_s` after creation. Requests can be made to fail
or expire (FakeBatchSettings), and every created batch is written to `created` and the request log,
so tests can count submissions.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._anthropic_wire import anthropic_body, anthropic_error, parse_anthropic
from ._backend import FakeBackend
from ._batch_settings import FakeBatchSettings
from ._openai_wire import openai_body, openai_error, parse_openai
from ._settings import FakeResult
from ._wire import ParsedRequest, WireError

__all__ = ["FakeBatches", "batch_routes"]

Api = Literal["openai", "anthropic"]
Kind = Literal["ok", "error", "expired", "account", "invalid"]


@dataclass(slots=True)
class _Item:
    custom_id: str
    kind: Kind
    body: dict[str, Any] | None = None  # the answer, or the error body
    status: int = 200


@dataclass(slots=True)
class _Batch:
    id: str
    api: Api
    created_at: float  # unix time
    ends_at: float  # monotonic
    metadata: dict[str, str]
    items: list[_Item]
    input_file_id: str | None = None
    cancelled: bool = False
    files: dict[str, str] = field(default_factory=dict)  # "output"/"error" -> file id


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class FakeBatches:
    """State of the fake batch APIs; thread-safe, since tests read it while the server runs."""

    def __init__(
        self,
        backend: FakeBackend,
        log: Callable[[Mapping[str, Any]], None] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._log = log
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._batches: dict[str, _Batch] = {}
        self._faults: dict[str, int] = {}  # custom_id -> faults injected so far
        self.created: list[dict[str, Any]] = []  # one entry per batch created, in order
        self.cancelled: list[str] = []
        self.status_errors = 0  # 503s answered to status checks so far

    @property
    def settings(self) -> FakeBatchSettings:
        return self._backend.settings.batch

    # -- shared ---------------------------------------------------------------------------

    def _answer(self, api: Api, custom_id: str, body: Any) -> _Item:
        try:
            parsed = (parse_openai if api == "openai" else parse_anthropic)(body)
        except WireError as error:
            return _Item(custom_id, "invalid", _error_body(api, 400, str(error)), 400)
        settings = self.settings
        if settings.account_error:
            message = f"account error: {settings.account_error} (injected by the fake server)"
            if api == "openai":
                error_body: dict[str, Any] = {
                    "error": {
                        "message": message,
                        "type": settings.account_error,
                        "param": None,
                        "code": settings.account_error,
                    }
                }
            else:
                error_body = {"type": "error", "error": {"type": settings.account_error, "message": message}}
            return _Item(custom_id, "account", error_body, 429)
        text = parsed.call.last_message or parsed.call.prompt_text
        for kind, matches in (("expired", settings.expire_match), ("error", settings.error_match)):
            if any(m in text for m in matches) and self._faults.get(custom_id, 0) < settings.fault_times:
                self._faults[custom_id] = self._faults.get(custom_id, 0) + 1
                if kind == "expired":
                    return _Item(custom_id, "expired")
                return _Item(custom_id, "error", _error_body(api, 500, "injected batch request error"), 500)
        return _Item(custom_id, "ok", _success_body(api, parsed, self._backend))

    def _create(self, api: Api, items: list[_Item], metadata: dict[str, str], file_id: str | None) -> _Batch:
        prefix = "batch_" if api == "openai" else "msgbatch_"
        batch = _Batch(
            id=prefix + uuid.uuid4().hex[:24],
            api=api,
            created_at=time.time(),
            ends_at=self._monotonic() + self.settings.delay_s,
            metadata=metadata,
            items=items,
            input_file_id=file_id,
        )
        self._batches[batch.id] = batch
        entry = {
            "api": f"{api}-batch",
            "event": "batch_created",
            "batch_id": batch.id,
            "requests": len(items),
        }
        self.created.append({**entry, "metadata": metadata, "custom_ids": [i.custom_id for i in items]})
        if self._log is not None:
            self._log({**entry, "ts": _iso(time.time())})
        return batch

    def _ended(self, batch: _Batch) -> bool:
        return batch.cancelled or self._monotonic() >= batch.ends_at

    def _cancel(self, batch: _Batch) -> None:
        if not self._ended(batch):
            batch.cancelled = True
            self.cancelled.append(batch.id)

    def _get(self, batch_id: str) -> _Batch | None:
        return self._batches.get(batch_id)

    # -- OpenAI ---------------------------------------------------------------------------

    async def upload_file(self, request: Request) -> Response:
        body = await request.body()
        message = BytesParser(policy=default_policy).parsebytes(
            b"Content-Type: " + request.headers.get("content-type", "").encode() + b"\r\n\r\n" + body
        )
        content: bytes | None = None
        purpose = None
        filename = "input.jsonl"
        for part in message.iter_parts() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if name == "file" and isinstance(payload, bytes):
                content = payload
                filename = str(part.get_filename() or filename)
            elif name == "purpose" and isinstance(payload, bytes):
                purpose = payload.decode()
        if content is None or purpose != "batch":
            return JSONResponse(openai_error(400, "a 'file' part with purpose 'batch' is required"), 400)
        file_id = "file-" + uuid.uuid4().hex[:24]
        with self._lock:
            self._files[file_id] = content
        return JSONResponse(_file_object(file_id, content, filename))

    async def file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self._lock:
            content = self._files.get(file_id)
        if content is None:
            return JSONResponse(openai_error(404, f"no file {file_id}"), 404)
        return Response(content, media_type="application/octet-stream")

    async def openai_create(self, request: Request) -> Response:
        body = json.loads(await request.body())
        file_id = body.get("input_file_id")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return JSONResponse(openai_error(400, "endpoint /v1/chat/completions, window 24h only"), 400)
        with self._lock:
            content = self._files.get(file_id) if isinstance(file_id, str) else None
            if content is None:
                return JSONResponse(openai_error(400, f"no input file {file_id}"), 400)
            items: list[_Item] = []
            for number, line in enumerate(content.decode().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    custom_id, entry_body = entry["custom_id"], entry["body"]
                except (ValueError, KeyError, TypeError):
                    return JSONResponse(openai_error(400, f"line {number} of the input file is invalid"), 400)
                items.append(self._answer("openai", custom_id, entry_body))
            batch = self._create("openai", items, dict(body.get("metadata") or {}), file_id)
            return JSONResponse(self._openai_object(batch))

    async def openai_retrieve(self, request: Request) -> Response:
        with self._lock:
            if self.status_errors < self.settings.status_errors:
                self.status_errors += 1
                return JSONResponse(_error_body("openai", 503, "injected outage"), 503)
            batch = self._get(request.path_params["batch_id"])
            if batch is None or batch.api != "openai":
                return JSONResponse(openai_error(404, "no such batch"), 404)
            return JSONResponse(self._openai_object(batch))

    async def openai_list(self, request: Request) -> Response:
        with self._lock:
            data = [self._openai_object(b) for b in reversed(self._batches.values()) if b.api == "openai"]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse(
            {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
        )

    async def openai_cancel(self, request: Request) -> Response:
        with self._lock:
            batch = self._get(request.path_params["batch_id"])
            if batch is None or batch.api != "openai":
                return JSONResponse(openai_error(404, "no such batch"), 404)
            self._cancel(batch)
            return JSONResponse(self._openai_object(batch))

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        n = len(batch.items)
        ended = self._ended(batch)
        status = "in_progress"
        completed = failed = 0
        if ended:
            self._openai_files(batch)
            completed = sum(1 for i in batch.items if i.kind == "ok" and not batch.cancelled)
            failed = n - completed
            if batch.cancelled:
                status = "cancelled"
            elif any(i.kind == "expired" for i in batch.items):
                status = "expired"
            else:
                status = "completed"
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "input_file_id": batch.input_file_id or "",
            "status": status,
            "created_at": int(batch.created_at),
            "expires_at": int(batch.created_at) + 86_400,
            "output_file_id": batch.files.get("output"),
            "error_file_id": batch.files.get("error"),
            "metadata": batch.metadata,
            "request_counts": {"total": n, "completed": completed, "failed": failed},
        }

    def _openai_files(self, batch: _Batch) -> None:
        if batch.files or not batch.items:
            return
        out: list[str] = []
        errors: list[str] = []
        for item in batch.items:
            line: dict[str, Any] = {"id": "batch_req_" + uuid.uuid4().hex[:24], "custom_id": item.custom_id}
            if batch.cancelled:
                line |= {"response": None, "error": {"code": "batch_cancelled", "message": "cancelled"}}
                errors.append(json.dumps(line))
            elif item.kind == "expired":
                line |= {
                    "response": None,
                    "error": {"code": "batch_expired", "message": "not executed before the window expired"},
                }
                errors.append(json.dumps(line))
            else:
                response = {
                    "status_code": item.status,
                    "request_id": "req_" + uuid.uuid4().hex,
                    "body": item.body,
                }
                line |= {"response": response, "error": None}
                (out if item.kind == "ok" else errors).append(json.dumps(line))
        for name, lines in (("output", out), ("error", errors)):
            if lines:
                file_id = "file-" + uuid.uuid4().hex[:24]
                self._files[file_id] = ("\n".join(lines) + "\n").encode()
                batch.files[name] = file_id

    # -- Anthropic ------------------------------------------------------------------------

    async def anthropic_create(self, request: Request) -> Response:
        body = json.loads(await request.body())
        requests = body.get("requests")
        extra = set(body) - {"requests"}
        if extra or not isinstance(requests, list) or not requests:
            return JSONResponse(anthropic_error(400, "a non-empty 'requests' list (and nothing else)"), 400)
        with self._lock:
            items = [self._answer("anthropic", r["custom_id"], r["params"]) for r in requests]
            batch = self._create("anthropic", items, {}, None)
            return JSONResponse(self._anthropic_object(batch, str(request.base_url)))

    async def anthropic_retrieve(self, request: Request) -> Response:
        with self._lock:
            if self.status_errors < self.settings.status_errors:
                self.status_errors += 1
                return JSONResponse(_error_body("anthropic", 503, "injected outage"), 503)
            batch = self._get(request.path_params["batch_id"])
            if batch is None or batch.api != "anthropic":
                return JSONResponse(anthropic_error(404, "no such batch"), 404)
            return JSONResponse(self._anthropic_object(batch, str(request.base_url)))

    async def anthropic_list(self, request: Request) -> Response:
        base = str(request.base_url)
        with self._lock:
            data = [
                self._anthropic_object(b, base)
                for b in reversed(self._batches.values())
                if b.api == "anthropic"
            ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def anthropic_cancel(self, request: Request) -> Response:
        with self._lock:
            batch = self._get(request.path_params["batch_id"])
            if batch is None or batch.api != "anthropic":
                return JSONResponse(anthropic_error(404, "no such batch"), 404)
            self._cancel(batch)
            return JSONResponse(self._anthropic_object(batch, str(request.base_url)))

    async def anthropic_results(self, request: Request) -> Response:
        with self._lock:
            batch = self._get(request.path_params["batch_id"])
            if batch is None or batch.api != "anthropic":
                return JSONResponse(anthropic_error(404, "no such batch"), 404)
            if not self._ended(batch):
                return JSONResponse(anthropic_error(400, "batch is still processing"), 400)
            lines = [
                json.dumps({"custom_id": i.custom_id, "result": _anthropic_result(i, batch)})
                for i in batch.items
            ]
        return Response("\n".join(lines) + "\n", media_type="application/binary")

    def _anthropic_object(self, batch: _Batch, base_url: str) -> dict[str, Any]:
        ended = self._ended(batch)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "expired": 0, "canceled": 0}
        for item in batch.items:
            if not ended:
                counts["processing"] += 1
            else:
                counts[_anthropic_result(item, batch)["type"]] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + 86_400),
            "ended_at": _iso(time.time()) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(time.time()) if batch.cancelled else None,
            "results_url": f"{base_url.rstrip('/')}/v1/messages/batches/{batch.id}/results"
            if ended
            else None,
        }


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    return openai_error(status, message) if api == "openai" else anthropic_error(status, message)


def _success_body(api: Api, parsed: ParsedRequest, backend: FakeBackend) -> dict[str, Any]:
    answer = backend._answer(parsed.call, "ok")  # the same answers as online calls, no limits or faults
    result = FakeResult(
        "ok", 200, answer.text, answer.finish_reason, parsed.call.prompt_tokens, answer.output_tokens
    )
    response_id = uuid.uuid4().hex[:24]
    if api == "openai":
        return openai_body(parsed, result, response_id=response_id, created=int(time.time()))
    return anthropic_body(parsed, result, response_id=response_id)


def _anthropic_result(item: _Item, batch: _Batch) -> dict[str, Any]:
    if batch.cancelled:
        return {"type": "canceled"}
    if item.kind == "ok":
        return {"type": "succeeded", "message": item.body}
    if item.kind == "expired":
        return {"type": "expired"}
    return {"type": "errored", "error": item.body}


def _file_object(file_id: str, content: bytes, filename: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": "batch",
        "status": "processed",
    }


def batch_routes(batches: FakeBatches) -> list[Route]:
    return [
        Route("/v1/files", batches.upload_file, methods=["POST"]),
        Route("/v1/files/{file_id}/content", batches.file_content, methods=["GET"]),
        Route("/v1/batches", batches.openai_create, methods=["POST"]),
        Route("/v1/batches", batches.openai_list, methods=["GET"]),
        Route("/v1/batches/{batch_id}", batches.openai_retrieve, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", batches.openai_cancel, methods=["POST"]),
        Route("/v1/messages/batches", batches.anthropic_create, methods=["POST"]),
        Route("/v1/messages/batches", batches.anthropic_list, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", batches.anthropic_retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/results", batches.anthropic_results, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", batches.anthropic_cancel, methods=["POST"]),
    ]
