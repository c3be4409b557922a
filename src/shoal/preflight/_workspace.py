"""The workspace's state directory (.shoal/) and its journal, checked before a job opens them:
a file where the directory should be, or a journal that is not (or no longer) an SQLite
database, is one line that says how to move it aside, not a traceback."""

from __future__ import annotations

import fcntl
import shlex
import sqlite3
from pathlib import Path

from ..engine import StateDir
from ..errors import UsageError
from ..journal import check_readable

__all__ = ["check_workspace"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


def check_workspace(root: Path) -> None:
    state = StateDir(root).state_dir
    if state.exists() and not state.is_dir():
        raise UsageError(
            f"{state} is a file, but shoal keeps its journal in a directory of that name; "
            f"move it aside: mv {shlex.quote(str(state))} {shlex.quote(str(state))}.bak"
        )
    journal = state / "journal.db"
    if not journal.exists() or _held(state / "lock"):
        return  # a running job owns it: opening the job says "workspace busy"
    problem = _journal_problem(journal)
    if problem:
        aside = shlex.quote(f"{journal}.broken")
        raise UsageError(
            f"{journal}: {problem}; move it aside to start a fresh journal "
            f"(finished work in OUT files is still recognised): mv {shlex.quote(str(journal))} {aside}"
        )


def _held(lock: Path) -> bool:
    try:
        with lock.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _journal_problem(journal: Path) -> str | None:
    if journal.is_dir():
        return "is a directory, not a journal"
    try:
        with journal.open("rb") as handle:
            header = handle.read(_HEADER_SIZE)
        size = journal.stat().st_size
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if size == 0:
        return None  # an empty file: SQLite makes it a database
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter_valid = header[24:28] == header[92:96]
    # With a write-ahead log left by a killed run, SQLite recovers the pages from it: trust it.
    wal = journal.with_name(journal.name + "-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if counter_valid and pages and size < pages * page_size and not wal_pending:
        return f"truncated ({size:,} of {pages * page_size:,} bytes)"
    try:
        check_readable(journal)
    except sqlite3.DatabaseError as exc:
        return f"damaged ({exc})"
    return None
