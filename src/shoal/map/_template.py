"""Prompt templates with {field} placeholders; {{ and }} stand for literal braces."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Template"]

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


class Template:
    def __init__(self, text: str) -> None:
        self.text = text
        self.fields = tuple(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1)))

    def missing(self, values: Mapping[str, Any]) -> list[str]:
        return [name for name in self.fields if name not in values]

    def render(self, values: Mapping[str, Any]) -> str:
        def substitute(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            value = values[match.group(1)]
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

        return _PLACEHOLDER.sub(substitute, self.text)
