"""Outages: connection errors, timeouts and 5xx that hit many calls at once belong to the provider.

Each provider has a gate. While the provider answers, every call passes and its outcome feeds a
short window of recent results. A transient failure (connection error, timeout, 5xx) is judged
against that window:

- the provider answered other calls while this one was out, and nearly all other recent calls
  (`healthy_share`): the failure is the call's own and spends one of its attempts (`Verdict.CALL`);
- the provider fails many calls: the failure is the provider's, the call backs off and goes again
  without spending an attempt (`Verdict.FLAKY`, bounded by the caller's own cap);
- `failures_to_open` failures in a row, none of them with an answer to another call while it was
  out (a request that hung while others were answered is not evidence of an outage), and no answer
  between them: an outage (`Verdict.OUTAGE`). The
  gate closes, every caller of the provider waits, and one probe request at a time is let through,
  with exponential backoff, until the provider answers anything at all; then the gate reopens.

An outage that lasts longer than `max_outage_s` raises OutageTooLong, which the caller turns into
a drain of the job (resumable) instead of failing every item.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .._clock import Clock
from ..errors import RunError

__all__ = ["OutageBook", "OutageGate", "OutageSettings", "OutageTooLong", "Ticket", "Verdict"]

# (event kind, details) for the journal: "outage_start" and "outage_end".
EventSink = Callable[[str, dict[str, Any]], None]


class Verdict(StrEnum):
    CALL = "call"  # the provider answers others: the failure counts against the item
    FLAKY = "flaky"  # the provider fails many calls: retry with backoff, the item keeps its attempts
    OUTAGE = "outage"  # the provider is down: wait at the gate, nothing counted


class OutageTooLong(RunError):
    """The provider has answered nothing for longer than max_outage_s."""


@dataclass(frozen=True, slots=True)
class OutageSettings:
    failures_to_open: int = 5  # transient failures in a row, none answered between, open an outage
    window: int = 50  # recent outcomes the health share is computed over
    min_samples: int = 10  # fewer outcomes than this: health unknown, failures are not counted
    healthy_share: float = 0.05  # at most this share of recent calls failed: the provider is healthy
    probe_base_s: float = 1.0  # first probe this long after the outage opens, then doubling
    probe_max_s: float = 10.0  # a provider that is back is found within this long
    max_outage_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Ticket:
    """Admission through a gate; a probe is the one request sent while the provider is down."""

    key: str  # the call's identity: its own failures never count as evidence against the provider
    answers_before: int  # the provider's answers counted when the call was admitted
    probe: bool = False


class OutageGate:
    """The gate of one provider. All state changes between awaits: no lock needed."""

    def __init__(
        self,
        provider: str,
        *,
        settings: OutageSettings,
        clock: Clock,
        rng: random.Random,
        on_event: EventSink,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self._clock = clock
        self._rng = rng
        self._on_event = on_event
        self._recent: deque[tuple[str, bool]] = deque(maxlen=settings.window)  # (key, failed)
        self._answers = 0
        self._in_a_row = 0
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe_step = 0
        self._probing = False
        self._changed = asyncio.Event()
        self.outages = 0
        self.probes = 0
        self.last_error: str | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def down_for(self) -> float:
        return 0.0 if self._down_since is None else self._clock.now() - self._down_since

    def share(self, excluding: str = "") -> float | None:
        """Share of other calls' recent outcomes that were transient failures; None: too few to tell."""
        others = [failed for key, failed in self._recent if key != excluding]
        if len(others) < self.settings.min_samples:
            return None
        return sum(others) / len(others)

    def ticket(self, key: str) -> Ticket:
        """Admission while the provider answers (see `admit`)."""
        return Ticket(key, self._answers)

    async def admit(self, key: str) -> Ticket:
        """Pass at once while the provider answers; during an outage wait, or be the next probe."""
        while True:
            if self._down_since is None:
                return self.ticket(key)
            now = self._clock.now()
            if now - self._down_since > self.settings.max_outage_s:
                raise OutageTooLong(
                    f"provider {self.provider} answered nothing for {now - self._down_since:.0f}s "
                    f"(last error: {self.last_error})"
                )
            if not self._probing and now >= self._next_probe:
                self._probing = True
                self.probes += 1
                return Ticket(key, self._answers, probe=True)
            # While a probe is out its outcome wakes everyone; otherwise wake for the next probe.
            await self._wait_change(None if self._probing else self._next_probe - now)

    def answered(self, ticket: Ticket) -> None:
        """The provider answered (anything: a reply, a bad answer, a 4xx, a 429): it is up."""
        self._recent.append((ticket.key, False))
        self._answers += 1
        self._in_a_row = 0
        if ticket.probe:
            self._probing = False
        if self._down_since is not None:
            duration = self._clock.now() - self._down_since
            self._down_since = None
            self._recent.clear()  # the outage's failures say nothing about health from now on
            self._on_event(
                "outage_end",
                {"provider": self.provider, "duration_s": round(duration, 3), "probes": self.probes},
            )
            self._notify()

    def failed(self, ticket: Ticket, error: str) -> Verdict:
        """A transient failure; returns whose it is."""
        self.last_error = error
        now = self._clock.now()
        if self._down_since is not None:
            if ticket.probe:
                self._probing = False
                self._probe_step += 1
                self._next_probe = now + self._probe_delay()
                self._notify()
            return Verdict.OUTAGE
        share = self.share(excluding=ticket.key)
        self._recent.append((ticket.key, True))
        if self._answers > ticket.answers_before:
            # The provider answered others while this one was out: not a sign of an outage.
            if share is not None and share <= self.settings.healthy_share:
                return Verdict.CALL
            return Verdict.FLAKY
        self._in_a_row += 1
        if self._in_a_row >= self.settings.failures_to_open:
            self._open(now, error)
            return Verdict.OUTAGE
        return Verdict.FLAKY

    def abandon(self, ticket: Ticket) -> None:
        """The admitted call ended without reaching the provider (stopped, over budget)."""
        if ticket.probe:
            self._probing = False
            self._notify()

    def _open(self, now: float, error: str) -> None:
        self._down_since = now
        self._probe_step = 0
        self._next_probe = now + self._probe_delay()
        self.outages += 1
        self.probes = 0
        self._on_event(
            "outage_start", {"provider": self.provider, "failures_in_a_row": self._in_a_row, "error": error}
        )
        self._notify()

    def _probe_delay(self) -> float:
        base = min(self.settings.probe_max_s, self.settings.probe_base_s * 2**self._probe_step)
        return float(base * self._rng.uniform(0.75, 1.0))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float | None) -> None:
        event = self._changed
        if timeout is None:
            await event.wait()
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(max(0.0, timeout)))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()


class OutageBook:
    """One gate per provider, created on first use."""

    def __init__(
        self, *, settings: OutageSettings, clock: Clock, rng: random.Random, on_event: EventSink
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = rng
        self._on_event = on_event
        self._gates: dict[str, OutageGate] = {}

    def for_provider(self, provider: str) -> OutageGate:
        gate = self._gates.get(provider)
        if gate is None:
            gate = self._gates[provider] = OutageGate(
                provider, settings=self.settings, clock=self._clock, rng=self._rng, on_event=self._on_event
            )
        return gate

    def all(self) -> list[OutageGate]:
        return list(self._gates.values())
