"""The Starlette app: OpenAI- and Anthropic-compatible endpoints in front of a FakeBackend."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._anthropic_wire import anthropic_body, anthropic_error, parse_anthropic
from ._backend import FakeBackend
from ._batches import FakeBatches, batch_routes
from ._openai_wire import openai_body, openai_error, parse_openai
from ._settings import FakeResult
from ._wire import ParsedRequest, WireError

__all__ = ["FakeApi", "build_app", "create_app"]

Api = Literal["openai", "anthropic"]


class _DroppedResponse(Response):
    """Announces the whole body, sends part of it, and ends.

    uvicorn then closes the connection, so the client sees a protocol error mid-response rather
    than an HTTP status.
    """

    def __init__(self, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(b"", 200, dict(headers), "application/json")
        self._partial = body[: len(body) // 2]
        self._announced = len(body) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        headers.append((b"content-length", str(self._announced).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._partial, "more_body": True})


class _NoResponse(Response):
    """For a client that has gone away: there is no one to answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _RequestLog:
    """One JSON line per completion request.

    Request headers are never read into it, so API keys and Authorization values cannot leak.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def write(self, record: Mapping[str, Any]) -> None:
        if self._path is None:
            return
        # Opened per line: nothing to close when the server stops, and lines survive a crash.
        with self._path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record, separators=(",", ":")) + "\n")


class FakeApi:
    """The endpoints' state: the backend, the request log, the models seen and the open requests."""

    def __init__(self, backend: FakeBackend, log_path: Path | None) -> None:
        self._backend = backend
        self._log = _RequestLog(log_path)
        self._models: dict[str, None] = {}  # insertion-ordered set of the models asked for
        self._in_flight: set[asyncio.Task[FakeResult]] = set()

    def abort_in_flight(self) -> None:
        """Stop the backend work of every open request; their connections are then dropped.

        Called as the server shuts down, so hanging requests end at once instead of holding it up.
        """
        for task in self._in_flight:
            task.cancel()

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "openai")

    async def messages(self, request: Request) -> Response:
        return await self._complete(request, "anthropic")

    async def models(self, request: Request) -> Response:
        # One list that satisfies both SDKs' model listings.
        data = [
            {
                "id": name,
                "object": "model",
                "type": "model",
                "created": 0,
                "created_at": "1970-01-01T00:00:00Z",
                "display_name": name,
                "owned_by": "shoal-fake",
            }
            for name in self._models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        body = {"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last}
        return JSONResponse(body)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self._backend.stats)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _complete(self, request: Request, api: Api) -> Response:
        started = time.monotonic()
        try:
            parsed = (parse_openai if api == "openai" else parse_anthropic)(await _json_body(request))
        except WireError as error:
            self._write_log(api, None, 400, "error", 0, started)
            return _error_response(api, 400, str(error), {})
        self._models.setdefault(parsed.call.model, None)
        work = asyncio.ensure_future(self._backend.handle(parsed.call))
        self._in_flight.add(work)
        try:
            client_gone = await _unless_disconnected(request, work)
        finally:
            self._in_flight.discard(work)
        if client_gone:  # 499: nginx's "client closed request"
            self._write_log(api, parsed, 499, "disconnected", 0, started)
            return _NoResponse()
        if work.cancelled():  # aborted by shutdown
            self._write_log(api, parsed, 503, "aborted", 0, started)
            return _DroppedResponse(b"", {})
        result = work.result()
        self._write_log(api, parsed, result.status, result.kind, result.output_tokens, started)
        return _respond(api, parsed, result)

    def _write_log(
        self,
        api: Api,
        parsed: ParsedRequest | None,
        status: int,
        kind: str,
        output_tokens: int,
        started: float,
    ) -> None:
        call = parsed.call if parsed else None
        self._log.write(
            {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "api": api,
                "model": call.model if call else None,
                "prompt_tokens": call.prompt_tokens if call else 0,
                "max_tokens": call.max_tokens if call else 0,
                "status": status,
                "kind": kind,
                "output_tokens": output_tokens,
                "latency_s": round(time.monotonic() - started, 4),
            }
        )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as error:
        raise WireError(f"the request body is not JSON: {error}") from None


async def _unless_disconnected(request: Request, work: asyncio.Task[FakeResult]) -> bool:
    """Wait for the backend's work; True if the client disconnected first (the work is then cancelled).

    A timed-out client of a hang thus frees the server instead of leaving a sleeper behind.
    """
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, watcher):
            if not task.done():
                task.cancel()
        # Let both finish, so no task outlives the request.
        await asyncio.wait({work, watcher})
    return watcher.done() and not watcher.cancelled()


async def _disconnect(receive: Receive) -> None:
    # The body has been read, so the server's next message is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


def _respond(api: Api, parsed: ParsedRequest, result: FakeResult) -> Response:
    response_id = uuid.uuid4().hex[:24]
    headers = {**result.headers, "x-request-id": f"req_{response_id}", "request-id": f"req_{response_id}"}
    if result.kind == "hang":  # the client has long given up; end the connection without an answer
        return _DroppedResponse(b"", headers)
    if result.status != 200:
        return _error_response(api, result.status, result.text, headers)
    if api == "openai":
        body = openai_body(parsed, result, response_id=response_id, created=int(time.time()))
    else:
        body = anthropic_body(parsed, result, response_id=response_id)
    if result.kind == "drop":
        return _DroppedResponse(json.dumps(body).encode(), headers)
    return JSONResponse(body, headers=headers)


def _error_response(api: Api, status: int, message: str, headers: Mapping[str, str]) -> Response:
    body = openai_error(status, message) if api == "openai" else anthropic_error(status, message)
    return JSONResponse(body, status_code=status, headers=dict(headers))


def build_app(
    backend: FakeBackend, log_path: Path | None, batches: FakeBatches | None = None
) -> tuple[Starlette, FakeApi]:
    api = FakeApi(backend, log_path)
    batches = batches or FakeBatches(backend, _RequestLog(log_path).write)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
            Route("/v1/messages", api.messages, methods=["POST"]),
            Route("/v1/models", api.models, methods=["GET"]),
            Route("/stats", api.stats, methods=["GET"]),
            Route("/health", api.health, methods=["GET"]),
            *batch_routes(batches),
        ]
    )
    return app, api


def create_app(backend: FakeBackend, log_path: Path | None) -> Starlette:
    """The ASGI app alone, for serving it some other way."""
    return build_app(backend, log_path)[0]
