"""Step paths: where each call sits in the workflow's call tree.

A path is built from the structure of the script (phase names, parallel item labels, agent names
or a hash of an agent's inputs), never from timing, so a rerun — or an edited script — finds the
same path for the same call. The current scope travels in a context variable, which asyncio
copies into every task that parallel() and pipeline() start.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

__all__ = ["ROOT_PHASE", "Scope", "current_scope", "digest", "in_scope", "item_label", "slug"]

ROOT_PHASE = "workflow"  # the accounting stage of work outside any phase()
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LABEL = 48


def digest(value: Any) -> str:
    """A stable short hash of a JSON-able value."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def slug(text: str, fallback: str = "step") -> str:
    """A safe path component: letters, digits, '.', '_' and '-', no leading dots."""
    cleaned = _UNSAFE.sub("-", text).strip("-.")
    if len(cleaned) > _MAX_LABEL:
        cleaned = cleaned[:_MAX_LABEL].rstrip("-.") + "~" + digest(text)[:6]
    return cleaned or fallback


def item_label(item: Any, index: int) -> str:
    """The path component for one item of parallel() or pipeline(): from the item itself where it
    can be named stably (so adding an item does not move the others), else its position."""
    if isinstance(item, bool) or item is None:
        return f"item-{index + 1}"
    if isinstance(item, str | int | float | PurePath):
        return slug(str(item), f"item-{index + 1}")
    if isinstance(item, BaseModel):
        return f"item-{digest(item.model_dump(mode='json'))[:8]}"
    if isinstance(item, dict | list | tuple):
        try:
            return f"item-{digest(json.loads(json.dumps(item)))[:8]}"
        except (TypeError, ValueError):
            pass
    return f"item-{index + 1}"


@dataclass(slots=True)
class Scope:
    path: str  # "" at the root
    phase: str = ROOT_PHASE
    _seen: dict[str, int] = field(default_factory=dict)

    def child(self, label: str) -> str:
        """A child path, unique within this scope: a repeated label gets ".2", ".3", ..."""
        count = self._seen.get(label, 0) + 1
        self._seen[label] = count
        name = label if count == 1 else f"{label}.{count}"
        return f"{self.path}/{name}" if self.path else name

    def fork(self, label: str, *, phase: str | None = None) -> Scope:
        return Scope(self.child(label), phase or self.phase)


_scope: ContextVar[Scope | None] = ContextVar("shoal_workflow_scope", default=None)


def current_scope() -> Scope:
    scope = _scope.get()
    if scope is None:
        scope = Scope("")
        _scope.set(scope)
    return scope


@contextmanager
def in_scope(scope: Scope) -> Iterator[Scope]:
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
