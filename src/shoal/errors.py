"""Errors raised by shoal.

The hierarchy (every exception shoal raises on purpose; the module that defines it, when
not this one, is in brackets)::

    ShoalError
    ├── UsageError                 a user mistake; the CLI prints one line and exits 2
    │   ├── ConfigError            bad shoal.toml (names the key and the file)
    │   ├── InputError             bad input file, template, schema or model name
    │   ├── WorkspaceBusy          another job holds this workspace's journal
    │   └── WorkflowError          [workflows] the script asks for something that cannot work
    └── RunError                   a failure while the job runs
        ├── ModelCallError         one model request failed (status, retry_after, model)
        │   ├── RateLimited        429: the whole job pauses, the request is queued again
        │   ├── TransientError     connection error, timeout or 5xx: retried with backoff
        │   │   └── RequestTimeout no answer within the job's (adaptive) request timeout
        │   ├── BadAnswer          empty, or cut off by the token limit: retried, never kept
        │   └── PermanentError     any other 4xx: retrying cannot help
        ├── BudgetExhausted        the next call could exceed max_cost_usd
        ├── OutageTooLong          [engine] the provider answered nothing for max_outage_s
        ├── WorkerLost             [cluster] a Ray worker died mid-loop; the loop is dispatched again
        ├── AgentFailed            [workflows] one agent failed for good; the run exits 1
        ├── AgentCapExceeded       [workflows] another agent would exceed max_agents
        ├── DraftRejected          [draft] a draft failed a check; the reason goes back to the model
        └── DraftFailed            [draft] every drafting round was refused

    Exception
    ├── Stopped                    [engine] work that was about to start when the job drained
    ├── Refused                    [workflows] a tool call an agent may not make; told to the model
    ├── RepliesFileError           [fake] the rehearsal replies file is malformed (a ValueError)
    └── WireError                  [fake] a request the fake server cannot parse (a ValueError)

`Stopped` and `Refused` are control flow, not failures, so they are not ShoalErrors: nothing
should catch them as one. Each ModelCallError names its journal outcome (a `CallOutcome`).

Every command exits with an `ExitCode` (0 ok, 1 failed, 2 usage, 3 stopped and resumable); a
finished run's status in the journal follows from it (`ExitCode.run_status`).

Provider adapters translate SDK and HTTP exceptions into ModelCallError subclasses once, at
the boundary; nothing above the adapters sees an SDK exception.
"""

from __future__ import annotations

from ._states import CallOutcome, ExitCode

__all__ = [
    "BadAnswer",
    "BudgetExhausted",
    "ConfigError",
    "ExitCode",
    "InputError",
    "ModelCallError",
    "PermanentError",
    "RateLimited",
    "RequestTimeout",
    "RunError",
    "ShoalError",
    "TransientError",
    "UsageError",
    "WorkspaceBusy",
]


class ShoalError(Exception):
    """Base of every error shoal raises on purpose."""


class UsageError(ShoalError):
    """The user asked for something that cannot work as given. Exit code 2."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """shoal.toml is malformed, has an unknown key or a bad value."""


class InputError(UsageError):
    """An input file, template, schema or model name is unusable."""


class WorkspaceBusy(UsageError):
    """Another shoal job is running in this workspace."""


class RunError(ShoalError):
    """A failure during a run."""


class ModelCallError(RunError):
    """A model request that did not produce a usable answer."""

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.retry_after = retry_after

    @property
    def outcome(self) -> CallOutcome:
        """Short label written to the journal's outcome column."""
        return CallOutcome.ERROR


class RateLimited(ModelCallError):
    """The provider answered 429."""

    @property
    def outcome(self) -> CallOutcome:
        return CallOutcome.RATE_LIMITED


class TransientError(ModelCallError):
    """Connection error, timeout or 5xx: worth retrying after a backoff."""

    @property
    def outcome(self) -> CallOutcome:
        return CallOutcome.TRANSIENT


class RequestTimeout(TransientError):
    """No answer within the request timeout."""


class BadAnswer(ModelCallError):
    """The answer was empty or cut off by the token limit."""

    def __init__(self, message: str, *, model: str = "", reason: CallOutcome = CallOutcome.EMPTY) -> None:
        super().__init__(message, model=model)
        self.reason = reason

    @property
    def outcome(self) -> CallOutcome:
        return self.reason


class PermanentError(ModelCallError):
    """A 4xx other than 429 (bad request, authentication): retrying cannot help."""

    @property
    def outcome(self) -> CallOutcome:
        return CallOutcome.REJECTED


class BudgetExhausted(RunError):
    """Starting another call could take the job past its cost budget."""
