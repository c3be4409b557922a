"""Records the journal stores: str Enums for states, dataclasses for rows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .._states import CallOutcome, RunStatus

__all__ = ["CallRecord", "ItemStatus", "RunStatus", "StoredCall"]


class ItemStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    NEEDS_REVIEW = "needs-review"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One model request as sent (or replayed) and what came of it."""

    key: str  # hash of model, messages, schema and parameters (and the caller's scope)
    job: str
    run_id: int
    scope: str  # item id or step path
    stage: str
    model: str
    outcome: CallOutcome
    attempt: int
    status: int | None = None
    response: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    queue_s: float = 0.0  # time spent waiting for a slot and the rate budget
    error: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredCall:
    """A finished call found in the journal, enough to replay it."""

    key: str
    model: str
    response: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
