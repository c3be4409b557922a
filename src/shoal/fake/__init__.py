"""A fake LLM provider: the in-process backend of the `rehearsal` provider, and `shoal fake-server`.

Both answer like hosted providers do (rate limits with their headers, injected faults, latency),
with deterministic placeholder answers that fit a requested JSON schema.
"""

from typing import TYPE_CHECKING, Any

from ._backend import FakeBackend
from ._batch_settings import FakeBatchSettings
from ._hold import Hold
from ._replies import RepliesFileError, read_replies
from ._settings import (
    ALL_KINDS,
    FakeCall,
    FakeLimits,
    FakeReply,
    FakeResult,
    FakeSettings,
    FakeToolCall,
    FaultRates,
)

if TYPE_CHECKING:
    from ._batches import FakeBatches
    from ._server import FakeServer, create_app, serve

__all__ = [
    "ALL_KINDS",
    "FakeBackend",
    "FakeBatchSettings",
    "FakeBatches",
    "FakeCall",
    "FakeLimits",
    "FakeReply",
    "FakeResult",
    "FakeServer",
    "FakeSettings",
    "FakeToolCall",
    "FaultRates",
    "Hold",
    "RepliesFileError",
    "create_app",
    "read_replies",
    "serve",
]

# The HTTP server (uvicorn, starlette) loads on first use: every `shoal` command imports this
# package for the rehearsal backend, and only `shoal fake-server` and tests need a server.
_SERVER_NAMES = frozenset({"FakeServer", "create_app", "serve"})


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from . import _server

        return getattr(_server, name)
    if name == "FakeBatches":  # its routes are starlette's, so it loads with the server
        from . import _batches

        return _batches.FakeBatches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
