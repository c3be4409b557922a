"""Model names: "provider:model" strings and the aliases shoal.toml defines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..config import ShoalConfig
from ..errors import InputError

__all__ = ["KNOWN_PROVIDERS", "ModelRef", "by_model_key", "resolve_model"]

KNOWN_PROVIDERS = ("openai", "anthropic", "rehearsal")

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.name}"

    def __str__(self) -> str:
        return self.key


def resolve_model(spec: str, config: ShoalConfig) -> ModelRef:
    """Turn an alias or a "provider:model" string into a ModelRef."""
    seen: list[str] = []
    current = spec.strip()
    while current in config.models:
        if current in seen:
            raise InputError(f"model alias loop in shoal.toml [models]: {' -> '.join([*seen, current])}")
        seen.append(current)
        current = config.models[current].strip()
    if current == "rehearsal":
        current = "rehearsal:default"
    provider, sep, name = current.partition(":")
    if not sep:
        raise InputError(
            f"unknown model '{spec}': not an alias in shoal.toml [models] and not 'provider:model'"
        )
    if provider not in KNOWN_PROVIDERS or not name:
        raise InputError(f"unknown model '{spec}': provider must be one of {', '.join(KNOWN_PROVIDERS)}")
    return ModelRef(provider, name)


def by_model_key(table: Mapping[str, V], config: ShoalConfig) -> dict[str, V]:
    """Tables keyed by model ([limits], [prices]) may use aliases; key them by "provider:model"."""
    return {resolve_model(name, config).key: value for name, value in table.items()}
