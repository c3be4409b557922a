"""Ship: move a staged file into the output directory and register it, each step idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunError
from ._files import write_atomic

__all__ = ["register", "registry_problem", "ship_file"]

_PATH_KEYS = ("path", "file", "filename", "href", "url", "src")


def ship_file(staged: Path, target: Path) -> None:
    """Copy the staged draft to its target atomically (a rerun after a crash rewrites the same bytes)."""
    write_atomic(target, staged.read_text(encoding="utf-8"))


def _entries(document: Any) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for value in document.values():
            if isinstance(value, list) and (not value or isinstance(value[0], dict)):
                return value
    return None


def registry_problem(config: Path) -> str | None:
    """Why register() could not add entries to `config` (checked before a job starts), or None."""
    if not config.exists():
        return None
    try:
        document: Any = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read: {exc}"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    if _entries(document) is None:
        return "has no list of entries to register files in"
    return None


def register(config: Path, *, path: str, meta: dict[str, Any]) -> bool:
    """Append an entry shaped like the existing ones; False if the path is already registered."""
    try:
        document: Any = json.loads(config.read_text(encoding="utf-8")) if config.exists() else []
    except ValueError as exc:
        raise RunError(f"{config}: not valid JSON, cannot register {path}: {exc}") from None
    entries = _entries(document)
    if entries is None:
        raise RunError(f"{config}: found no list of entries to register {path} in")
    for entry in entries:
        if isinstance(entry, dict) and any(entry.get(k) == path for k in _PATH_KEYS):
            return False
    shape = next((e for e in entries if isinstance(e, dict)), None)
    if shape is None:
        entry = {"path": path, **{k: _plain(v) for k, v in meta.items()}}
    else:
        entry = {}
        for key in shape:
            if key in _PATH_KEYS:
                entry[key] = path
            elif key in meta:
                entry[key] = _plain(meta[key])
        if not any(k in _PATH_KEYS for k in entry):
            entry["path"] = path
    entries.append(entry)
    write_atomic(config, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return True


def _plain(value: Any) -> Any:
    """Front matter values as JSON can hold them (YAML dates become strings)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
