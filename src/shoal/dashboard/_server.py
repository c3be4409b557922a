"""Serving the dashboard with uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn

from ._app import DashboardSettings, build_app

__all__ = ["LOOPBACK", "dashboard_url", "serve_dashboard"]

LOOPBACK = "127.0.0.1"


def dashboard_url(port: int, token: str) -> str:
    return f"http://{LOOPBACK}:{port}/?token={token}"


class _Server(uvicorn.Server):
    """uvicorn, but open event streams are ended as shutdown begins rather than cancelled."""

    def __init__(self, config: uvicorn.Config, closing: asyncio.Event) -> None:
        super().__init__(config)
        self._closing = closing

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._closing.set()
        await super().shutdown(sockets)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_dashboard(settings: DashboardSettings, *, port: int, on_ready: Callable[[str], None]) -> None:
    """Bind 127.0.0.1:`port` (0: a free port), report the URL with its token, serve until interrupted."""
    sock = _bind(port)
    closing = asyncio.Event()
    try:
        config = uvicorn.Config(
            build_app(settings, closing=closing),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,  # open SSE streams end with the server
        )
        server = _Server(config, closing)
        on_ready(dashboard_url(sock.getsockname()[1], settings.token))
        await server.serve(sockets=[sock])
    finally:
        sock.close()
