"""The whole path of one model call: journal replay, concurrency slot, cost budget, rate budget,
the provider, answer checks, settlement, journal record, accounting, retries."""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._clock import Clock
from .._states import CallOutcome
from .._tokens import estimate_tokens
from ..budget import Budgets, Demand
from ..errors import BadAnswer, BudgetExhausted, ModelCallError, RateLimited, RequestTimeout, TransientError
from ..journal import CallRecord, Journal
from ..providers import ModelReply, ModelRequest, Provider, Usage
from ._autotune import ConcurrencyTuner, TunerSettings
from ._calls import CallResult, CallSpec, CallStats, Exchange, ProviderSource, RetryPolicy, call_key
from ._ledger import Ledger
from ._limiter import Limiter
from ._outage import OutageBook, OutageGate, OutageSettings, OutageTooLong, Ticket, Verdict
from ._stop import Stopped, StopSignal
from ._streak import FailureStreak
from ._timeouts import AdaptiveTimeouts, TimeoutSettings

if TYPE_CHECKING:
    pass

__all__ = ["ModelCaller"]

T = TypeVar("T")

# The timeout of the request being sent in this task, set per attempt from the adaptive timeouts.
_request_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "shoal_request_timeout", default=None
)


@dataclass(slots=True)
class _Tally:
    """What one call's tries have met so far."""

    own: int = 0  # the call's own failures: bad answers, errors while the provider is healthy
    limited: int = 0  # 429s
    provider: int = 0  # transient failures judged the provider's (many calls failing)
    outage: int = 0  # failures during an outage: bounded by max_outage_s, not by a count

    @property
    def sent(self) -> int:
        return self.own + self.limited + self.provider + self.outage


