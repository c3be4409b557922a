"""Publishing the live state to the journal every second, for views in other processes."""

from __future__ import annotations

from collections.abc import Sequence

from .._clock import Clock
from ..engine import Job
from ._snapshot import capture

__all__ = ["SnapshotPublisher"]


class SnapshotPublisher:
    """Writes `capture(job)` to the journal's snapshots table every `every_s` seconds.

    Writes are queued (`write_nowait`): publishing never waits for the disk, and a journal that
    has failed or closed stops the publisher without disturbing the job.
    """

    def __init__(
        self, job: Job, *, stages: Sequence[str] = (), every_s: float = 1.0, clock: Clock | None = None
    ) -> None:
        self.job = job
        self.stages = tuple(stages)
        self.every_s = every_s
        self._clock = clock or job.clock
        self.published = 0

    def publish(self) -> bool:
        """Queue one snapshot now; False if the journal no longer takes writes."""
        try:
            self.job.journal.snapshot(self.job.run_id, capture(self.job, stages=self.stages))
        except RuntimeError:  # the journal is closed or its writer failed: the job reports that
            return False
        self.published += 1
        return True

    async def run(self) -> None:
        """Publish until cancelled (or until the journal stops taking writes)."""
        while self.publish():
            await self._clock.sleep(self.every_s)
