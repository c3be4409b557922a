"""A last line of defence: no API key or authorization header leaves through a view.

The journal never stores keys, but error texts come from providers and SDKs. Everything the
dashboard serves and the report writes passes through a Redactor built from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[redacted]"
_SECRET_NAMES = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD|AUTHORIZATION)$", re.IGNORECASE)
_HEADERS = re.compile(
    r"(?i)\b(authorization|x-api-key|api-key|proxy-authorization)(\"?\s*[:=]\s*\"?)(bearer\s+)?[^\s\"',}]+"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")
_MIN_SECRET_LEN = 8


@dataclass(frozen=True, slots=True)
class Redactor:
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        """Every value of a variable named like a key, token, secret or password."""
        values = {v for k, v in env.items() if _SECRET_NAMES.search(k) and len(v) >= _MIN_SECRET_LEN}
        return cls(tuple(sorted(values, key=len, reverse=True)))

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = _HEADERS.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
        return _BEARER.sub(f"Bearer {REDACTED}", value)

    def data(self, value: Any) -> Any:
        """The same structure with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
