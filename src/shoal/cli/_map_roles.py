"""`shoal map INPUT --roles roles.toml`: several roles over every record, governed as one job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..engine import Job, StopSignal
from ..map import MapResult, RolesPlan, estimate_roles, plan_roles, run_roles
from ..preflight import check_max_tokens, check_output_file, check_workspace
from ..providers import resolve_model
from ..view import watch_job
from ._common import totals_line
from ._launch import Launch
from ._runtime import say

__all__ = ["RolesOptions", "run_roles_command"]


@dataclass(frozen=True, slots=True)
class RolesOptions:
    input_path: Path
    roles_path: Path
    out: Path
    model: str | None
    id_field: str | None
    max_tokens: int | None
    concurrency: str | int | None
    max_cost: float | None
    config_path: Path | None
    retry_failed: bool
    executor: str | None = None


def _role_counts(plan: RolesPlan, job: Job) -> str:
    """Per role: units done and failed, from the journal's items."""
    counts: dict[str, dict[str, int]] = {name: {} for name in plan.roles}
    for row in job.journal.item_counts(plan.job_name):
        if row.stage in counts:
            counts[row.stage][row.status] = row.n
    parts = []
    for name, by_status in counts.items():
        failed = by_status.get("failed", 0)
        parts.append(f"{name} {by_status.get('done', 0)}" + (f" ({failed} failed)" if failed else ""))
    return "; ".join(parts)


def _summary(result: MapResult, plan: RolesPlan, job: Job) -> str:
    return (
        f"map: {result.already_done + result.done}/{result.total} records done "
        f"({result.done} now, {result.already_done} earlier), {result.failed_count} failed; "
        f"roles done: {_role_counts(plan, job)}; {totals_line(job)} -> {plan.out}"
    )


async def run_roles_command(options: RolesOptions, stop: StopSignal, argv: list[str]) -> int:
    """Check everything (exit 2 on the first problem), then run the roles job; its exit code."""
    launch = Launch.prepare(
        config_path=options.config_path,
        concurrency=options.concurrency,
        max_cost=options.max_cost,
        argv=argv,
        executor=options.executor,
    )
    config = launch.config
    default_max_tokens = options.max_tokens or config.job.max_tokens
    plan = plan_roles(
        input_path=options.input_path,
        roles_path=options.roles_path,
        out=options.out,
        id_field=options.id_field or "id",
        id_required=options.id_field is not None,
        default_model=options.model,
        resolve=lambda name: resolve_model(name, config),
        default_max_tokens=default_max_tokens,
    )
    for role in plan.roles.values():
        check_max_tokens(
            role.model, role.max_tokens, source=f"{options.roles_path}: role '{role.name}' max_tokens"
        )
    launch.check_models(role.model for role in plan.roles.values())
    check_output_file(
        options.out,
        inputs=[
            ("INPUT", options.input_path),
            ("--roles", options.roles_path),
            *(("schema", path) for path in plan.schema_paths),
        ],
        state_dir=launch.state.state_dir,
    )
    check_workspace(launch.root)
    async with launch.open(plan.job_name, stop) as job:
        estimate = estimate_roles(plan, prices=job.ledger.prices, rows=job.journal.usage(plan.job_name))
        say(f"map: {len(plan.records)} records x {len(plan.roles)} roles; {estimate.line()}")
        warning = estimate.budget_warning(config.job.max_cost_usd)
        if warning:
            say(warning)
        job.journal.event(job.run_id, "estimate", None, **estimate.journal_detail())
        async with watch_job(job, stages=plan.stages):  # one stage per role in every view
            result = await run_roles(plan, job, retry_failed=options.retry_failed)
        if options.retry_failed:
            say(f"map: {result.retried} record(s) with a failed role were sent afresh")
        say(_summary(result, plan, job))
    launch.failures(result.failed, result.failed_count, where="`shoal journal`")
    launch.ended("map", stopped=result.stopped, halted=result.halted)
    return result.exit_code
