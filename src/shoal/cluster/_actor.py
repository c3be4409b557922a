"""The Ray actor that sends model requests: one per worker, many requests in flight on each."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..config import ShoalConfig
from ..errors import ModelCallError
from ..providers import ModelReply, ModelRequest, ProviderSet

__all__ = ["SendWorker"]


class SendWorker:
    """Holds the provider adapters (HTTP pools) on its node; answers or the provider's error come back.

    Errors are returned as values, not raised, so the driver sees the same ModelCallError (status,
    retry_after) a local call raises, not Ray's wrapper around it.
    """

    def __init__(self, config: ShoalConfig, env: Mapping[str, str]) -> None:
        self._providers = ProviderSet(config, dict(env))

    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def complete(
        self, provider: str, request: ModelRequest
    ) -> tuple[ModelReply | ModelCallError, float]:
        """The reply or the provider's error, and the time it took (the pool learns the node once)."""
        started = time.monotonic()
        try:
            reply: ModelReply | ModelCallError = await self._providers.get(provider).complete(request)
        except ModelCallError as exc:
            reply = exc
        return reply, time.monotonic() - started

    async def aclose(self) -> None:
        await self._providers.aclose()
