"""The journal: a SQLite record of every call, item state and agent session in a workspace."""

from .._states import CallOutcome
from ._lock import WorkspaceLock
from ._records import CallRecord, ItemStatus, RunStatus, StoredCall
from ._store import Journal
from ._usage import UsageRow, read_usage

__all__ = [
    "CallOutcome",
    "CallRecord",
    "ItemStatus",
    "Journal",
    "RunStatus",
    "StoredCall",
    "UsageRow",
    "WorkspaceLock",
    "read_usage",
]
