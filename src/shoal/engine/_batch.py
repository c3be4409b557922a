"""A batch round: the calls of one round sent through the providers' batch APIs, at half the price.

The round replays what the journal holds, reserves each batch's worst case on the cost budget,
journals the batch (its call keys first, then its provider id) before trusting the submission,
polls, and journals every answer as a call under the same key an online call would have, so
validation, replay and everything after the round are the same as online. Requests that fail or
expire go into a next batch (bounded attempts), or online with `fallback = "online"`.

Durability: a row is journaled as `submitting` before the provider is asked to create the batch.
A run that finds such a row (killed between "created" and the journal write of the id) lists the
provider's batches for it (the shoal tag in OpenAI's metadata; creation time and size at
Anthropic, which keeps no metadata) and collects it, instead of submitting again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._states import CallOutcome
from .._tokens import estimate_tokens
from ..config import BatchSettings
from ..errors import BudgetExhausted, ModelCallError, PermanentError, RateLimited, TransientError
from ..journal import BatchBook, BatchRow, BatchState, CallRecord
from ..providers._batch_types import BatchFailure, BatchProvider, BatchTag, ItemOutcome
from ..providers._types import ModelReply, Usage
from ._batch_account import BatchAccountError, account_error
from ._calls import CallResult, CallSpec, call_key
from ._job import Job

__all__ = ["BatchAccountError", "BatchProviderSource", "BatchRound", "BatchRoundResult", "OpenBatch"]

_SUBMIT_FAILURES = 3  # transient failures creating one round's batches before the round gives up
_POLL_FAILURES = 10  # transient failures checking or downloading batches, in a row, before it gives up


class BatchProviderSource(Protocol):
    def get(self, provider: str) -> BatchProvider: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class OpenBatch:
    """What views show of one open batch."""

    provider: str
    batch_id: str | None
    model: str
    requests: int
    state: str
    counts: dict[str, int]
    created_at: float  # unix time


@dataclass(slots=True)
class BatchRoundResult:
    results: dict[str, CallResult] = field(default_factory=dict)  # by call key
    failed: dict[str, ModelCallError] = field(default_factory=dict)  # batch attempts spent
    online: list[str] = field(default_factory=list)  # keys to send online (fallback "online")
    stopped: str | None = None  # interrupted or stopped by the cost budget; open batches keep running
    batches: int = 0  # batches submitted by this run


class BatchRound:
    """Runs the calls of one round through batch APIs; one instance per job run."""

    def __init__(
        self,
        job: Job,
        adapters: BatchProviderSource,
        settings: BatchSettings,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._job = job
        self._adapters = adapters
        self._settings = settings
        self._book = BatchBook(job.journal)
        self._wall = wall
        self._reservations: dict[str, float] = {}  # tag -> reserved dollars
        self.open: dict[str, OpenBatch] = {}  # tag -> live view of the batches this run watches
        self._stop_waiter: asyncio.Future[None] | None = None
        self._submit_failures = 0
        self._poll_failures = 0  # status checks or downloads in a row that failed transiently

    async def run(self, specs: Sequence[CallSpec], round_name: str) -> BatchRoundResult:
        job = self._job
        await self._book.ensure()
        result = BatchRoundResult()
        by_key: dict[str, CallSpec] = {}
        for spec in specs:
            by_key.setdefault(call_key(spec), spec)
        self._replay(by_key, result)
        last_error: dict[str, ModelCallError] = {}
        try:
            while True:
                rows = self._book.rows(job.name, round_name)
                await self._adopt(rows, by_key)
                rows = self._book.rows(job.name, round_name)
                open_rows = [r for r in rows if r.state.open and r.batch_id is not None]
                pending, attempts = self._classify(by_key, rows, result, last_error)
                if pending and job.stop.running and result.stopped is None:
                    submitted = await self._try_submit(
                        pending, by_key, round_name, attempts, open_rows, result
                    )
                    if submitted is None:
                        continue  # a batch may have been created all the same: look for it first
                    if submitted:
                        result.batches += submitted
                        continue  # re-read the journal: the new rows are open now
                if not open_rows:
                    break
                if not job.stop.running:
                    result.stopped = result.stopped or job.stop.reason or "stopped"
                    break
                await self._wait_and_collect(open_rows, by_key, result, last_error)
        finally:
            if self._stop_waiter is not None and not self._stop_waiter.done():
                self._stop_waiter.cancel()
            for tag in list(self._reservations):
                job.ledger.release(self._reservations.pop(tag))
        return result

    def _replay(self, by_key: dict[str, CallSpec], result: BatchRoundResult) -> None:
        """Calls the journal already holds (answered online or in an earlier run's batch)."""
        job = self._job
        for key, spec in by_key.items():
            stored = job.journal.find_call(key)
            if stored is not None:
                usage = Usage(stored.input_tokens, stored.output_tokens, stored.cached_tokens)
                job.ledger.record(spec.model.key, spec.stage, usage, stored.cost_usd, replayed=True)
                job.caller.stats.replayed += 1
                result.results[key] = CallResult(key, stored.response, usage, stored.cost_usd, True, 0)

    def _classify(
        self,
        by_key: dict[str, CallSpec],
        rows: list[BatchRow],
        result: BatchRoundResult,
        last_error: dict[str, ModelCallError],
    ) -> tuple[list[str], Counter[str]]:
        """The calls to submit now, and how many collected batches each has been through.

        A call whose batch attempts are spent is failed, or handed to the online path.
        """
        covered = {k for r in rows if r.state.open for k in r.keys}
        attempts = Counter(k for r in rows if r.state is BatchState.COLLECTED for k in r.keys)
        settled = result.results.keys() | result.failed.keys() | set(result.online) | covered
        pending: list[str] = []
        for key in by_key:
            if key in settled:
                continue
            if attempts[key] < self._settings.max_attempts:
                pending.append(key)
            elif self._settings.fallback == "online":
                result.online.append(key)
            else:
                result.failed[key] = last_error.get(key) or TransientError(
                    f"no answer in {attempts[key]} batch(es)", model=by_key[key].model.key
                )
        return pending, attempts

    # -- submitting -----------------------------------------------------------------------

    async def _adopt(self, rows: list[BatchRow], by_key: dict[str, CallSpec]) -> None:
        """Rows journaled as submitting: find their batch at the provider, else mark them abandoned."""
        for row in rows:
            if row.state is BatchState.SUBMITTING:
                adapter = self._adapters.get(row.provider)
                tag = BatchTag(row.job, row.round, row.tag, row.created_at, len(row.keys))
                known = {r.batch_id for r in self._book.rows() if r.batch_id is not None}
                found = [batch_id for batch_id in await adapter.find(tag) if batch_id not in known]
                if len(found) > 1:
                    raise PermanentError(
                        f"{len(found)} {row.provider} batches ({', '.join(found)}) may be the one this job "
                        f"submitted for round {row.round}; cancel the extra ones at the provider and rerun",
                        model=row.model,
                    )
                if found:
                    await self._book.opened(row.tag, found[0], self._wall())
                    self._job.journal.event(self._job.run_id, "batch_adopted", row.model, batch_id=found[0])
                else:
                    await self._book.set_state(row.tag, BatchState.ABANDONED, self._wall())
                    held = self._reservations.pop(row.tag, None)
                    if held is not None:
                        self._job.ledger.release(held)
                    continue
            if row.state.open and row.tag not in self._reservations:
                # Submitted by an earlier run: its money may still be spent.
                self._reservations[row.tag] = self._job.ledger.reserve_batch(
                    row.worst_usd, what="", force=True
                )

    async def _try_submit(
        self,
        pending: list[str],
        by_key: dict[str, CallSpec],
        round_name: str,
        attempts: Counter[str],
        open_rows: list[BatchRow],
        result: BatchRoundResult,
    ) -> int | None:
        """Batches submitted; 0 when the cost budget stops the round, None after a transient failure."""
        try:
            return await self._submit(pending, by_key, round_name, attempts, open_rows)
        except BudgetExhausted as exc:
            result.stopped = f"budget: {exc}"
            return 0
        except TransientError:
            self._submit_failures += 1
            if self._submit_failures >= _SUBMIT_FAILURES:
                raise
            await self._sleep(self._settings.poll_s)
            return None

    async def _submit(
        self,
        pending: list[str],
        by_key: dict[str, CallSpec],
        round_name: str,
        attempts: Counter[str],
        open_rows: list[BatchRow],
    ) -> int:
        """Split the pending calls into batches by model and limits, and submit what the queue takes."""
        job = self._job
        by_model: dict[str, list[str]] = {}
        for key in pending:
            by_model.setdefault(by_key[key].model.key, []).append(key)
        submitted = 0
        for model_key, keys in by_model.items():
            ref = by_key[keys[0]].model
            adapter = self._adapters.get(ref.provider)
            queued = sum(r.input_tokens for r in open_rows if r.model == model_key)
            for chunk, lines, tokens, worst in self._chunks(adapter, keys, by_key, model_key):
                if not job.stop.running:
                    return submitted  # interrupted: what is submitted stays open, nothing more starts
                limit = self._settings.queue_tokens
                if limit is not None and queued + tokens > limit and queued > 0:
                    break  # the provider's queue is full for this model: wait for a batch to end
                attempt = 1 + max(attempts[k] for k in chunk)
                now = self._wall()
                what = f"a batch of {len(chunk)} {model_key} request(s)"
                reserved = job.ledger.reserve_batch(worst, what=what)
                tag = uuid.uuid4().hex
                row = BatchRow(
                    tag=tag,
                    job=job.name,
                    round=round_name,
                    attempt=attempt,
                    provider=ref.provider,
                    model=model_key,
                    batch_id=None,
                    state=BatchState.SUBMITTING,
                    keys=chunk,
                    worst_usd=worst,
                    input_tokens=tokens,
                    created_at=now,
                    updated_at=now,
                )
                self._reservations[tag] = reserved
                await self._book.intend(row)  # on disk before the provider hears of it
                try:
                    batch_id = await adapter.submit(
                        ref.name, lines, BatchTag(job.name, round_name, tag, now, len(chunk))
                    )
                except PermanentError:
                    await self._book.set_state(tag, BatchState.ABANDONED, self._wall())
                    raise
                await self._book.opened(tag, batch_id, self._wall())
                job.journal.event(
                    job.run_id,
                    "batch_submitted",
                    model_key,
                    batch_id=batch_id,
                    round=round_name,
                    attempt=attempt,
                    requests=len(chunk),
                    worst_usd=worst,
                )
                queued += tokens
                submitted += 1
        return submitted

    def _chunks(
        self, adapter: BatchProvider, keys: list[str], by_key: dict[str, CallSpec], model_key: str
    ) -> list[tuple[list[str], list[bytes], int, float]]:
        """(keys, request lines, input tokens, worst-case dollars) per batch, within the limits."""
        max_requests = min(self._settings.max_requests or adapter.max_requests, adapter.max_requests)
        max_bytes = min(self._settings.max_bytes or adapter.max_bytes, adapter.max_bytes)
        max_tokens = self._settings.queue_tokens
        chunks: list[tuple[list[str], list[bytes], int, float]] = []
        current: list[str] = []
        lines: list[bytes] = []
        size = tokens = 0
        worst = 0.0
        for key in keys:
            request = by_key[key].request
            line = adapter.request_line(key, request)
            needed = estimate_tokens(*(m.content for m in request.messages))
            full = len(current) >= max_requests or size + len(line) + 1 > max_bytes
            if max_tokens is not None and tokens + needed > max_tokens:
                full = True
            if current and full:
                chunks.append((current, lines, tokens, worst))
                current, lines, size, tokens, worst = [], [], 0, 0, 0.0
            current.append(key)
            lines.append(line)
            size += len(line) + 1
            tokens += needed
            worst += self._job.ledger.batch_worst_case(model_key, needed, request.max_tokens)
        if current:
            chunks.append((current, lines, tokens, worst))
        return chunks

    # -- waiting and collecting -----------------------------------------------------------

    async def _wait_and_collect(
        self,
        open_rows: list[BatchRow],
        by_key: dict[str, CallSpec],
        result: BatchRoundResult,
        last_error: dict[str, ModelCallError],
    ) -> None:
        try:
            for row in await self._poll(open_rows):
                await self._collect(row, by_key, result, last_error)
            self._poll_failures = 0
        except (TransientError, RateLimited):
            # The batches keep running at the provider: look again after a pause.
            self._poll_failures += 1
            if self._poll_failures >= _POLL_FAILURES:
                raise
            await self._sleep(self._settings.poll_s)

    async def _poll(self, rows: list[BatchRow]) -> list[BatchRow]:
        """Check each open batch until at least one has ended (or the job stops); the ended ones."""
        job = self._job
        while True:
            ended: list[BatchRow] = []
            for row in rows:
                assert row.batch_id is not None
                status = await self._adapters.get(row.provider).status(row.batch_id)
                counts = dict(status.counts)
                self.open[row.tag] = OpenBatch(
                    row.provider, row.batch_id, row.model, len(row.keys), status.state, counts, row.created_at
                )
                if counts != row.counts:
                    row.counts = counts
                    self._book.progress(row.tag, counts, self._wall())
                    job.journal.event(
                        job.run_id, "batch_progress", row.model, batch_id=row.batch_id, **counts
                    )
                if status.ended:
                    ended.append(row)
            if ended or not job.stop.running:
                return ended
            await self._sleep(self._settings.poll_s)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early if the job starts to stop."""
        if self._stop_waiter is None:
            self._stop_waiter = asyncio.ensure_future(self._job.stop.wait())
        sleeper = asyncio.ensure_future(self._job.clock.sleep(seconds))
        racers: set[asyncio.Future[Any]] = {sleeper, self._stop_waiter}
        await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        if not sleeper.done():
            sleeper.cancel()

    async def _collect(
        self,
        row: BatchRow,
        by_key: dict[str, CallSpec],
        result: BatchRoundResult,
        last_error: dict[str, ModelCallError],
    ) -> None:
        job = self._job
        assert row.batch_id is not None
        outcomes = await self._adapters.get(row.provider).results(row.batch_id)
        records: list[CallRecord] = []
        failures: list[BatchFailure] = []
        cancelled = False
        paid = online = 0.0  # what the answers cost, and what the same tokens cost online
        for key in row.keys:
            spec = by_key.get(key)
            outcome: ItemOutcome = outcomes.get(key) or BatchFailure(
                "no result in the batch's output", kind="error"
            )
            if spec is None:  # a call this run no longer makes (the input changed): nothing to keep
                continue
            if isinstance(outcome, ModelReply):
                cost = job.ledger.batch_cost_of(spec.model.key, outcome.usage)
                paid += cost
                online += job.ledger.cost_of(spec.model.key, outcome.usage)
                problem = job.caller._check(outcome, spec.request)
                records.append(
                    self._record(row, key, spec, outcome, cost, problem.outcome if problem else "ok", problem)
                )
                job.ledger.record(spec.model.key, spec.stage, outcome.usage, cost)
                if problem is None:
                    job.caller.stats.sent += 1
                    result.results[key] = CallResult(
                        key, outcome.text, outcome.usage, cost, False, row.attempt
                    )
                else:
                    last_error[key] = problem
                continue
            cancelled = cancelled or outcome.kind == "cancelled"
            failures.append(outcome)
            error = TransientError(
                f"batch {row.batch_id}: {outcome.message}", model=spec.model.name, status=outcome.status
            )
            last_error[key] = error
            records.append(self._record(row, key, spec, None, 0.0, f"batch_{outcome.kind}", error))
        for record in records:
            await job.journal.record_call(record)
        state = (
            BatchState.CANCELLED if row.state is BatchState.CANCELLING or cancelled else BatchState.COLLECTED
        )
        await self._book.set_state(row.tag, state, self._wall())
        job.journal.event(
            job.run_id,
            "batch_collected",
            row.model,
            batch_id=row.batch_id,
            succeeded=len(row.keys) - len(failures),
            failed=len(failures),
            cost_usd=round(paid, 8),
            online_usd=round(online, 8),
        )
        self.open.pop(row.tag, None)
        reserved = self._reservations.pop(row.tag, None)
        if reserved is not None:
            job.ledger.release(reserved)
        self._check_account(row, failures)

    def _check_account(self, row: BatchRow, failures: list[BatchFailure]) -> None:
        """Most of the batch failed with one account-level error: stop, naming it."""
        error = account_error(row, failures, self._settings.account_error_share)
        if error is not None:
            raise error

    def _record(
        self,
        row: BatchRow,
        key: str,
        spec: CallSpec,
        reply: ModelReply | None,
        cost: float,
        outcome: str,
        error: ModelCallError | None,
    ) -> CallRecord:
        usage = reply.usage if reply is not None else Usage()
        return CallRecord(
            key=key,
            job=self._job.name,
            run_id=self._job.run_id,
            scope=spec.scope,
            stage=spec.stage,
            model=spec.model.key,
            outcome=CallOutcome(outcome),
            attempt=row.attempt,
            status=200 if reply is not None else (error.status if error else None),
            response=reply.text if reply is not None else None,
            finish_reason=reply.finish_reason if reply is not None else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=cost,
            latency_s=max(0.0, self._wall() - row.created_at),
            queue_s=0.0,
            error=str(error) if error is not None else None,
            created_at=self._wall(),
        )
