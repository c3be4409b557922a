"""Serving the fake app with uvicorn: `serve` for the CLI, `FakeServer` for tests and benchmarks."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from ._app import FakeApi, build_app, create_app
from ._backend import FakeBackend
from ._batches import FakeBatches
from ._settings import FakeSettings

__all__ = ["FakeServer", "create_app", "serve"]

# uvicorn logs this when an app leaves a response unfinished, which is exactly what a "drop" does.
_INCOMPLETE_RESPONSE = "ASGI callable returned without completing response."
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn, but open requests are aborted as shutdown begins rather than waited for."""

    def __init__(self, config: uvicorn.Config, api: FakeApi) -> None:
        super().__init__(config)
        self._api = api

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._api.abort_in_flight()
        await super().shutdown(sockets)


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _INCOMPLETE_RESPONSE


def _quiet_drops() -> None:
    """Keep uvicorn from logging an error for every injected drop (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDrops) for f in logger.filters):
        logger.addFilter(_HideDrops())


def _server(
    backend: FakeBackend, log_path: Path | None, *, quiet_logging: bool, batches: FakeBatches | None = None
) -> _Server:
    app, api = build_app(backend, log_path, batches)
    # log_config=None leaves the process's logging alone (tests); the CLI wants uvicorn's own.
    extra: dict[str, Any] = {"log_config": None} if quiet_logging else {}
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        http="h11",  # the drop fault relies on how this protocol ends an unfinished response
        lifespan="off",
        timeout_graceful_shutdown=2,  # a last resort: open requests are aborted first
        **extra,
    )
    _quiet_drops()
    return _Server(config, api)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _log_writer(log_path: Path | None) -> Callable[[Mapping[str, Any]], None]:
    from ._app import _RequestLog

    return _RequestLog(log_path).write


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    settings: FakeSettings,
    host: str,
    port: int,
    log_path: Path | None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until the process is interrupted; `on_ready` gets the root URL once the port is bound.

    Binding happens first, so `port=0` works and a taken port raises OSError before anything prints.
    """
    sock = _bind(host, port)
    try:
        server = _server(FakeBackend(settings), log_path, quiet_logging=False)
        if on_ready is not None:
            on_ready(_base_url(host, sock.getsockname()[1]))
        await server.serve(sockets=[sock])
    finally:
        sock.close()


class FakeServer:
    """A fake server on 127.0.0.1 in a background thread, for tests and benchmarks.

    Use as `with FakeServer(settings) as server:` or `async with ...`; the OS picks the port unless
    `port` names one (to restart a stopped server where its clients expect it, say).
    """

    def __init__(
        self,
        settings: FakeSettings | None = None,
        *,
        backend: FakeBackend | None = None,
        log_path: Path | None = None,
        port: int = 0,
    ) -> None:
        if settings is not None and backend is not None:
            raise ValueError("pass settings or a backend, not both")
        self.backend = backend or FakeBackend(settings or FakeSettings())
        self._log_path = log_path
        # The batch APIs' state, readable by tests: `created` lists every batch submitted.
        self.batches = FakeBatches(self.backend, _log_writer(log_path))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._failure: BaseException | None = None
        self._requested_port = port

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake server is not running")
        return _base_url("127.0.0.1", self._port)

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the Anthropic SDK adds /v1 itself

    def start(self) -> FakeServer:
        if self._thread is not None:
            raise RuntimeError("the fake server is already running")
        self._sock = _bind("127.0.0.1", self._requested_port)
        self._port = self._sock.getsockname()[1]
        self._server = _server(self.backend, self._log_path, quiet_logging=True, batches=self.batches)
        self._thread = threading.Thread(target=self._run, name=f"shoal-fake-server-{self._port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                failure, self._failure = self._failure, None
                self.stop()
                raise RuntimeError("the fake server did not start") from failure
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            # A loop of its own in this thread; uvicorn skips signal handlers off the main thread.
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as error:  # reported by start() or stop() in the caller's thread
            self._failure = error

    def stop(self) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        self._port = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=_STOP_TIMEOUT_S)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout=_STOP_TIMEOUT_S)
        if sock is not None:
            sock.close()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise RuntimeError("the fake server failed") from failure

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeServer:
        # In a worker thread, so starting and stopping never block the caller's event loop.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
