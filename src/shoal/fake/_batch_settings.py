"""How the fake server's batch APIs behave: processing delay, per-request errors, expiry."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FakeBatchSettings"]


@dataclass(frozen=True, slots=True)
class FakeBatchSettings:
    """Batch behaviour; a request "matches" when the text appears in its prompt.

    A matching request fails (or expires) in its first `fault_times` batches only, so a shoal
    that resubmits it in a next batch sees it succeed, as a real transient failure would.
    """

    delay_s: float = 0.0  # seconds from creation until a batch has ended
    error_match: tuple[str, ...] = ()  # these requests end with a per-request 500 error
    expire_match: tuple[str, ...] = ()  # these requests expire; their batch ends as "expired"
    fault_times: int = 1
    # Every request of every batch fails with this account-level error code (e.g. "insufficient_quota").
    account_error: str | None = None
    status_errors: int = 0  # the first N batch status checks answer 503 (an outage while polling)

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError(f"batch delay must not be negative, got {self.delay_s}")
        if self.fault_times < 0:
            raise ValueError(f"fault_times must not be negative, got {self.fault_times}")
