"""Cancelling open batches: `shoal cancel` and `--cancel-batches`."""

from __future__ import annotations

import time

from ..journal import BatchBook, BatchRow, BatchState
from ._batch import BatchProviderSource

__all__ = ["cancel_open_batches"]


async def cancel_open_batches(
    job_name: str | None, book: BatchBook, adapters: BatchProviderSource
) -> list[BatchRow]:
    """Ask the provider to cancel every open batch (of one job, or all); their rows become `cancelling`.

    A later run of the job still collects what those batches finished before the cancel.
    """
    cancelled: list[BatchRow] = []
    for row in book.rows(job_name):
        if row.state in (BatchState.OPEN, BatchState.SUBMITTING) and row.batch_id is not None:
            await adapters.get(row.provider).cancel(row.batch_id)
            await book.set_state(row.tag, BatchState.CANCELLING, time.time())
            cancelled.append(row)
    return cancelled
