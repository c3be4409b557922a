"""The dashboard's Starlette app: a static page, JSON endpoints and a live SSE stream of the status.

Everything is read from the journal, read-only, through the same `read_status` that
`shoal status --json` prints; every response passes through the Redactor. A request must name
127.0.0.1 or localhost as its Host (a page on another name that resolves to 127.0.0.1, DNS
rebinding, gets 400) and carry the access token.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from .._clock import Clock, SystemClock
from ..view import CallTotalsCache, Redactor, read_status
from ._auth import TokenGate
from ._data import JournalView

__all__ = ["ALLOWED_HOSTS", "DashboardSettings", "build_app"]

ALLOWED_HOSTS = ("127.0.0.1", "localhost")  # with any port: the server listens on 127.0.0.1 only

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
_SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
}


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    journal: Path
    token: str
    job: str | None = None
    every_s: float = 1.0  # how often the stream sends a fresh status
    redactor: Redactor = Redactor()


def _int(request: Request, name: str, default: int | None) -> int | None:
    value = request.query_params.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        return default


def build_app(
    settings: DashboardSettings, *, clock: Clock | None = None, closing: asyncio.Event | None = None
) -> ASGIApp:
    """The app behind its Host check and token gate. Setting `closing` ends open streams."""
    clock = clock or SystemClock()
    closing = closing or asyncio.Event()

    async def pause(seconds: float) -> bool:
        """Sleep; False if the server is closing meanwhile."""
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        closer = asyncio.ensure_future(closing.wait())
        try:
            await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closer.cancel()
        return not closing.is_set()

    view = JournalView(settings.journal, settings.job)
    redact = settings.redactor.data
    cache, reading = CallTotalsCache(), threading.Lock()  # requests are served in several threads

    def status_now() -> dict[str, Any]:
        with reading:
            return read_status(settings.journal, job=settings.job, now=clock.wall(), cache=cache)

    def reply(data: Any) -> JSONResponse:
        return JSONResponse(redact(data), headers=_SECURITY_HEADERS)

    def threaded(read: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return reply(await asyncio.to_thread(read, request))

        return endpoint

    async def static(request: Request) -> Response:
        name, media = _STATIC[request.url.path]
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        if name == "index.html":  # the page's own assets need the token too
            body = body.replace(b"__TOKEN__", quote(settings.token, safe="").encode())
        return Response(body, media_type=media, headers=_SECURITY_HEADERS)

    async def stream(request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            while not closing.is_set():
                started = time.perf_counter()
                status = await asyncio.to_thread(status_now)
                took = time.perf_counter() - started
                yield f"event: status\ndata: {json.dumps(redact(status), separators=(',', ':'))}\n\n"
                # A huge journal takes a while to read: never spend more than a fifth of the time on it.
                if not await pause(max(settings.every_s, 5 * took)):
                    return

        headers = {**_SECURITY_HEADERS, "x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    routes = [
        *(Route(path, static) for path in _STATIC),
        Route("/api/status", threaded(lambda r: status_now())),
        Route(
            "/api/items",
            threaded(
                lambda r: view.items(
                    offset=_int(r, "offset", 0) or 0,
                    limit=_int(r, "limit", 200) or 200,
                    status=r.query_params.get("status") or None,
                )
            ),
        ),
        Route(
            "/api/calls",
            threaded(
                lambda r: view.calls(limit=_int(r, "limit", 200) or 200, before=_int(r, "before", None))
            ),
        ),
        Route("/api/events", threaded(lambda r: view.events(limit=_int(r, "limit", 200) or 200))),
        Route("/api/agents", threaded(lambda r: view.agents())),
        Route("/api/source", threaded(lambda r: view.source())),
        Route("/api/stream", stream),
    ]
    gated = TokenGate(Starlette(routes=routes), settings.token)
    return TrustedHostMiddleware(gated, allowed_hosts=list(ALLOWED_HOSTS), www_redirect=False)
