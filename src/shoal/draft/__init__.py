"""`shoal draft`: the orchestrator writes the workflow script (or the batch plan), the user approves it.

assess     what the target holds and which command can tell right from wrong (sends nothing)
prompt     a compact reference of the primitives (or the plan format) and caps sized to the target
rounds     the drafting conversation: a refused draft goes back with its error, a bounded number of times
extract    the draft out of the model's Markdown fences
safety     the allow-list a drafted script is held to before it is executed at all
rehearse   the dry run of a drafted script on the in-process rehearsal provider
validate   the checks together, for scripts and for plans
questions  the seed's three questions, answered from the assessment and the draft
approve    what the user sees, and the y/N
"""

from ._approve import approve, assessment_lines, render_draft, require_terminal
from ._assess import Assessment, Oracle, SourceFile, assess
from ._errors import DraftFailed, DraftRejected
from ._extract import extract_draft
from ._prompt import DraftCaps, feedback, first_messages, size_caps
from ._questions import Answer, decision_tree
from ._rehearse import DryRun, rehearse
from ._rounds import Attempt, DraftOutcome, draft_job_name, write_draft
from ._safety import ALLOWED_IMPORTS, REFUSED_BUILTINS, UnsafeScript, check_script
from ._summary import plan_summary, workflow_summary
from ._validate import CheckedPlan, CheckedWorkflow, check_plan_draft, check_workflow_draft

__all__ = [
    "ALLOWED_IMPORTS",
    "REFUSED_BUILTINS",
    "Answer",
    "Assessment",
    "Attempt",
    "CheckedPlan",
    "CheckedWorkflow",
    "DraftCaps",
    "DraftFailed",
    "DraftOutcome",
    "DraftRejected",
    "DryRun",
    "Oracle",
    "SourceFile",
    "UnsafeScript",
    "approve",
    "assess",
    "assessment_lines",
    "check_plan_draft",
    "check_script",
    "check_workflow_draft",
    "decision_tree",
    "draft_job_name",
    "extract_draft",
    "feedback",
    "first_messages",
    "plan_summary",
    "rehearse",
    "render_draft",
    "require_terminal",
    "size_caps",
    "workflow_summary",
    "write_draft",
]
