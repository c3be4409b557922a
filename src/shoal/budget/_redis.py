"""A rate budget shared by every process on the same API key, kept in Redis.

Rate limits belong to an API key, not to a process. `SharedBudget` keeps the buckets, the 429
pause, the AIMD share and the learned limits of one provider model on one key in a Redis hash;
every operation is one atomic Lua script (_lua.py) registered once and run by its hash, timed by
the Redis server's clock. The Redis key holds a short salted hash of the API key, never the key.

What stays in each process: the FIFO order of its own callers, the random spacing between its
grants, and its counts for the views. Header corrections are simpler than the in-process budget's
(_shadow.py): a response's reported deficit caps the shared level (never more room than the
provider says it has), and unused max_tokens come back only where `refunds_unused = true`.

A reservation is spent the moment it is granted (a token bucket holds nothing back), so a process
killed while its requests are out leaves no debt behind but what the provider counted anyway: the
shared buckets refill at the provider's rate, and every key expires after an hour unused.

Redis lost during a job: no request goes out without a permit; callers wait and reconnect with
backoff, and after `[budget] redis_timeout_s` the job drains (exit 3, resumable).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._types import RateSnapshot, Usage
from ..config import ModelLimits
from ._budget import Demand, Permit
from ._shadow import KINDS, read_kind

if TYPE_CHECKING:
    from ._redis_book import SharedBook

__all__ = ["SharedBudget"]

_TOLERANCE_S = 1e-6
_MAX_SLICE_S = 0.25


@dataclass(frozen=True, slots=True)
class _Reply:
    granted: bool
    wait: float
    processes: int
    factor: float
    paused_for: float
    rate_limited: int
    pauses: int
    limits: dict[str, float]
    granted_requests: float

    @classmethod
    def parse(cls, raw: list[Any]) -> _Reply:
        text = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
        limits = {kind: float(value) for kind, value in zip(KINDS, text[7:11], strict=True) if value}
        return cls(
            granted=text[0] == "1",
            wait=float(text[1] or 0),
            processes=int(text[2]),
            factor=float(text[3]),
            paused_for=float(text[4]),
            rate_limited=int(float(text[5])),
            pauses=int(float(text[6])),
            limits=limits,
            granted_requests=float(text[11] or 0),
        )


class SharedBudget:
    """The `RateBudget` of one provider model on one API key, shared through Redis."""

    def __init__(self, model_key: str, limits: ModelLimits, key: str, book: SharedBook) -> None:
        self.model_key = model_key
        self.redis_key = key
        self._book = book
        self.settings = book.settings
        self._clock = book.clock
        self._rng = book.rng
        self._configured = limits
        self.refunds_unused = limits.refunds_unused is True
        self.learning = not limits.configured
        self.limits_seen = False
        self._lock = asyncio.Lock()  # this process's callers in arrival order
        self._seeded = False
        # The last state Redis told us, for the views.
        self._limits: dict[str, float] = {}
        self._factor = 1.0
        self._paused_until = 0.0  # local clock
        self.rate_limited_count = 0  # 429s on this budget, every process
        self.pause_count = 0
        self.processes = 1
        self.granted_here = 0  # requests this process was granted
        self._first_grant: float | None = None
        self._last_grant = 0.0
        self._total_at_last_grant = 0.0
        self.processes_max = 1
        self._granted_total_start: float | None = None
        self._granted_total = 0.0
        self.corrections = 0

    # -- views ------------------------------------------------------------------------------

    def limits(self) -> dict[str, float]:
        return dict(self._limits)

    @property
    def factor(self) -> float:
        return self._factor

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock.now())

    @property
    def share(self) -> float | None:
        """This process's share of the requests granted on this budget from its start to its last grant."""
        if self._granted_total_start is None:
            return None
        total = self._total_at_last_grant - self._granted_total_start
        return None if total <= 0 else min(1.0, self.granted_here / total)

    @property
    def share_of_limit(self) -> float | None:
        """This process's requests per minute, first grant to last, as a share of the RPM limit."""
        rpm = self._limits.get("rpm")
        if rpm is None or self._first_grant is None or self.granted_here < 2:
            return None
        minutes = max(self._last_grant - self._first_grant, 1e-3) / 60.0
        return (self.granted_here - 1) / minutes / rpm

    def shared_view(self) -> dict[str, Any]:
        share, of_limit = self.share, self.share_of_limit
        return {
            "processes": self.processes,
            "processes_max": self.processes_max,
            "share": None if share is None else round(share, 4),
            "share_of_limit": None if of_limit is None else round(of_limit, 4),
        }

    def _take_reply(self, reply: _Reply) -> None:
        self.processes = max(1, reply.processes)
        self.processes_max = max(self.processes_max, self.processes)
        self._factor = reply.factor
        self._paused_until = max(self._paused_until, self._clock.now() + reply.paused_for)
        self.rate_limited_count = reply.rate_limited
        self.pause_count = reply.pauses
        self._limits = reply.limits
        self._granted_total = reply.granted_requests
        if self._granted_total_start is None:
            # Counted before this process's first grant (the reply of a grant includes it).
            self._granted_total_start = reply.granted_requests - (1 if reply.granted else 0)

    # -- Redis calls ------------------------------------------------------------------------

    def _configured_pairs(self) -> str:
        values = {kind: getattr(self._configured, kind) for kind in KINDS}
        return ",".join(f"{kind}={value}" for kind, value in values.items() if value is not None)

    async def _run(self, script: Any, *args: object) -> _Reply:
        if not self._seeded:
            raw = await self._book.run_script(
                self._book.scripts["beat"], self.redis_key, (self._configured_pairs(),)
            )
            self._seeded = True
            self._take_reply(_Reply.parse(raw))
        reply = _Reply.parse(await self._book.run_script(script, self.redis_key, args))
        self._take_reply(reply)
        return reply

    async def beat(self) -> None:
        """Tell Redis this process still uses the budget (and refresh the views' figures)."""
        await self._run(self._book.scripts["beat"], "")

    # -- RateBudget -------------------------------------------------------------------------

    def try_acquire(self, demand: Demand) -> Permit | None:
        return None  # every grant is Redis's decision: always through acquire()

    async def acquire(self, demand: Demand) -> Permit:
        """Wait until Redis grants the request against the shared buckets."""
        amounts = (1, demand.tokens, demand.input_tokens, demand.max_tokens)
        async with self._lock:
            while True:
                local_pause = self.paused_for
                if local_pause > _TOLERANCE_S:
                    await self._clock.sleep(min(local_pause + _TOLERANCE_S, _MAX_SLICE_S))
                    continue
                try:
                    reply = await self._run(self._book.scripts["acquire"], *amounts)
                except self._book.redis_errors as exc:
                    await self._book.lost(exc)
                    continue
                self._book.found()
                if reply.granted:
                    break
                await self._clock.sleep(min(reply.wait + _TOLERANCE_S, _MAX_SLICE_S))
            self.granted_here += 1
            permit = Permit(demand, self._clock.now())
            if self._first_grant is None:
                self._first_grant = permit.granted_at
            self._last_grant = permit.granted_at
            self._total_at_last_grant = reply.granted_requests
            spacing = self._spacing()
            if spacing > 0:
                await self._clock.sleep(spacing)
        return permit

    def _spacing(self) -> float:
        rpm = self._limits.get("rpm")
        if rpm is None or self.settings.spacing_jitter <= 0:
            return 0.0
        interval = 60.0 / max(rpm * self._factor, 1e-9)
        return self._rng.uniform(0.0, self.settings.spacing_jitter * interval)

    def settle(self, permit: Permit, usage: Usage | None) -> None:
        """As the in-process budget: the prompt settles to the real count; unused max_tokens come
        back only with `refunds_unused`; a failure after sending keeps its reservation."""
        if permit.settled or usage is None:
            permit.settled = True
            return
        permit.settled = True
        demand = permit.demand
        prompt = demand.input_tokens - usage.input_tokens
        unused = demand.max_tokens - usage.output_tokens
        if not self.refunds_unused:
            unused = min(0, unused)
        deltas = (0, prompt + unused, prompt, unused)
        if any(deltas):
            self._book.spawn(self._quietly(self._book.scripts["settle"], *deltas))

    def observe(self, snapshot: RateSnapshot, permit: Permit | None = None) -> None:
        """Share the limits the headers tell; cap the shared level by the provider's reported deficit."""
        if snapshot.empty:
            return
        args: list[object] = []
        for kind in KINDS:
            reading = read_kind(snapshot, kind)
            configured = getattr(self._configured, kind)
            seen = reading.per_minute if reading is not None else _limit_of(snapshot, kind)
            if seen is not None:
                self.limits_seen = True
            args += [
                "" if seen is None else seen,
                "" if configured is None else configured,
                "" if reading is None else reading.deficit,
                "" if reading is None else reading.band,
            ]
        separate = snapshot.limit_input_tokens is not None or snapshot.limit_output_tokens is not None
        args.append("1" if separate and self.learning else "0")
        self._book.spawn(self._quietly(self._book.scripts["observe"], *args))

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: pause every process on this budget (here at once, elsewhere within one round trip)."""
        settings = self.settings
        wait = min(retry_after if retry_after is not None else 1.0, settings.max_pause_s)
        jitter = self._rng.uniform(0.0, settings.pause_jitter_s)
        self._paused_until = max(self._paused_until, self._clock.now() + wait + jitter)
        self.rate_limited_count += 1
        args = (
            wait,
            jitter,
            settings.decrease,
            settings.min_cut,
            settings.overshoot_horizon_s,
            settings.repeat_window_s,
            settings.min_factor,
        )
        self._book.spawn(self._quietly(self._book.scripts["rate_limited"], *args))

    async def _quietly(self, script: Any, *args: object) -> None:
        """Corrections after a response: lost with Redis, never blocking the caller."""
        try:
            await self._run(script, *args)
        except self._book.redis_errors:
            pass


def _limit_of(snapshot: RateSnapshot, kind: str) -> float | None:
    value = {
        "rpm": snapshot.limit_requests,
        "tpm": snapshot.limit_tokens if snapshot.limit_input_tokens is None else None,
        "itpm": snapshot.limit_input_tokens,
        "otpm": snapshot.limit_output_tokens,
    }[kind]
    return float(value) if value is not None and value > 0 else None
