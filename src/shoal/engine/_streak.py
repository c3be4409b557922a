"""Stopping a job that meets the same failure on every call.

A schema the model cannot meet, a prompt the provider refuses (400), a key it does not accept
(401): when every call fails alike, spending every attempt of every record only repeats the
failure at full price. The caller reports each sent attempt's outcome here; after `limit`
call-specific failures in a row that look the same once call-specific text is taken out (see
`failure_signature`), the job drains with one line that names the failure.

Only failures specific to the call count: bad answers (empty, truncated, invalid) and 4xx other
than 429. Outage-class failures (connection errors, timeouts, 5xx, 429) neither count nor reset
the streak: they are the provider's, and the job waits them out as a whole. A success resets it.
"""

from __future__ import annotations

from collections.abc import Callable

from .._signature import failure_signature
from .._states import CallOutcome
from ._stop import StopSignal

__all__ = ["BAD_ANSWERS", "DEFAULT_STREAK_LIMIT", "FailureStreak", "is_call_specific"]

DEFAULT_STREAK_LIMIT = 10
BAD_ANSWERS = frozenset(o for o in CallOutcome if o.bad_answer)
_OUTAGES = frozenset(o for o in CallOutcome if o.outage)


def is_call_specific(outcome: str, status: int | None) -> bool:
    """A failure this call would meet again if sent as it is: a bad answer, or a non-429 4xx."""
    if outcome in BAD_ANSWERS or outcome == CallOutcome.REJECTED:
        return True
    if outcome in _OUTAGES or outcome == CallOutcome.OK:
        return False
    return status is not None and 400 <= status < 500 and status != 429


class FailureStreak:
    """Counts alike call-specific failures in a row; at `limit` it drains the job once.

    `limit` 0 turns the detector off. The caller feeds one per job; a workflow feeds a second one
    with its agents' verdicts, because an answer that fails the agent's output validation is a
    finished call to the caller.
    """

    def __init__(
        self,
        stop: StopSignal,
        *,
        limit: int = DEFAULT_STREAK_LIMIT,
        on_trip: Callable[[str], None] | None = None,
        noun: str = "calls",
    ) -> None:
        self._stop = stop
        self.noun = noun
        self._on_trip = on_trip
        self.limit = limit
        self.count = 0
        self.signature: str | None = None
        self.reason: str | None = None  # set once the streak has stopped the job

    def observe(self, outcome: str, status: int | None, error: str | None) -> None:
        """One sent call's outcome, as the caller journals it."""
        if outcome == CallOutcome.OK:
            self.success()
        elif is_call_specific(outcome, status):
            self.failure(outcome, error or outcome)

    def success(self) -> None:
        self.count, self.signature = 0, None

    def failure(self, kind: str, message: str) -> None:
        """A failure known to be specific to its call (or agent); alike ones in a row add up."""
        if self.reason is not None or self.limit <= 0:
            return
        signature = f"{kind}: {failure_signature(message)}"
        if signature == self.signature:
            self.count += 1
        else:
            self.signature, self.count = signature, 1
        if self.count >= self.limit:
            example = message.strip().splitlines()
            self.reason = (
                f"the last {self.count} {self.noun} all failed the same way ({kind}): "
                f"{example[0] if example else kind}"
            )
            if self._on_trip is not None:
                self._on_trip(self.reason)
            self._stop.drain(f"same failure: {self.reason}")
