"""Prompt template syntax: {field}, and {{ / }} for literal braces. Anything else with a brace is a
mistake (a format spec, an index, a positional field, an unclosed brace) and is refused."""

from __future__ import annotations

import re

from ..errors import InputError

__all__ = ["check_template"]

# The same placeholder grammar as jobs/_template.py renders.
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def check_template(text: str, *, source: str) -> None:
    """Raise InputError naming the first brace that is neither a {field} nor an escaped {{ or }}."""
    position = 0
    while True:
        brace = min((i for i in (text.find("{", position), text.find("}", position)) if i >= 0), default=-1)
        if brace < 0:
            return
        match = _TOKEN.match(text, brace)
        if match:
            position = match.end()
            continue
        raise InputError(f"{source}: {_explain(text, brace)}")


def _explain(text: str, at: int) -> str:
    column = at + 1
    if text[at] == "}":
        return f"unmatched '}}' at character {column}; write '}}}}' for a literal brace"
    close = text.find("}", at + 1)
    reopened = text.find("{", at + 1)
    if close < 0 or 0 <= reopened < close:
        return f"unclosed '{{' at character {column}; write '{{{{' for a literal brace"
    inner = text[at + 1 : close]
    shown = "{" + inner + "}"
    stem = re.match(r"\s*([A-Za-z_][A-Za-z0-9_.-]*)", inner)
    if stem and _FIELD_NAME.fullmatch(inner.strip()):
        hint = f"write {{{inner.strip()}}} without spaces"
    elif stem:
        hint = f"only plain {{field}} placeholders are supported, e.g. {{{stem.group(1)}}}"
    else:
        hint = "a placeholder names a field: letters, digits, _ . - (not starting with a digit)"
    return (
        f"placeholder '{shown}' at character {column} is not valid: {hint}; write '{{{{' for a literal brace"
    )
