"""The journal: a SQLite record of every call, item state and agent session in a workspace."""

from ._lock import WorkspaceLock
from ._records import CallRecord, ItemStatus, RunStatus, StoredCall
from ._store import Journal

__all__ = ["CallRecord", "ItemStatus", "Journal", "RunStatus", "StoredCall", "WorkspaceLock"]
