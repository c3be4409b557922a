"""The largest answer (output tokens per request) each well-known model accepts. A --max-tokens
above it would be rejected by the provider on every request, so it is refused before the job
starts. Models not listed (local servers, new releases) pass unchecked."""

from __future__ import annotations

from ..errors import InputError
from ..providers import ModelRef

__all__ = ["KNOWN_OUTPUT_LIMITS", "check_max_tokens", "output_token_limit"]

# Published maximum output tokens, by provider and model name (dated snapshots share the limit).
KNOWN_OUTPUT_LIMITS: dict[str, dict[str, int]] = {
    "openai": {
        "gpt-3.5-turbo": 4_096,
        "gpt-4-turbo": 4_096,
        "gpt-4o": 16_384,
        "gpt-4o-mini": 16_384,
        "gpt-4.1": 32_768,
        "gpt-4.1-mini": 32_768,
        "gpt-4.1-nano": 32_768,
        "o1": 100_000,
        "o3": 100_000,
        "o3-mini": 100_000,
        "o4-mini": 100_000,
        "gpt-5": 128_000,
        "gpt-5-mini": 128_000,
        "gpt-5-nano": 128_000,
    },
    "anthropic": {
        "claude-3-haiku": 4_096,
        "claude-3-5-haiku": 8_192,
        "claude-3-5-sonnet": 8_192,
        "claude-3-7-sonnet": 64_000,
        "claude-sonnet-4": 64_000,
        "claude-sonnet-4-5": 64_000,
        "claude-haiku-4-5": 64_000,
        "claude-opus-4": 32_000,
        "claude-opus-4-1": 32_000,
        "claude-opus-4-5": 64_000,
    },
}


def output_token_limit(ref: ModelRef) -> int | None:
    """The model's known output limit; a dated or -latest suffix matches its base name."""
    table = KNOWN_OUTPUT_LIMITS.get(ref.provider, {})
    best: tuple[int, int] | None = None  # (length of the matched name, limit)
    for name, limit in table.items():
        rest = ref.name[len(name) :] if ref.name.startswith(name) else None
        if rest is None:
            continue
        suffix = rest[1:] if rest.startswith("-") else None
        if rest == "" or (suffix is not None and (suffix[:1].isdigit() or suffix == "latest")):
            if best is None or len(name) > best[0]:
                best = (len(name), limit)
    return best[1] if best else None


def check_max_tokens(ref: ModelRef, max_tokens: int, *, source: str) -> None:
    limit = output_token_limit(ref)
    if limit is not None and max_tokens > limit:
        raise InputError(
            f"{source} {max_tokens:,} is above {ref}'s limit of {limit:,} output tokens per answer; "
            f"use at most {limit}"
        )
