"""Seeing a job: the live terminal view, the snapshot publisher, and `read_status`, the one
reader behind `shoal status` and the dashboard. The journal rows and queries it re-exports
live in `shoal.journal`."""

from ..journal import (
    CallTotalsCache,
    RunRow,
    item_of_scope,
    latest_run,
    open_readonly,
    reading,
    runs_of,
    table_exists,
)
from ._format import count, duration, money, percent, phase_of
from ._jobs import describe_jobs, job_names, match_job
from ._publisher import SnapshotPublisher
from ._redact import Redactor
from ._render import compact_line, render_status
from ._snapshot import capture
from ._status import STATUS_VERSION, UNASSIGNED_STAGE, read_status
from ._terminal import TerminalView
from ._watch import watch_job

__all__ = [
    "STATUS_VERSION",
    "UNASSIGNED_STAGE",
    "CallTotalsCache",
    "Redactor",
    "RunRow",
    "SnapshotPublisher",
    "TerminalView",
    "capture",
    "compact_line",
    "count",
    "describe_jobs",
    "duration",
    "item_of_scope",
    "job_names",
    "latest_run",
    "match_job",
    "money",
    "open_readonly",
    "percent",
    "phase_of",
    "read_status",
    "reading",
    "render_status",
    "runs_of",
    "table_exists",
    "watch_job",
]
