"""A fake LLM provider: the in-process backend of the `rehearsal` provider, and `shoal fake-server`.

Both answer like hosted providers do (rate limits with their headers, injected faults, latency),
with deterministic placeholder answers that fit a requested JSON schema.
"""

from ._backend import FakeBackend
from ._batch_settings import FakeBatchSettings
from ._batches import FakeBatches
from ._server import FakeServer, create_app, serve
from ._settings import (
    ALL_KINDS,
    FakeCall,
    FakeLimits,
    FakeReply,
    FakeResult,
    FakeSettings,
    FaultRates,
)

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
    "FaultRates",
    "create_app",
    "serve",
]
