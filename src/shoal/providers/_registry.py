"""Build each provider adapter once, from shoal.toml and the environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ProviderSettings, ShoalConfig
from ..errors import ConfigError, InputError
from ..fake import FakeLimits, FakeReply, FakeSettings, RepliesFileError, read_replies
from ._refs import ModelRef
from ._types import Provider

if TYPE_CHECKING:
    from ._pydantic_ai import PydanticAIProvider

__all__ = ["ProviderSet", "RehearsalDefaults", "load_replies"]

_ENV = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
}
# A local OpenAI-compatible server (vLLM, Ollama, llama.cpp) usually wants no key at all,
# but the SDK insists on one.
_PLACEHOLDER_KEY = "not-needed"
_DIRECT_POOLS = 8  # connection pools of the direct OpenAI chat path (see _openai_chat.py)


@dataclass(frozen=True, slots=True)
class RehearsalDefaults:
    """How the rehearsal provider behaves when shoal.toml does not say."""

    rpm: int = 600
    tpm: int = 400_000
    per_token_s: float = 0.0005


class ProviderSet:
    """The job's provider adapters, created on first use and closed together."""

    def __init__(
        self,
        config: ShoalConfig,
        env: Mapping[str, str],
        *,
        rehearsal: RehearsalDefaults | None = None,
        rehearsal_settings: Callable[[str], FakeSettings] | None = None,
    ) -> None:
        self._config = config
        self._env = env
        self._rehearsal = rehearsal or RehearsalDefaults()
        self._rehearsal_settings = rehearsal_settings
        self._providers: dict[str, Provider] = {}
        self._replies: tuple[FakeReply, ...] | None = None

    def _settings(self, provider: str) -> ProviderSettings:
        return self._config.providers.get(provider, ProviderSettings())

    def endpoint(self, provider: str) -> tuple[str | None, str | None]:
        """(base_url, api_key) for a hosted provider; shoal.toml's base_url wins over the environment."""
        key_var, url_var = _ENV[provider]
        settings = self._settings(provider)
        base_url = settings.base_url or self._env.get(url_var) or None
        api_key = self._env.get(settings.api_key_env or key_var) or None
        return base_url, api_key

    def budget_identity(self, provider: str) -> str | None:
        """What a shared rate budget belongs to: the API key, or for a keyless local server its
        address; None for providers without one (rehearsal). Only a salted hash leaves the process."""
        if provider not in _ENV:
            return None
        base_url, api_key = self.endpoint(provider)
        return api_key if api_key is not None else f"url:{base_url}"

    def check(self, ref: ModelRef) -> None:
        """Fail before the job starts if a model could never be called."""
        if ref.provider == "rehearsal":
            self._rehearsal_replies()
            return
        base_url, api_key = self.endpoint(ref.provider)
        if api_key is None and base_url is None:
            key_var = self._settings(ref.provider).api_key_env or _ENV[ref.provider][0]
            raise InputError(f"{key_var} is not set: model '{ref}' needs an API key (or a base_url)")

    def get(self, provider: str) -> Provider:
        adapter = self._providers.get(provider)
        if adapter is None:
            adapter = self._providers[provider] = self._build(provider)
        return adapter

    def _build(self, provider: str) -> Provider:
        if provider == "rehearsal":
            from ._rehearsal import RehearsalProvider

            return RehearsalProvider(self._rehearsal_settings or self._rehearsal_fake_settings)
        base_url, api_key = self.endpoint(provider)
        api_key = api_key or _PLACEHOLDER_KEY
        timeout = self._settings(provider).timeout_s
        from ._http import make_http_client

        if provider == "openai":
            from ._openai_chat import OpenAIAdapter, OpenAIChat

            direct = OpenAIChat(
                [make_http_client(timeout) for _ in range(_DIRECT_POOLS)], base_url=base_url, api_key=api_key
            )
            return OpenAIAdapter(direct, lambda: _openai_through_pydantic_ai(base_url, api_key, timeout))
        from ._pydantic_ai import PydanticAIProvider

        http = make_http_client(timeout)
        if provider == "anthropic":
            from anthropic import AsyncAnthropic
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            anthropic_client = AsyncAnthropic(
                api_key=api_key, base_url=base_url, max_retries=0, http_client=http
            )
            anthropic_provider = AnthropicProvider(anthropic_client=anthropic_client)
            return PydanticAIProvider(
                provider, lambda name: AnthropicModel(name, provider=anthropic_provider), http
            )
        raise InputError(f"unknown provider '{provider}'")

    def _rehearsal_replies(self) -> tuple[FakeReply, ...]:
        """Scripted rehearsal answers from shoal.toml's [rehearsal] replies file, read once."""
        if self._replies is None:
            name = self._config.rehearsal.replies
            self._replies = () if name is None else load_replies(Path(name))
        return self._replies

    def _rehearsal_fake_settings(self, model: str) -> FakeSettings:
        limits = self._config.limits.get(f"rehearsal:{model}")
        defaults = self._rehearsal
        rpm = limits.rpm if limits and limits.rpm else defaults.rpm
        tpm = limits.tpm if limits and limits.tpm else defaults.tpm
        return FakeSettings(
            # Rehearsal gives unused max_tokens back, as before the fake server's default changed.
            limits=FakeLimits(rpm=rpm, tpm=tpm, refund_unused=True),
            latency_s=self._config.rehearsal.latency_s,
            # latency_s = 0 asks for no simulated latency at all, per token included.
            per_token_s=defaults.per_token_s if self._config.rehearsal.latency_s > 0 else 0.0,
            replies=self._rehearsal_replies(),
        )

    async def aclose(self) -> None:
        for adapter in self._providers.values():
            await adapter.aclose()
        self._providers.clear()


def _openai_through_pydantic_ai(base_url: str | None, api_key: str, timeout: float) -> PydanticAIProvider:
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from ._http import make_http_client
    from ._pydantic_ai import PydanticAIProvider

    http = make_http_client(timeout)
    client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)
    provider = OpenAIProvider(openai_client=client)
    return PydanticAIProvider("openai", lambda name: OpenAIChatModel(name, provider=provider), http)


def load_replies(path: Path) -> tuple[FakeReply, ...]:
    """Read a rehearsal replies file: a JSON list of {"match", "reply", "times"?}."""
    try:
        return read_replies(path)
    except RepliesFileError as exc:
        raise ConfigError(f"rehearsal replies: {exc}") from None
