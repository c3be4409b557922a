"""States that cross packages, as str Enums (arq style).

They sit on the ground floor so every layer can name a state without importing the layer that
produces it. Members are `str`, so a value read from the journal or a plan compares equal to its
member and is written back unchanged.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CallOutcome", "ExitCode", "PlanMode", "PlanStage", "PlanStatus", "RunStatus"]


class CallOutcome(StrEnum):
    """What came of one model request: the journal's `calls.outcome` column."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429
    TRANSIENT = "transient"  # connection error, timeout or 5xx
    EMPTY = "empty"  # bad answers: retried, never kept
    TRUNCATED = "truncated"
    INVALID = "invalid"
    REJECTED = "rejected"  # any other 4xx
    CANCELLED = "cancelled"
    ERROR = "error"  # any other ModelCallError
    # A request inside a provider batch that came back without an answer; it goes into the next batch.
    BATCH_EXPIRED = "batch_expired"
    BATCH_CANCELLED = "batch_cancelled"
    BATCH_ERROR = "batch_error"

    @property
    def bad_answer(self) -> bool:
        return self in (CallOutcome.EMPTY, CallOutcome.TRUNCATED, CallOutcome.INVALID)

    @property
    def outage(self) -> bool:
        """The provider's failure, not the call's: the job waits it out as a whole."""
        return self in (CallOutcome.TRANSIENT, CallOutcome.RATE_LIMITED, CallOutcome.CANCELLED)


class PlanStage(StrEnum):
    """The stages a plan task goes through, in order (see `shoal.plan`)."""

    GENERATE = "generate"
    SELF_CHECK = "self-check"
    LINT = "lint"
    SPOT_CHECK = "spot-check"
    REVIEW = "review"
    FIX = "fix"
    SHIP = "ship"
    GATE = "gate"  # not a step of its own: the verdict after review and fix


class PlanStatus(StrEnum):
    """A plan task's Status cell. Cells are compared lower-cased and stripped."""

    PENDING = "pending"
    COMPLETE = "complete"
    COMPLETED = "completed"
    DONE = "done"
    NEEDS_REVIEW = "needs-review"

    @staticmethod
    def of(cell: str) -> str:
        return cell.strip().lower()

    @classmethod
    def finished(cls, cell: str) -> bool:
        """The one "finished" set: a run skips these tasks (needs-review is not finished)."""
        return cls.of(cell) in (cls.COMPLETE, cls.COMPLETED, cls.DONE)

    @classmethod
    def needs_review(cls, cell: str) -> bool:
        return cls.of(cell) == cls.NEEDS_REVIEW


class PlanMode(StrEnum):
    """How a plan's tasks move through the stages."""

    PHASED = "phased"  # every task of a phase through one stage before the next
    PIPELINE = "pipeline"  # each task through all stages on its own


class RunStatus(StrEnum):
    """A run's row in the journal's `runs` table."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # finished, some items failed for good
    STOPPED = "stopped"  # drained or cancelled; resumable


class ExitCode(IntEnum):
    """What every shoal command exits with; a finished job's run status follows from it."""

    OK = 0
    FAILED = 1  # some work failed for good, or the job halted on one failure repeated
    USAGE = 2  # a user mistake: one line on stderr
    STOPPED = 3  # drained, cancelled, not started or not approved: run the same command to go on

    @classmethod
    def of(cls, *, failed: bool, stopped: bool = False, halted: bool = False) -> ExitCode:
        """A halt (every call failed alike) is a failure, not a resumable stop."""
        if halted:
            return cls.FAILED
        if stopped:
            return cls.STOPPED
        return cls.FAILED if failed else cls.OK

    @property
    def run_status(self) -> RunStatus:
        if self is ExitCode.OK:
            return RunStatus.DONE
        return RunStatus.STOPPED if self is ExitCode.STOPPED else RunStatus.FAILED
