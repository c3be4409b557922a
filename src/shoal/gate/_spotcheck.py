"""Spot-check the metadata that decides whether an output renders and can be found."""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["front_matter", "required_fields", "spot_check"]

_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def front_matter(text: str) -> dict[str, Any] | None:
    """The YAML front matter as a mapping; None if missing or not a mapping."""
    match = _FRONT.match(text.lstrip("\ufeff"))
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def required_fields(content_rules: tuple[str, ...]) -> tuple[str, ...]:
    """Fields a content rule asks for ("front matter: title, description, tags"); at least the title."""
    for rule in content_rules:
        match = re.search(r"front matter\s*:\s*(.+)$", rule, re.IGNORECASE)
        if match:
            names = [n.strip(" .`*").lower() for n in re.split(r",|\band\b", match.group(1))]
            fields = tuple(n for n in names if n and re.fullmatch(r"[a-z_][a-z0-9_-]*", n))
            if fields:
                return fields
    return ("title",)


def spot_check(text: str, *, title: str, fields: tuple[str, ...]) -> list[str]:
    """Problems with the front matter; an empty list means it is fine."""
    meta = front_matter(text)
    if meta is None:
        return ["front matter is missing or is not valid YAML between --- lines"]
    problems = [f"front matter field '{name}' is missing or empty" for name in fields if not meta.get(name)]
    found = str(meta.get("title", "")).strip()
    if found and found.lower() != title.strip().lower():
        problems.append(f"front matter title is '{found}', the plan says '{title}'")
    return problems
