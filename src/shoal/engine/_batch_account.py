"""Account-level failures inside a batch: when most requests fail alike for the account's sake."""

from __future__ import annotations

from collections import Counter

from ..errors import PermanentError
from ..journal import BatchRow
from ..providers._batch_types import BatchFailure

__all__ = ["BatchAccountError", "account_error"]

# Error codes (OpenAI) and types (Anthropic) that say the account, not the request, is the problem.
_ACCOUNT_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "invalid_api_key",
        "account_deactivated",
        "authentication_error",
        "permission_error",
        "billing_error",
    }
)


class BatchAccountError(PermanentError):
    """Most of a batch failed with one account-level error: resubmitting would fail alike."""


def account_error(row: BatchRow, failures: list[BatchFailure], share: float) -> BatchAccountError | None:
    """The error to stop with when at least `share` of the batch failed with one account-level error."""
    codes = Counter(f.code for f in failures if f.kind == "error")
    if not codes:
        return None
    code, count = codes.most_common(1)[0]
    sample = next(f for f in failures if f.code == code)
    account = code in _ACCOUNT_CODES or sample.status in (401, 402, 403) or "credit balance" in sample.message
    if not account or count < share * len(row.keys):
        return None
    return BatchAccountError(
        f"{count} of {len(row.keys)} requests of batch {row.batch_id} failed with the account-level "
        f"error '{code}' ({sample.message}); fix the account, then run the same command",
        model=row.model,
        status=sample.status,
    )
