"""The journal: a SQLite record of every call, item state and agent session in a workspace."""

from ._batches import BatchBook, BatchRow, BatchState, read_batches
from ._lock import WorkspaceLock
from ._records import CallRecord, ItemStatus, RunStatus, StoredCall
from ._store import Journal
from ._usage import UsageRow, read_usage

__all__ = [
    "BatchBook",
    "BatchRow",
    "BatchState",
    "CallRecord",
    "ItemStatus",
    "Journal",
    "RunStatus",
    "StoredCall",
    "UsageRow",
    "WorkspaceLock",
    "read_batches",
    "read_usage",
]
