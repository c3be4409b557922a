"""What calls cost: a built-in price table, overridable in shoal.toml, with genai-prices behind it.

Prices are US dollars per million tokens. The table is checked first because it is short, visible
and easy to correct; models it does not know are looked up in genai-prices (a dependency of
pydantic-ai, maintained by the pydantic team), and a model neither knows has no price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._types import Usage
from .config import Price, ShoalConfig
from .providers import ModelRef, by_model_key

__all__ = ["BUILTIN_PRICES", "PriceBook", "batch_price", "worst_case_cost"]

BUILTIN_PRICES: Mapping[str, Price] = {
    "openai:gpt-4o": Price(input=2.50, output=10.00, cached_input=1.25),
    "openai:gpt-4o-mini": Price(input=0.15, output=0.60, cached_input=0.075),
    "openai:gpt-4.1": Price(input=2.00, output=8.00, cached_input=0.50),
    "openai:gpt-4.1-mini": Price(input=0.40, output=1.60, cached_input=0.10),
    "openai:gpt-4.1-nano": Price(input=0.10, output=0.40, cached_input=0.025),
    "openai:gpt-5": Price(input=1.25, output=10.00, cached_input=0.125),
    "openai:gpt-5-mini": Price(input=0.25, output=2.00, cached_input=0.025),
    "openai:gpt-5-nano": Price(input=0.05, output=0.40, cached_input=0.005),
    "openai:o3": Price(input=2.00, output=8.00, cached_input=0.50),
    "openai:o4-mini": Price(input=1.10, output=4.40, cached_input=0.275),
    "anthropic:claude-opus-4-5": Price(input=5.00, output=25.00, cached_input=0.50),
    "anthropic:claude-opus-4-1": Price(input=15.00, output=75.00, cached_input=1.50),
    "anthropic:claude-sonnet-4-5": Price(input=3.00, output=15.00, cached_input=0.30),
    "anthropic:claude-sonnet-4-0": Price(input=3.00, output=15.00, cached_input=0.30),
    "anthropic:claude-haiku-4-5": Price(input=1.00, output=5.00, cached_input=0.10),
    "anthropic:claude-3-5-haiku-latest": Price(input=0.80, output=4.00, cached_input=0.08),
}

# Rehearsal answers are placeholders, but pricing them like a small hosted model lets a user
# rehearse a budget (max_cost_usd, projections) before spending real money.
REHEARSAL_PRICE = Price(input=0.15, output=0.60, cached_input=0.075)

_MILLION = 1_000_000


def _genai_price(model_key: str) -> Price | None:
    provider, _, name = model_key.partition(":")
    try:
        from genai_prices import Usage as GenaiUsage
        from genai_prices import calc_price

        result = calc_price(
            GenaiUsage(input_tokens=_MILLION, output_tokens=_MILLION), model_ref=name, provider_id=provider
        )
        cached = calc_price(
            GenaiUsage(input_tokens=_MILLION, cache_read_tokens=_MILLION),
            model_ref=name,
            provider_id=provider,
        )
    except Exception:  # genai-prices raises LookupError and friends for unknown models
        return None
    return Price(
        input=float(result.input_price),
        output=float(result.output_price),
        cached_input=float(cached.input_price),
    )


class PriceBook:
    """Prices for the models of one job: shoal.toml's [prices] first, then the tables."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._cache: dict[str, Price | None] = {}

    @classmethod
    def from_config(cls, config: ShoalConfig) -> PriceBook:
        """The job's price book: shoal.toml's [prices], whose keys may be aliases from [models]."""
        return cls(by_model_key(config.prices, config))

    def unpriced(self, models: Iterable[ModelRef]) -> list[str]:
        """The models (provider:model) that have no price at all, sorted."""
        return sorted({ref.key for ref in models if self.price(ref.key) is None})

    def price(self, model_key: str) -> Price | None:
        if model_key in self._overrides:
            return self._overrides[model_key]
        if model_key not in self._cache:
            if model_key.startswith("rehearsal:"):
                found: Price | None = REHEARSAL_PRICE
            else:
                found = BUILTIN_PRICES.get(model_key) or _genai_price(model_key)
            self._cache[model_key] = found
        return self._cache[model_key]

    def batch_price(self, model_key: str) -> Price | None:
        """The price through a batch API: [prices] batch_input/batch_output, else half the online price."""
        price = self.price(model_key)
        return None if price is None else batch_price(price)

    def batch_view(self) -> PriceBook:
        """The same book at batch prices, for estimates of a batch run."""
        return _BatchPriceBook(self)

    def batch_cost(self, model_key: str, usage: Usage) -> float | None:
        """Dollars for one batched call's usage; None if the model has no known price."""
        price = self.batch_price(model_key)
        return None if price is None else _dollars(price, usage)

    def cost(self, model_key: str, usage: Usage) -> float | None:
        """Dollars for one call's usage; None if the model has no known price."""
        price = self.price(model_key)
        if price is None:
            return None
        return _dollars(price, usage)


class _BatchPriceBook(PriceBook):
    def __init__(self, online: PriceBook) -> None:
        super().__init__()
        self._online = online

    def price(self, model_key: str) -> Price | None:
        return self._online.batch_price(model_key)


def batch_price(price: Price) -> Price:
    """Both OpenAI's Batch API and Anthropic's Message Batches charge half the online price."""
    return Price(
        input=price.batch_input if price.batch_input is not None else price.input / 2,
        output=price.batch_output if price.batch_output is not None else price.output / 2,
        cached_input=None if price.cached_input is None else price.cached_input / 2,
    )


def _dollars(price: Price, usage: Usage) -> float:
    cached = min(usage.cached_tokens, usage.input_tokens)
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    dollars = (
        (usage.input_tokens - cached) * price.input
        + cached * cached_rate
        + usage.output_tokens * price.output
    )
    return dollars / _MILLION


def worst_case_cost(price: Price | None, input_tokens: int, max_tokens: int) -> float:
    """The most one call can cost: every input token uncached and the whole answer budget used."""
    if price is None:
        return 0.0
    return (input_tokens * price.input + max_tokens * price.output) / _MILLION
