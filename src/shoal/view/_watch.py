"""`watch_job`: the live terminal view and the snapshot publisher around a running job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from rich.console import Console

from ..engine import Job
from ._publisher import SnapshotPublisher
from ._terminal import TerminalView

__all__ = ["watch_job"]

_STOP_TIMEOUT_S = 5.0


@asynccontextmanager
async def watch_job(
    job: Job,
    *,
    stages: Sequence[str] = (),
    console: Console | None = None,
    publish_every_s: float = 1.0,
    refresh_s: float = 1.0,
    log_every_s: float = 5.0,
) -> AsyncIterator[TerminalView]:
    """Show `job` on stderr and publish its live state while the block runs; stop both cleanly
    (a last frame, a last snapshot) when it ends, so that a summary printed after it stands alone."""
    view = TerminalView(
        job,
        console=console or Console(stderr=True),
        stages=stages,
        refresh_s=refresh_s,
        log_every_s=log_every_s,
    )
    publisher = SnapshotPublisher(job, stages=stages, every_s=publish_every_s)
    publishing = asyncio.create_task(publisher.run(), name="shoal-snapshots")
    viewing = asyncio.create_task(view.run(), name="shoal-view")
    try:
        yield view
    finally:
        publishing.cancel()
        view.stop()
        try:
            await asyncio.wait_for(asyncio.shield(viewing), _STOP_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            viewing.cancel()
        except Exception:  # a view that failed must not hide the job's own outcome
            pass
        await asyncio.gather(publishing, viewing, return_exceptions=True)
        publisher.publish()  # the final state, for status, dashboard and report
