"""Workflow scripts: the plan as code, built from a few primitives, durable across crashes.

    from shoal import workflow, agent, parallel, phase

    @workflow(name="bug-hunt", max_agents=200)
    async def main(files: list[str]) -> str:
        with phase("scan"):
            found = await parallel(files, lambda f: agent(f"Find bugs in {f}", schema=list[Finding]))
        ...

`shoal run FILE.py` runs it as one job: every agent request takes the job's path (rate budget,
journal, accounting, retries) and a rerun replays what finished.
"""

from ._agent import agent
from ._compose import log, parallel, phase, pipeline
from ._definition import Outline, Workflow, bind_args, load_workflow, outline, workflow
from ._errors import AgentCapExceeded, AgentFailed, WorkflowError
from ._run import WorkflowResult, phase_lines, report_path, run_workflow, status_line
from ._runtime import RunSettings, agent_model
from ._tools import BUILTIN_TOOLS, CommandResult
from ._verify import Finding, FixOutcome, verify_fix
from ._workspace import SharedWorkspace, workspace

__all__ = [
    "BUILTIN_TOOLS",
    "AgentCapExceeded",
    "AgentFailed",
    "CommandResult",
    "Finding",
    "FixOutcome",
    "Outline",
    "RunSettings",
    "SharedWorkspace",
    "Workflow",
    "WorkflowError",
    "WorkflowResult",
    "agent",
    "agent_model",
    "bind_args",
    "load_workflow",
    "log",
    "outline",
    "parallel",
    "phase",
    "phase_lines",
    "pipeline",
    "report_path",
    "run_workflow",
    "status_line",
    "verify_fix",
    "workflow",
    "workspace",
]
