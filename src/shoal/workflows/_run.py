"""Running a workflow as a job: the runtime installed, the entry point awaited, the outcome
turned into a report and an exit code (0 done, 1 some agents failed or the script failed,
3 stopped and resumable)."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic_core

from ..engine import Job, StateDir, Stopped, StopState
from ..errors import ExitCode, UsageError
from ..gate import write_atomic
from ..journal import ItemStatus
from ._definition import Workflow
from ._errors import AgentCapExceeded, AgentFailed
from ._paths import Scope, in_scope, slug
from ._runtime import RunSettings, Runtime, installed

__all__ = ["WorkflowResult", "phase_lines", "report_path", "run_workflow", "status_line"]


@dataclass(slots=True)
class WorkflowResult:
    name: str
    runtime: Runtime
    value: Any = None
    report: Path | None = None
    failed: dict[str, str] = field(default_factory=dict)  # agent path -> why
    stopped: str | None = None  # why it stopped early (resumable)
    error: str | None = None  # why it ended early (not resumable as is)
    retried: int = 0  # agents that had failed for good, sent afresh (--retry-failed)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of(failed=bool(self.error or self.failed), stopped=bool(self.stopped))


def report_path(root: Path, name: str) -> Path:
    return StateDir(root).reports / f"{slug(name, 'workflow')}.md"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value if value.endswith("\n") else value + "\n"
    if value is None:
        return "(the workflow returned nothing)\n"
    try:
        dumped = pydantic_core.to_json(value, indent=2).decode()
    except pydantic_core.PydanticSerializationError:
        dumped = repr(value)
    return f"```json\n{dumped}\n```\n"


def _write_report(path: Path, value: Any) -> Path:
    write_atomic(path, _render(value))  # a rewritten report keeps its permissions
    return path


async def _report_failure(result: WorkflowResult, root: Path) -> None:
    """A run that ended on an error still writes its report: what the finished agents did is not
    lost with the one that failed."""
    if result.error is None or result.stopped is not None:
        return
    runtime = result.runtime
    await runtime.job.journal.flush()
    path = report_path(root, runtime.settings.name)
    result.report = await asyncio.to_thread(_write_failure_report, path, runtime, result.error)


def _write_failure_report(path: Path, runtime: Runtime, error: str) -> Path:
    job = runtime.job
    rows = job.journal.items(job.name)
    lines = [f"# Workflow {runtime.settings.name}: did not finish", "", error, ""]
    failed = [row for row in rows if row.status == ItemStatus.FAILED]
    done = [row for row in rows if row.status == ItemStatus.DONE]
    if failed:
        lines += ["## Failed agents", ""]
        lines += [f"- `{row.id}`: {row.error or 'failed'}" for row in failed]
        lines.append("")
    lines += [f"## Finished agents ({len(done)})", ""]
    lines += [f"- `{row.id}`: {' '.join(str(row.file or '').split())}" for row in done]
    if not done:
        lines.append("(none)")
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _script_error(exc: BaseException, source: Path | None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if source is not None and f.filename == str(source)]
    where = f" ({Path(mine[-1].filename).name}:{mine[-1].lineno})" if mine else ""
    text = str(exc).strip().splitlines()
    return f"the workflow raised {type(exc).__name__}: {text[0] if text else ''}{where}".rstrip()


def status_line(runtime: Runtime) -> str:
    job = runtime.job
    agents = runtime.agents
    stats = job.caller.stats
    total = job.ledger.total
    return (
        f"workflow {runtime.settings.name}: agents {agents.done} done, {agents.running} running, "
        f"{agents.failed} failed ({agents.started} started); requests {stats.sent} sent, "
        f"{stats.replayed} replayed; tokens {total.input_tokens:,} in / {total.output_tokens:,} out; "
        f"${total.cost_usd:.4f} this run (${job.ledger.spent:.4f} job total)"
    )


def phase_lines(runtime: Runtime) -> list[str]:
    """Per phase: agents, requests, tokens and dollars, for the summary after a run."""
    lines = []
    for stage, tally in runtime.job.ledger.by_stage.items():
        lines.append(
            f"  phase {stage}: {runtime.agents.by_phase.get(stage, 0)} agents; {tally.calls} requests sent, "
            f"{tally.replayed} replayed; tokens {tally.input_tokens:,} in / {tally.output_tokens:,} out; "
            f"${tally.cost_usd:.4f}"
        )
    return lines


async def _progress(runtime: Runtime, say: Callable[[str], None], every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        say(status_line(runtime))


async def _start_retry(job: Job) -> list[str]:
    """Agents that failed for good get a new retry generation: their requests are sent afresh."""
    states = job.journal.item_states(job.name)
    failed = [item for item, state in states.items() if state is ItemStatus.FAILED]
    await job.journal.start_retry(job.name, failed)
    return failed


def _note_streak(result: WorkflowResult, job: Job) -> None:
    reason = (job.streak.reason if job.streak is not None else None) or result.runtime.agent_streak.reason
    if reason:
        result.stopped = None  # not resumable as it is: the cause needs fixing first
        result.error = f"halted: {reason}"


async def run_workflow(
    definition: Workflow[..., Any],
    args: dict[str, Any],
    job: Job,
    *,
    settings: RunSettings,
    root: Path,
    say: Callable[[str], None] | None = None,
    progress_every_s: float | None = None,
    retry_failed: bool = False,
) -> WorkflowResult:
    """Run the entry point inside `job`; the report lands in .shoal/reports/ under `root`.

    `retry_failed`: agents that failed for good in earlier runs get a new retry generation, so
    their requests are sent afresh instead of replayed."""
    failed = await _start_retry(job) if retry_failed else []
    runtime = Runtime(job, settings, root=root, say=say)
    result = WorkflowResult(settings.name, runtime, retried=len(failed))
    with installed(runtime), in_scope(Scope("")):
        task = asyncio.ensure_future(definition.fn(**args))  # a task of its own: Ctrl-C twice cancels it

        def cancel() -> None:
            task.cancel()

        job.stop.on_cancel(cancel)
        reporter = (
            asyncio.ensure_future(_progress(runtime, say, progress_every_s))
            if say is not None and progress_every_s
            else None
        )
        try:
            value = await task
        except asyncio.CancelledError:
            if job.stop.state is not StopState.CANCELLED:
                raise
            result.stopped = job.stop.reason or "cancelled"
        except Stopped as exc:
            result.stopped = job.stop.reason or str(exc) or "stopped"
        except (AgentFailed, AgentCapExceeded) as exc:
            result.error = str(exc)
        except UsageError:
            raise
        except Exception as exc:  # a bug in the script: one line, where it happened
            result.error = _script_error(exc, definition.source)
        else:
            if not job.stop.running:
                result.stopped = job.stop.reason or "stopped"
            else:
                result.value = value
                result.report = await asyncio.to_thread(
                    _write_report, report_path(root, settings.name), value
                )
        finally:
            if reporter is not None:
                reporter.cancel()
    await _report_failure(result, root)
    result.failed = dict(runtime.failures)
    _note_streak(result, job)
    job.status = result.exit_code.run_status
    return result
