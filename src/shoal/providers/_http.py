"""The HTTP client shoal owns under every SDK: it reads rate-limit headers off each response.

The SDKs (openai, anthropic) are built on httpx2, so this is an httpx2 client. Headers are
handed to the adapter through a context variable: the SDK awaits the request inside the
adapter's task, so the response hook runs in the adapter's context and nothing is shared
between concurrent calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx2

__all__ = ["ResponseCapture", "capture_response", "make_http_client"]


@dataclass(slots=True)
class ResponseCapture:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


_capture: ContextVar[ResponseCapture | None] = ContextVar("shoal_response_capture", default=None)


async def _on_response(response: httpx2.Response) -> None:
    target = _capture.get()
    if target is not None:
        target.status = response.status_code
        target.headers = {name.lower(): value for name, value in response.headers.items()}


@contextmanager
def capture_response() -> Iterator[ResponseCapture]:
    """Collect the status and headers of the responses received inside the block."""
    target = ResponseCapture()
    token = _capture.set(target)
    try:
        yield target
    finally:
        _capture.reset(token)


def make_http_client(timeout_s: float) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=200),
        event_hooks={"response": [_on_response]},
    )
