"""Checks made before a job starts: everything a user can get wrong on the command line, in a
plan or in the workspace is refused here with one line (a UsageError, exit 2), before anything is
sent, written or journaled."""

from ._files import check_output_file
from ._limits import KNOWN_OUTPUT_LIMITS, check_max_tokens, output_token_limit
from ._plan import check_plan
from ._template import check_template
from ._workspace import check_workspace

__all__ = [
    "KNOWN_OUTPUT_LIMITS",
    "check_max_tokens",
    "check_output_file",
    "check_plan",
    "check_template",
    "check_workspace",
    "output_token_limit",
]
