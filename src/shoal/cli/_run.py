"""`shoal run FILE`: a Markdown batch plan (.md) or a workflow script (.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    mode: Annotated[str, typer.Option("--mode", help="Plans: phased (default) or pipeline.")] = "phased",
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
    executor: ExecutorOption = None,
) -> None:
    """Run every pending task of a batch plan, or a workflow script, as one job."""
    suffix = target.suffix.lower()
    if retry is not None and (suffix == ".py" or retry != "needs-review"):
        say(f"shoal: error: --retry {retry}: plans take --retry needs-review; workflows take --retry-failed")
        code = 2
    elif retry_failed and suffix in (".md", ".markdown"):
        say("shoal: error: --retry-failed is for workflows and map; plans take --retry needs-review")
        code = 2
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
            mode=mode,
            concurrency=concurrency,
            max_cost=max_cost,
            config_path=config_path,
            retry_needs_review=retry == "needs-review",
            executor=executor,
        )
    else:
        say(f"shoal: error: {target}: expected a batch plan (.md) or a workflow script (.py)")
        code = 2
    raise typer.Exit(code)
