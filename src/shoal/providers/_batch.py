"""Build each provider's batch adapter once, on the same endpoints and keys as online calls."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ShoalConfig
from ..errors import InputError
from ._batch_types import BatchProvider
from ._registry import ProviderSet

__all__ = ["BATCH_PROVIDERS", "BatchProviderSet"]

BATCH_PROVIDERS = ("openai", "anthropic")
_PLACEHOLDER_KEY = "not-needed"


class BatchProviderSet:
    """The job's batch adapters, created on first use and closed together."""

    def __init__(self, config: ShoalConfig, env: Mapping[str, str]) -> None:
        self._config = config
        self._endpoints = ProviderSet(config, env)
        self._adapters: dict[str, BatchProvider] = {}

    def get(self, provider: str) -> BatchProvider:
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = self._adapters[provider] = self._build(provider)
        return adapter

    def _build(self, provider: str) -> BatchProvider:
        if provider not in BATCH_PROVIDERS:
            raise InputError(f"provider '{provider}' has no batch API; --batch needs openai or anthropic")
        base_url, api_key = self._endpoints.endpoint(provider)
        api_key = api_key or _PLACEHOLDER_KEY
        settings = self._config.providers.get(provider)
        from ._http import make_http_client

        http = make_http_client(settings.timeout_s if settings else 120.0)
        if provider == "openai":
            from openai import AsyncOpenAI

            from ._batch_openai import OpenAIBatches

            return OpenAIBatches(
                AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)
            )
        from anthropic import AsyncAnthropic

        from ._batch_anthropic import AnthropicBatches

        return AnthropicBatches(
            AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)
        )

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()