class ModelCaller:
    def __init__(
        self,
        *,
        job: str,
        run_id: int,
        providers: ProviderSource,
        budgets: Budgets,
        journal: Journal,
        ledger: Ledger,
        stop: StopSignal,
        policy: RetryPolicy,
        concurrency: int,
        clock: Clock,
        rng: random.Random,
        streak: FailureStreak | None = None,
        outage_settings: OutageSettings | None = None,
        timeout_settings: TimeoutSettings | None = None,
        auto_concurrency: TunerSettings | None = None,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self._providers = providers
        self._budgets = budgets
        self._journal = journal
        self._ledger = ledger
        self._stop = stop
        self._policy = policy
        self._slots = Limiter(concurrency)
        self.concurrency = concurrency  # the most requests ever in flight (auto: its maximum)
        self._clock = clock
        self._rng = rng
        self._streak = streak
        self.outages = OutageBook(
            settings=outage_settings or OutageSettings(), clock=clock, rng=rng, on_event=self._event
        )
        self.timeouts = AdaptiveTimeouts(
            timeout_settings or TimeoutSettings(ceiling_s=policy.request_timeout_s),
            on_adapted=lambda detail: self._event("timeout_adapted", detail),
        )
        self.tuner = (
            ConcurrencyTuner(
                self._slots,
                auto_concurrency,
                clock=clock,
                on_change=lambda detail: self._event("concurrency", detail),
            )
            if auto_concurrency is not None
            else None
        )
        self._validators: dict[str, Any] = {}  # jsonschema validators, imported with the first schema
        self._stop_waiter: asyncio.Future[None] | None = None
        self.stats = CallStats()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now (moves under auto concurrency)."""
        return self._slots.limit

    async def call(self, spec: CallSpec) -> CallResult:
        """Send one plain request (or replay it from the journal), with the job's retries."""
        request = spec.request
        provider = self._providers.get(spec.model.provider)
        exchange = Exchange(
            scope=spec.scope,
            stage=spec.stage,
            model=spec.model,
            key=call_key(spec),
            demand=Demand(estimate_tokens(*(m.content for m in request.messages)), request.max_tokens),
            send=lambda: self._send(provider, request),
            check=lambda reply: self._check(reply, request),
        )
        return await self.exchange(exchange)

    async def exchange(self, spec: Exchange) -> CallResult:
        """The whole path for any request shape: replay, slot, cost, rate budget, send, check, record."""
        key = spec.key
        stored = self._journal.find_call(key)
        if stored is not None:
            usage = Usage(stored.input_tokens, stored.output_tokens, stored.cached_tokens)
            self._ledger.record(spec.model.key, spec.stage, usage, stored.cost_usd, replayed=True)
            self.stats.replayed += 1
            return CallResult(
                key,
                stored.response,
                usage,
                stored.cost_usd,
                replayed=True,
                attempts=0,
                stored=stored.response,
            )
        tally = _Tally()
        gate = self.outages.for_provider(spec.model.provider)
        while True:
            self._stop.check()  # while draining, nothing new is sent
            ticket = await self._admit(gate, key)
            try:
                reply, cost = await self._attempt(spec, tally.sent + 1)
            except ModelCallError as exc:
                delay = self._after_failure(spec, exc, gate, ticket, tally)
                if delay is None:
                    self.stats.failed += 1
                    raise
                if delay > 0:
                    await self._interruptible(self._clock.sleep(delay))
                continue
            except BaseException:
                gate.abandon(ticket)
                raise
            gate.answered(ticket)
            return CallResult(
                key,
                reply.text,
                reply.usage,
                cost,
                replayed=False,
                attempts=tally.sent + 1,
                stored=reply.text if reply.stored is None else reply.stored,
                response=reply.response,
            )

    def _after_failure(
        self, spec: Exchange, exc: ModelCallError, gate: OutageGate, ticket: Ticket, tally: _Tally
    ) -> float | None:
        """Whose failure it was, what it counts against; the delay before the next try, None: give up.

        Transient failures are judged by the provider's outage gate: only those the call meets while
        the provider answers others spend the call's attempts.
        """
        policy = self._policy
        verdict: Verdict | None = None
        if isinstance(exc, TransientError):
            verdict = gate.failed(ticket, str(exc))
            if exc.status == 503 and verdict is not Verdict.OUTAGE:
                self._congested()  # overloaded; while the server is down there is nothing to tune
        else:
            gate.answered(ticket)  # any answer, even a refusal, shows the provider is up
        if isinstance(exc, RateLimited):
            self._congested()
            tally.limited += 1
            return None if tally.limited >= policy.max_rate_limited else 0.0  # the budget pauses
        if verdict is Verdict.OUTAGE:
            tally.outage += 1
            delay = 0.0  # the gate does the waiting
        elif verdict is Verdict.FLAKY:
            tally.provider += 1
            if tally.provider >= policy.max_provider_failures:
                return None
            delay = self._backoff(tally.provider, exc)
        elif isinstance(exc, TransientError | BadAnswer):
            tally.own += 1
            if tally.own >= policy.max_attempts:
                return None
            delay = self._backoff(tally.own, exc)
        else:
            return None  # permanent: retrying cannot help
        self.stats.retries += 1
        detail: dict[str, Any] = {"scope": spec.scope, "error": str(exc)}
        if verdict is not None:
            detail["counted"] = verdict.value
        self._journal.event(self.run_id, "retry", spec.model.key, **detail)
        return delay

    def _congested(self) -> None:
        if self.tuner is not None:
            self.tuner.congested()

    async def _admit(self, gate: OutageGate, key: str) -> Ticket:
        """Through the provider's outage gate; an outage past max_outage_s drains the job."""
        if not gate.down:
            return gate.ticket(key)
        try:
            ticket: Ticket = await self._interruptible(gate.admit(key))
        except OutageTooLong as exc:
            self._stop.drain(str(exc))
            raise Stopped(str(exc)) from None
        return ticket

    async def _reserve(self, model_key: str, demand: Demand) -> float:
        """The call's worst-case cost, reserved; past the cost budget the engine drains the job itself."""
        try:
            reservation = self._ledger.try_reserve(model_key, demand.input_tokens, demand.max_tokens)
            if reservation is None:  # near the cost limit: wait for the calls in flight to settle
                reservation = await self._interruptible(
                    self._ledger.reserve(model_key, demand.input_tokens, demand.max_tokens)
                )
        except BudgetExhausted as exc:
            self._stop.drain(f"budget: {exc}")
            raise Stopped(str(exc)) from None
        return reservation

    def _event(self, kind: str, detail: dict[str, Any]) -> None:
        """A journal event from the outage gates, the timeouts or the tuner ("model" goes to its column)."""
        fields = dict(detail)
        model = fields.pop("model", None)
        self._journal.event(self.run_id, kind, model, **fields)

    def _backoff(self, attempt: int, exc: ModelCallError) -> float:
        delay = min(self._policy.backoff_max_s, self._policy.backoff_base_s * 2 ** (attempt - 1))
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return float(delay * self._rng.uniform(0.5, 1.5))

    async def _interruptible(self, awaitable: Awaitable[T]) -> T:
        """Await something that has not sent anything yet; give up if the job starts draining."""
        if self._stop_waiter is None:
            self._stop_waiter = asyncio.ensure_future(self._stop.wait())
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        waiter: asyncio.Future[None] = self._stop_waiter
        racers: set[asyncio.Future[Any]] = {task, waiter}
        done, _ = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise Stopped(self._stop.reason or "stopped")

    async def _attempt(self, spec: Exchange, attempt: int) -> tuple[ModelReply, float]:
        key = spec.key
        model_key = spec.model.key
        demand = spec.demand
        budget = self._budgets.for_model(model_key)
        queued_at = self._clock.now()
        if self._slots.locked():
            self.stats.waiting += 1
            try:
                await self._interruptible(self._slots.acquire())
            finally:
                self.stats.waiting -= 1
        else:
            await self._slots.acquire()  # a free slot is taken without waiting
        try:
            reservation = await self._reserve(model_key, demand)
            try:
                permit = budget.try_acquire(demand)
                if permit is None:
                    permit = await self._interruptible(budget.acquire(demand))
                started = self._clock.now()
                self.stats.in_flight += 1
                self.stats.sent += 1
                try:
                    reply = await self._send_timed(spec)
                except ModelCallError as exc:
                    budget.settle(permit, None)
                    if isinstance(exc, RateLimited):
                        self.stats.rate_limited += 1
                        budget.rate_limited(exc.retry_after)
                        self._journal.event(
                            self.run_id, "rate_limited", model_key, retry_after=exc.retry_after
                        )
                    await self._record(
                        spec, key, attempt, exc.outcome, started, queued_at, status=exc.status, error=str(exc)
                    )
                    raise
                finally:
                    self.stats.in_flight -= 1
                budget.observe(reply.rate, permit)
                budget.settle(permit, reply.usage)
                cost = self._ledger.cost_of(model_key, reply.usage)
                problem = spec.check(reply)
                await self._record(
                    spec,
                    key,
                    attempt,
                    problem.outcome if problem else CallOutcome.OK,
                    started,
                    queued_at,
                    status=200,
                    reply=reply,
                    cost=cost,
                    error=str(problem) if problem else None,
                )
                self._ledger.record(model_key, spec.stage, reply.usage, cost)
                if problem is not None:
                    raise problem
                return reply, cost
            finally:
                self._ledger.release(reservation)
        finally:
            self._slots.release()

    async def _send(self, provider: Provider, request: ModelRequest) -> ModelReply:
        return await self.with_timeout(provider.complete(request), request.model)

    async def _send_timed(self, spec: Exchange) -> ModelReply:
        """Send under the timeout learned for requests like this one; feed the outcome back."""
        model_key, max_tokens = spec.model.key, spec.demand.max_tokens
        token = _request_timeout.set(self.timeouts.timeout_for(model_key, max_tokens))
        started = self._clock.now()
        answers = self.timeouts.answers(model_key, max_tokens)
        try:
            reply = await spec.send()
        except RequestTimeout:
            meanwhile = self.timeouts.answers(model_key, max_tokens) > answers
            self.timeouts.timed_out(model_key, max_tokens, answered_meanwhile=meanwhile)
            raise
        finally:
            _request_timeout.reset(token)
        self.timeouts.observe(model_key, max_tokens, self._clock.now() - started)
        if self.tuner is not None:
            self.tuner.completed()
        return reply

    async def with_timeout(self, awaitable: Awaitable[T], model: str) -> T:
        """The request timeout (adaptive, at most request_timeout_s), as a RequestTimeout: transient."""
        timeout = _request_timeout.get() or self._policy.request_timeout_s
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise RequestTimeout(f"no answer within {timeout:g}s", model=model) from None

    def _check(self, reply: ModelReply, request: ModelRequest) -> BadAnswer | None:
        """An empty answer or one cut off by the token limit is a failure, never a result."""
        if reply.tool_call is not None:  # a rehearsal script meant for an agent matched a plain call
            return BadAnswer(
                f"the reply calls tool {reply.tool_call.tool!r}, but this call has no tools "
                "(a rehearsal 'call' entry matched it: give it a 'reply')",
                model=request.model,
                reason=CallOutcome.INVALID,
            )
        if reply.finish_reason == "length":
            return BadAnswer(
                "answer cut off by the token limit", model=request.model, reason=CallOutcome.TRUNCATED
            )
        if not reply.text.strip():
            return BadAnswer("empty answer", model=request.model, reason=CallOutcome.EMPTY)
        if request.schema is not None:
            return self._check_schema(reply.text, request.schema, request.model)
        return None

    def _check_schema(self, text: str, schema: Mapping[str, Any], model: str) -> BadAnswer | None:
        try:
            document = json.loads(text)
        except ValueError as exc:
            return BadAnswer(f"answer is not JSON: {exc}", model=model, reason=CallOutcome.INVALID)
        schema_id = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(schema_id)
        if validator is None:
            from jsonschema import Draft202012Validator  # about 0.1 s to import: only jobs with a schema

            validator = self._validators[schema_id] = Draft202012Validator(dict(schema))
        error = next(iter(validator.iter_errors(document)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return BadAnswer(
                f"answer does not match the schema at {where}: {error.message}",
                model=model,
                reason=CallOutcome.INVALID,
            )
        return None

    async def _record(
        self,
        spec: Exchange,
        key: str,
        attempt: int,
        outcome: CallOutcome,
        started: float,
        queued_at: float,
        *,
        status: int | None,
        reply: ModelReply | None = None,
        cost: float = 0.0,
        error: str | None = None,
    ) -> None:
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        if self._streak is not None:
            self._streak.observe(outcome, status, error)
        usage = reply.usage if reply is not None else Usage()
        record = CallRecord(
            key=key,
            job=self.job,
            run_id=self.run_id,
            scope=spec.scope,
            stage=spec.stage,
            model=spec.model.key,
            outcome=outcome,
            attempt=attempt,
            status=status,
            response=(reply.text if reply.stored is None else reply.stored) if reply is not None else None,
            finish_reason=reply.finish_reason if reply is not None else None,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=cost,
            latency_s=self._clock.now() - started,
            queue_s=started - queued_at,
            error=error,
            created_at=self._clock.wall(),
        )
        await self._journal.record_call(record)

    async def aclose(self) -> None:
        if self._stop_waiter is not None and not self._stop_waiter.done():
            self._stop_waiter.cancel()
