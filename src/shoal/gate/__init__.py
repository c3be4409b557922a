"""The quality gate between the model and the user's files: lint, spot-check, review, ship."""

from ._files import new_file_mode, write_atomic
from ._lint import LintResult, lint_command_problem, run_lint
from ._prompts import (
    REVIEW_SCHEMA,
    SELF_CHECK_SCHEMA,
    fix_flags_prompt,
    fix_lint_prompt,
    fix_metadata_prompt,
    review_prompt,
    self_check_prompt,
    task_prompt,
    writer_brief,
)
from ._ship import register, registry_problem, ship_file
from ._spotcheck import front_matter, required_fields, spot_check
from ._tally import GateTally

__all__ = [
    "GateTally",
    "REVIEW_SCHEMA",
    "SELF_CHECK_SCHEMA",
    "LintResult",
    "fix_flags_prompt",
    "fix_lint_prompt",
    "fix_metadata_prompt",
    "front_matter",
    "lint_command_problem",
    "register",
    "registry_problem",
    "required_fields",
    "review_prompt",
    "run_lint",
    "self_check_prompt",
    "ship_file",
    "spot_check",
    "task_prompt",
    "new_file_mode",
    "write_atomic",
    "writer_brief",
]
