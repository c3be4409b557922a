"""`shoal run FILE.py`: a workflow script as one job.

Before launch: the phases the script shows, the caps and an estimate, then y/N (or --yes).
Exit codes: 0 done (report written), 1 some agents failed for good (or the script raised),
2 usage errors, 3 stopped and resumable (the resume command is printed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ShoalConfig
from ..engine import StateDir, StopSignal
from ..errors import ExitCode
from ..estimate import workflow_estimate_line
from ..journal import read_usage
from ..preflight import check_max_tokens, check_workspace
from ..pricing import PriceBook
from ..providers import ModelRef
from ..view import watch_job
from ._confirm import confirm_launch
from ._launch import Launch
from ._runtime import resume_argv, run_async, say

if TYPE_CHECKING:
    from ..workflows import Outline, RunSettings

__all__ = ["run_workflow_command"]


def _models(
    names: list[str], default_model: str, config: ShoalConfig
) -> tuple[ModelRef, dict[str, ModelRef]]:
    from ..workflows import agent_model

    default = agent_model(None, default_model, config)
    return default, {name: agent_model(name, default_model, config) for name in names}


def _estimate(default: ModelRef, config: ShoalConfig, settings: RunSettings, root: Path) -> str:
    name = f"workflow:{settings.name}"
    return workflow_estimate_line(
        default.key,
        max_tokens=settings.max_tokens,
        max_agents=settings.max_agents,
        prices=PriceBook.from_config(config),
        rows=read_usage(StateDir(root).journal_path, name),
    )


def _summary(target: Path, settings: RunSettings, seen: Outline, config: ShoalConfig, root: Path) -> str:
    default, named = _models(seen.models, settings.default_model, config)
    models = ", ".join(
        [f"default {default}", *(f"{n} -> {ref}" for n, ref in named.items() if n != str(ref))]
    )
    caps = config.job
    budget = f"{settings.token_budget:,}" if settings.token_budget else "unlimited"
    cost = f"${caps.max_cost_usd:.2f}" if caps.max_cost_usd else "unlimited"
    where = (
        f"seeded from {settings.target} (a git worktree when it is a repository)"
        if settings.target
        else "empty directories"
    )
    lines = [
        f"Workflow {settings.name} ({target})",
        f"  Phases: {', '.join(seen.phases) or '(none named)'}",
        f"  Agent calls in the script: {seen.agent_calls}; verify_fix loops: {seen.verify_fix_calls}",
        f"  Models: {models}",
        f"  Workspaces: {where}, under .shoal/workspaces/",
        f"  Commands agents may run: {', '.join(settings.allowed_commands) or 'none'}",
        f"  Caps: concurrency {caps.concurrency}, {settings.max_agents:,} agents per run, tokens {budget}, "
        f"cost {cost}",
        "  " + _estimate(default, config, settings, root),
    ]
    return "\n".join(lines)


def _note_batch(config: ShoalConfig) -> None:
    if config.job.batch:  # a shoal.toml shared with map and plans may set it
        say("workflow: [job] batch does not apply: workflow agents call models online")


def run_workflow_command(
    target: Path,
    *,
    args: list[str],
    yes: bool,
    concurrency: str | None,
    max_cost: float | None,
    config_path: Path | None,
    retry_failed: bool = False,
    argv: list[str] | None = None,
    executor: str | None = None,
) -> int:
    argv = argv or resume_argv()

    async def main(stop: StopSignal) -> int:
        from ..workflows import bind_args, load_workflow, outline, phase_lines, run_workflow, status_line

        launch = Launch.prepare(
            config_path=config_path, concurrency=concurrency, max_cost=max_cost, argv=argv, executor=executor
        )
        config, root = launch.config, launch.root
        _note_batch(config)
        definition = load_workflow(target)
        values = bind_args(definition, args)
        settings = definition.settings(config, cwd=root)
        seen = outline(target)
        default, named = _models(seen.models, settings.default_model, config)
        for ref in dict.fromkeys([default, *named.values()]):  # agent(max_tokens=...) is checked as it starts
            check_max_tokens(ref, settings.max_tokens, source="[job] max_tokens")
        launch.check_models([default, *named.values()])
        check_workspace(root)
        if not confirm_launch(_summary(target, settings, seen, config, root), yes=yes):
            say("workflow: not started")
            return ExitCode.STOPPED
        async with launch.open(f"workflow:{settings.name}", stop, remote="agents") as job:
            # The dashboard shows the script as it was at launch, even if the file changes later.
            script = _text(target)
            job.journal.event(job.run_id, "script", None, source="workflow", path=str(target), text=script)
            async with watch_job(job):  # the live view replaces the periodic status line
                result = await run_workflow(
                    definition, values, job, settings=settings, root=root, say=say, retry_failed=retry_failed
                )
            say(status_line(result.runtime))
            for line in phase_lines(result.runtime):
                say(line)
        if retry_failed:
            say(f"workflow: {result.retried} agent(s) that had failed were sent afresh")
        for note in result.runtime.sandboxes.notes:
            say(f"  note: {note}")
        launch.failures(result.failed, len(result.failed), where="the journal")
        if result.error:
            say(f"workflow: {result.error}")
        if result.report is not None:
            say(f"workflow: report written to {_shown(result.report, root)}")
        launch.ended("workflow", stopped=result.stopped)
        return result.exit_code

    return run_async(main)


def _text(path: Path, limit: int = 200_000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:limit]
    except OSError:
        return ""


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
