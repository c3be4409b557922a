"""`shoal run FILE`: a Markdown batch plan (.md) or a workflow script (.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._states import PlanMode
from ..errors import ExitCode
from ._common import ConcurrencyOption
from ._executor import ExecutorOption
from ._runtime import say

__all__ = ["run_command"]


def run_command(
    target: Annotated[
        Path, typer.Argument(metavar="FILE", help="A batch plan (.md) or a workflow script (.py).")
    ],
    phase: Annotated[int | None, typer.Option("--phase", help="Plans: run only phase N.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Start without asking.")] = False,
    canary: Annotated[
        int | None, typer.Option("--canary", min=1, help="Plans: K tasks first, then ask.")
    ] = None,
    mode: Annotated[
        PlanMode | None,
        typer.Option("--mode", case_sensitive=False, help="Plans: phased (default) or pipeline."),
    ] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Workflows: key=value, repeatable.")] = None,
    concurrency: ConcurrencyOption = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", min=0.0, help="Stop before this many USD.")
    ] = None,
    config_path: Annotated[Path | None, typer.Option("--config", help="shoal.toml to use.")] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Workflows: send agents that failed afresh.")
    ] = False,
    retry: Annotated[
        str | None,
        typer.Option("--retry", metavar="STATUS", help="Plans: 'needs-review' sends those tasks afresh."),
    ] = None,
    batch: Annotated[
        bool, typer.Option("--batch", help="Plans, phased mode: each stage through the provider's batch API.")
    ] = False,
    batch_fallback: Annotated[
        str | None,
        typer.Option(
            "--batch-fallback", help="batch or online: where requests go once batch attempts are spent."
        ),
    ] = None,
    executor: ExecutorOption = None,
) -> None:
    """Run every pending task of a batch plan, or a workflow script, as one job."""
    suffix = target.suffix.lower()
    plan_options = (("--phase", phase), ("--canary", canary), ("--mode", mode))
    plan_only = [flag for flag, value in plan_options if value is not None]
    if suffix == ".py" and plan_only:
        say(f"shoal: error: {', '.join(plan_only)}: for batch plans (.md); workflows take --arg")
        code: int = ExitCode.USAGE
    elif suffix in (".md", ".markdown") and arg:
        say("shoal: error: --arg is for workflow scripts (.py); a plan takes --phase, --canary and --mode")
        code = ExitCode.USAGE
    elif retry is not None and (suffix == ".py" or retry != "needs-review"):
        say(f"shoal: error: --retry {retry}: plans take --retry needs-review; workflows take --retry-failed")
        code = ExitCode.USAGE
    elif retry_failed and suffix in (".md", ".markdown"):
        say("shoal: error: --retry-failed is for workflows and map; plans take --retry needs-review")
        code = ExitCode.USAGE
    elif (batch or batch_fallback) and suffix == ".py":
        say("shoal: error: --batch is for plans (phased mode) and map; workflow scripts call models online")
        code = ExitCode.USAGE
    elif batch_fallback not in (None, "batch", "online"):
        say(f"shoal: error: --batch-fallback must be 'batch' or 'online', not '{batch_fallback}'")
        code = ExitCode.USAGE
    elif suffix == ".py":
        from ._workflow import run_workflow_command

        code = run_workflow_command(
            target,
            args=arg or [],
            yes=yes,
            concurrency=concurrency,
            max_cost=max_cost,
            config_path=config_path,
            retry_failed=retry_failed,
            executor=executor,
        )
    elif suffix in (".md", ".markdown"):
        from ._plan import run_plan_command

        code = run_plan_command(
            target,
            phase=phase,
            yes=yes,
            canary=canary,
            mode=mode or PlanMode.PHASED,
            concurrency=concurrency,
            max_cost=max_cost,
            config_path=config_path,
            retry_needs_review=retry == "needs-review",
            batch=batch,
            batch_fallback="online" if batch_fallback == "online" else "batch" if batch_fallback else None,
            executor=executor,
        )
    else:
        say(f"shoal: error: {target}: expected a batch plan (.md) or a workflow script (.py)")
        code = ExitCode.USAGE
    raise typer.Exit(code)
