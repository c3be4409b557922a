"""A full disk during a run: not a crash but a stop. What was written before is kept (the output's
torn last line is cut off on resume, the journal rolls back its last group), so the user frees
space and runs the same command again."""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["disk_full"]

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_SQLITE_FULL = 13


def disk_full(exc: BaseException) -> str | None:
    """'disk full: <detail>' when `exc`, or an error it wraps or was raised during, is a full disk."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            where = f" writing {current.filename}" if current.filename else ""
            return f"disk full{where} ({current.strerror or errno.errorcode.get(current.errno or 0, '')})"
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(current)
        ):
            return f"disk full writing the journal ({current})"
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None
