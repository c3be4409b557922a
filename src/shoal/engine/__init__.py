"""The engine: one controlled job under a shared rate budget, journaled call by call."""

from ._caller import ModelCaller
from ._calls import CallResult, CallSpec, CallStats, Exchange, ProviderSource, RetryPolicy, call_key
from ._executor import Executor, LocalExecutor
from ._job import Job, StateDir, open_job
from ._ledger import Ledger, Tally
from ._stop import Stopped, StopSignal, StopState
from ._streak import FailureStreak, is_call_specific

__all__ = [
    "CallResult",
    "CallSpec",
    "CallStats",
    "Exchange",
    "Executor",
    "FailureStreak",
    "Job",
    "Ledger",
    "LocalExecutor",
    "ModelCaller",
    "ProviderSource",
    "RetryPolicy",
    "StopSignal",
    "StopState",
    "Stopped",
    "Tally",
    "StateDir",
    "call_key",
    "is_call_specific",
    "open_job",
]
