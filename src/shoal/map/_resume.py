"""What a map job has done already: the journal's record of the lines it wrote, checked against
the output file, a few hundred records at a time so that memory does not grow with the job."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..journal import ItemStatus, Journal
from ._inputs import Record
from ._output import DigestSet, id_digest

__all__ = ["DoneCheck", "Reconciled"]

_BATCH = 500  # records whose journal state is read in one query
_WRITE_EVERY = 5_000  # journal rows per awaited write while reconciling


@dataclass(frozen=True, slots=True)
class Reconciled:
    already_done: int
    pending: int


class DoneCheck:
    """A record is done when the journal holds the digest of the line this job wrote for it and
    the output file still holds that line. A line with the same id that someone else wrote does
    not count, nor does a journal entry whose line is gone from the file.

    Neither the journal nor the file is held in memory: the file as 8 bytes a line
    (`DigestSet`), the journal read a batch of records at a time.
    """

    def __init__(self, journal: Journal, job_name: str, present: DigestSet) -> None:
        self._journal = journal
        self._job = job_name
        self.present = present

    def all_done(self, ids: DigestSet, total: int) -> bool:
        """Whether every record is done, from one streaming read of the journal's lines and the
        dataset's id fingerprints, without reading the dataset again (the no-op rerun)."""
        done = 0
        for item, digest in self._journal.iter_lines(self._job):
            if digest in self.present and id_digest(item) in ids:
                done += 1
        return done == total

    def _batches(self, records: Iterable[Record]) -> Iterator[list[tuple[Record, int | None]]]:
        """Records with the digest of the line the journal says this job wrote for them."""
        batch: list[Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= _BATCH:
                yield self._with_digests(batch)
                batch = []
        if batch:
            yield self._with_digests(batch)

    def _with_digests(self, batch: list[Record]) -> list[tuple[Record, int | None]]:
        digests = self._journal.line_digests(self._job, [record.id for record in batch])
        return [(record, digests.get(record.id)) for record in batch]

    async def reconcile(self, records: Iterable[Record]) -> Reconciled:
        """Count what is done, and mark every other record pending in the journal (forgetting
        lines that are gone from the file), before anything is sent."""
        done = pending = 0
        journal, job = self._journal, self._job
        writes: list[tuple[str, Any]] = []
        for batch in self._batches(records):
            for record, digest in batch:
                if digest is not None and digest in self.present:
                    done += 1
                    continue
                pending += 1
                writes.append(journal.item_write(job, record.id, ItemStatus.PENDING))
                if digest is not None:
                    writes.append(journal.line_forget(job, record.id))
            if len(writes) >= _WRITE_EVERY:
                await journal.write(writes)
                writes = []
        if writes:
            await journal.write(writes)
        return Reconciled(done, pending)

    def pending(self, records: Callable[[], Iterable[Record]]) -> Iterator[Record]:
        """The records not done, read lazily as the workers ask for them."""
        for batch in self._batches(records()):
            for record, digest in batch:
                if digest is None or digest not in self.present:
                    yield record
