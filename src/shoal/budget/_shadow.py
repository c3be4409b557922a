"""The provider's own bucket as shoal believes it stands, corrected by every response's headers.

A provider counts a request the moment it admits it, and may or may not give back the unused part
of max_tokens when the answer ends (Anthropic documents that it does, OpenAI counts max_tokens on
arrival and says little about afterwards, gateways differ). shoal does not guess: it keeps a shadow
of the provider's deficit (units taken and not yet refilled) that counts every reservation and
never gives anything back by itself, and compares it with the deficit each response reports.

A response's headers describe the provider at the moment it handled that request. Counting on
arrival (as OpenAI's limiter does), requests granted after it are not in them yet, so each permit
carries a `Mark`: the shadow's deficit just after its own reservation, the corrections applied so
far and the running total granted, and the error is what the provider reports minus what the
shadow said at that mark (plus the corrections learned since, so nothing is corrected twice).
Computing them as the answer leaves (shoal's fake server), everything sent by then is in them, and
the error is against the shadow now. Both errors are scored on every response; the one that has
been smaller lately is used. A provider that gives unused tokens back reports less than the shadow
expects, and the difference flows back into the pacing bucket; one whose deficit grows faster
(another client on the same key) moves the pacing bucket into debt before any 429.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._types import RateSnapshot

__all__ = ["KINDS", "Mark", "Reading", "Shadow", "read_kind"]

KINDS: tuple[str, ...] = ("rpm", "tpm", "itpm", "otpm")


@dataclass(frozen=True, slots=True)
class Mark:
    """One limit's state when a permit was granted (after its own reservation)."""

    deficit: float | None  # the shadow's deficit; None when the limit was not known yet
    correction: float  # the shadow's cumulative correction
    granted: float  # everything granted so far of this kind, this reservation included


@dataclass(frozen=True, slots=True)
class Reading:
    """What one response says about one limit, in units (requests or tokens)."""

    per_minute: float
    deficit: float  # taken and not yet refilled, when the provider handled the request
    band: float = 0.0  # the reading's resolution: errors within it are noise


def read_kind(snapshot: RateSnapshot, kind: str) -> Reading | None:
    """The provider's deficit for `kind`, from its reset time (scale-free) or its remaining count.

    `reset` is the time until the provider's bucket is full again, so deficit = reset x rate
    whatever window the provider enforces (the fake server reports remaining scaled to its short
    window); `limit - remaining` (OpenAI's and Anthropic's documented meaning) caps it, and stands
    alone when there is no reset. (How big the provider's bucket is cannot be told from one
    response: remaining may be plain tokens of a short window or a short window's level scaled to
    a minute, so nothing here depends on it.)
    """
    if kind == "rpm":
        limit, remaining, reset = (
            snapshot.limit_requests,
            snapshot.remaining_requests,
            snapshot.reset_requests_s,
        )
    elif kind == "tpm":
        limit, remaining, reset = snapshot.limit_tokens, snapshot.remaining_tokens, snapshot.reset_tokens_s
    elif kind == "itpm":
        limit = snapshot.limit_input_tokens
        remaining, reset = snapshot.remaining_input_tokens, snapshot.reset_input_tokens_s
    else:
        limit = snapshot.limit_output_tokens
        remaining, reset = snapshot.remaining_output_tokens, snapshot.reset_output_tokens_s
    if limit is None or limit <= 0:
        return None
    rate = limit / 60.0
    band = 0.0
    if reset is not None:
        deficit = max(0.0, reset) * rate
        if remaining is not None:
            # Where remaining says less, trust it: a fixed-window limiter reports the time to the
            # window's end as its reset however little of the window is used.
            deficit = min(deficit, float(max(0, limit - remaining)))
        if snapshot.reset_from_timestamp:
            # Whole-second timestamps from another clock: ignore differences within a second of
            # refill (plus Anthropic's rounding of remaining to thousands).
            band = rate + 500.0 if kind != "rpm" else rate + 1.0
    elif remaining is not None:
        deficit = float(max(0, limit - remaining))
    else:
        return None
    return Reading(float(limit), deficit, band)


class Shadow:
    """The provider's deficit for one limit: grows by each reservation, refills at the provider's rate."""

    __slots__ = ("correction", "deficit", "fit_answer", "fit_arrival", "rate", "_stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0  # the provider's refill, not shoal's (possibly reduced) pace
        self.deficit = 0.0  # an idle account is full
        self.correction = 0.0
        # How far each account of when the provider computes its headers has been off, lately.
        self.fit_arrival = 0.0
        self.fit_answer = 0.0
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self.deficit = max(0.0, self.deficit - (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.deficit += amount

    def adjust(self, amount: float, now: float) -> None:
        """Add `amount` to the deficit (negative: give back), never below a full bucket."""
        self._refill(now)
        self.deficit = max(0.0, self.deficit + amount)

    @property
    def counts_on_answer(self) -> bool:
        """Does the provider compute its headers as the answer leaves (rather than on arrival)?"""
        return self.fit_answer < self.fit_arrival

    def error(self, reading: Reading, mark: Mark | None, since: float, now: float) -> float:
        """Reported deficit minus the expected one, for the response to the permit with `mark`.

        A provider that computes its headers on arrival has not counted `since` (what was granted
        after that permit) yet: the expectation is the shadow at the permit's mark. One that
        computes them as the answer leaves has counted everything sent by then: the expectation is
        the shadow now. Both are scored on every response and the better one is used.
        """
        self._refill(now)
        if mark is None or mark.deficit is None:
            # No record of the shadow at that time: compare with now, less what was sent since.
            on_arrival = reading.deficit - max(0.0, self.deficit - since)
        else:
            on_arrival = reading.deficit - (mark.deficit + (self.correction - mark.correction))
        on_answer = reading.deficit - self.deficit
        self.fit_arrival += 0.1 * (abs(on_arrival) - self.fit_arrival)
        self.fit_answer += 0.1 * (abs(on_answer) - self.fit_answer)
        return on_answer if self.counts_on_answer else on_arrival

    def correct(self, error: float, now: float) -> float:
        """Move the deficit by `error`; returns the change applied (a full bucket is a floor)."""
        self._refill(now)
        before = self.deficit
        self.deficit = max(0.0, self.deficit + error)
        applied = self.deficit - before
        self.correction += applied
        return applied
