"""Errors a workflow run raises; the CLI maps them to exit codes (2 usage, 1 failed)."""

from __future__ import annotations

from ..errors import RunError, UsageError

__all__ = ["AgentCapExceeded", "AgentFailed", "WorkflowError"]


class WorkflowError(UsageError):
    """The script asks for something that cannot work: a bad model name, an unknown tool, bad args."""


class AgentFailed(RunError):
    """One agent failed for good (its retries are spent); the run exits 1."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"agent {path} failed: {reason}")
        self.path = path
        self.reason = reason


class AgentCapExceeded(RunError):
    """Starting another agent would exceed the run's max_agents; refused before it starts."""
