"""`shoal draft "TASK"`: assess the target, have a model write the workflow (or plan), check it,
show it, and write it only when the user approves; `--run` then runs it as `shoal run` would.

Exit codes: 0 written (and, with --run, the run's own code), 1 every round was refused (nothing
written), 2 usage errors (no oracle without --no-oracle, no terminal without --yes, an existing
--out without --force), 3 declined or stopped (resumable: the same command replays the draft).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..config import ShoalConfig, load_config
from ..engine import Stopped, StopSignal
from ..errors import ExitCode, InputError
from ..journal import RunStatus, read_usage
from ..plan import PlanMode
from ..preflight import check_workspace
from ..providers import ModelRef, resolve_model
from ._common import totals_line
from ._launch import Launch
from ._runtime import invoked_as, run_async, say

__all__ = ["draft_command"]

_MAX_JOURNALED_SCRIPT = 200_000


def draft_command(
    task: Annotated[str, typer.Argument(metavar="TASK", help="What the workflow (or plan) must do.")],
    target: Annotated[Path, typer.Option("--target", help="The directory the work is about.")] = Path("."),
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write it (default workflow.py, or PLAN.md).")
    ] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Draft a Markdown batch plan instead.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="The model that drafts (an alias).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write it without asking.")] = False,
    run: Annotated[bool, typer.Option("--run", help="Run it once written, as `shoal run` does.")] = False,
    no_oracle: Annotated[
        bool, typer.Option("--no-oracle", help="Draft even though no test command was found.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    config_path: Annotated[Path | None, typer.Option("--config", help="shoal.toml to use.")] = None,
) -> None:
    """Have a model write a workflow script (or a batch plan) for TASK; approve it before anything runs."""
    kind = "plan" if plan else "workflow"
    destination = out or Path("PLAN.md" if plan else "workflow.py")
    code = run_async(
        lambda stop: _draft(
            task,
            kind=kind,
            target=target,
            out=destination,
            model=model,
            yes=yes,
            no_oracle=no_oracle,
            force=force,
            config_path=config_path,
            stop=stop,
        )
    )
    if code == 0 and run:
        argv = [*invoked_as(), "run", str(destination), "--yes"] + (
            ["--config", str(config_path)] if config_path else []
        )
        code = _run(destination, kind, config_path, argv)
    raise typer.Exit(code)


def _run(out: Path, kind: str, config_path: Path | None, argv: list[str]) -> int:
    say(f"draft: running {out} ({shlex.join(argv)})")
    if kind == "plan":
        from ._plan import run_plan_command

        return run_plan_command(
            out,
            phase=None,
            yes=True,
            canary=None,
            mode=PlanMode.PHASED,
            concurrency=None,
            max_cost=None,
            config_path=config_path,
            argv=argv,
        )
    from ._workflow import run_workflow_command

    return run_workflow_command(
        out, args=[], yes=True, concurrency=None, max_cost=None, config_path=config_path, argv=argv
    )


def _check_paths(kind: str, target: Path, out: Path) -> None:
    if not target.is_dir():
        raise InputError(f"--target {target}: not a directory")
    wanted = (".md", ".markdown") if kind == "plan" else (".py",)
    if out.suffix.lower() not in wanted:
        raise InputError(f"--out {out}: a {kind} is written to a {' or '.join(wanted)} file")
    if out.is_dir():
        raise InputError(f"--out {out}: is a directory")


def _drafting_model(model: str | None, config: ShoalConfig) -> ModelRef:
    return resolve_model(model or config.draft.model or config.workflow.default_model or "rehearsal", config)


async def _draft(
    task: str,
    *,
    kind: str,
    target: Path,
    out: Path,
    model: str | None,
    yes: bool,
    no_oracle: bool,
    force: bool,
    config_path: Path | None,
    stop: StopSignal,
) -> int:
    from ..draft import (
        assess,
        check_plan_draft,
        check_workflow_draft,
        draft_job_name,
        first_messages,
        require_terminal,
        size_caps,
        write_draft,
    )

    config = load_config(config_path)
    root = Path.cwd()
    _check_paths(kind, target, out)
    assessment = assess(task, target.resolve())
    if not assessment.oracles and not no_oracle:
        raise InputError(
            f"no test suite or other oracle found under {target} (pyproject, pytest/tox config, Makefile, "
            "package.json, test files): without one a workflow burns tokens on opinions; add a test command, "
            "or pass --no-oracle to draft anyway"
        )
    require_terminal(yes=yes)
    ref = _drafting_model(model, config)
    launch = Launch.prepare(config_path=config_path, concurrency=None, max_cost=None, config=config)
    launch.check_models([ref])
    check_workspace(root)
    name = draft_job_name(kind, task, target)
    journal_path = launch.state.journal_path
    if out.exists() and not force and not read_usage(journal_path, name):
        raise InputError(f"--out {out}: already exists; pass --force to replace it")
    caps = size_caps(assessment, answer_tokens=config.job.max_tokens)
    relative = Path(os.path.relpath(target.resolve(), out.resolve().parent)).as_posix()
    messages = first_messages(
        task, assessment, kind=kind, caps=caps, target_for_script=relative, models=sorted(config.models)
    )
    say(f"draft: {len(assessment.files)} file(s) under {target}; drafting a {kind} with {ref}")

    async def check(text: str) -> Any:
        if kind == "plan":
            return check_plan_draft(text, out=out, root=root, config=config)
        return await check_workflow_draft(text, out=out, target=target, caps=caps, config=config, stop=stop)

    command = launch.command
    async with launch.open(name, stop) as job:
        try:
            outcome = await write_draft(
                job,
                model=ref,
                messages=messages,
                kind=kind,
                check=check,
                fix_rounds=config.draft.fix_rounds,
                max_tokens=config.draft.max_tokens,
                say=say,
            )
        except Stopped:
            pass
        if not stop.running:
            job.status = RunStatus.STOPPED
            say(f"draft: stopped ({stop.reason}); nothing written; resume with: {command}")
            return ExitCode.STOPPED
        if outcome.checked is not None:
            text = outcome.checked.text
            job.journal.event(
                job.run_id, "script", None, source=kind, path=str(out), text=text[:_MAX_JOURNALED_SCRIPT]
            )
        job.status = RunStatus.DONE if outcome.checked is not None else RunStatus.FAILED
        say(f"draft: {len(outcome.attempts)} round(s); {totals_line(job)}")
    if outcome.checked is None:
        say(f"draft: refused after {len(outcome.attempts)} round(s), nothing written: {outcome.last_error}")
        return ExitCode.FAILED
    return _approve_and_write(
        outcome.checked,
        kind=kind,
        out=out,
        yes=yes,
        force=force,
        assessment=assessment,
        config=config,
        root=root,
    )


def _approve_and_write(
    checked: Any,
    *,
    kind: str,
    out: Path,
    yes: bool,
    force: bool,
    assessment: Any,
    config: ShoalConfig,
    root: Path,
) -> int:
    from ..draft import approve, decision_tree, plan_summary, render_draft, workflow_summary

    text: str = checked.text
    if kind == "plan":
        summary = plan_summary(checked)
        plan = checked.plan
        answers = decision_tree(assessment, phases=len(plan.phases), gates=plan.lint_commands)
    else:
        dry = checked.dry_run
        summary = workflow_summary(checked, config, root)
        answers = decision_tree(
            assessment, phases=len(dry.phases), agents=dry.agents, loops=dry.outline.verify_fix_calls
        )
    console = Console(file=sys.stderr)
    render_draft(
        console, kind=kind, text=text, title=str(out), assessment=assessment, answers=answers, summary=summary
    )
    same = out.is_file() and out.read_text(encoding="utf-8", errors="replace") == text
    if out.exists() and not same and not force:
        say(f"shoal: error: --out {out}: already exists with other content; pass --force to replace it")
        return ExitCode.USAGE
    if not approve(f"Write the {kind} to {out}?", yes=yes):
        say("draft: not written")
        return ExitCode.STOPPED
    if same:
        say(f"draft: {out} already holds this {kind}; unchanged")
        return ExitCode.OK
    _write(out, text)
    say(f"draft: {kind} written to {out}; run it with: shoal run {shlex.quote(str(out))}")
    return ExitCode.OK


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)
