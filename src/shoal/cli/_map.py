"""`shoal map`."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from ..engine import Job, StopSignal
from ..errors import InputError
from ..estimate import Estimate, estimate_map
from ..map import STAGE as MAP_STAGE
from ..map import MapPlan, MapResult, load_schema, plan_map, run_map
from ..preflight import check_max_tokens, check_output_file, check_template, check_workspace
from ..pricing import PriceBook
from ..providers import resolve_model
from ..view import watch_job
from ._batch import (
    Fallback,
    batch_config,
    cancel_job_batches,
    launch_estimate,
    maybe_batch_round,
)
from ._common import ConcurrencyOption, totals_line
from ._executor import ExecutorOption
from ._launch import Launch
from ._map_roles import RolesOptions, run_roles_command
from ._runtime import resume_argv, run_async, say

__all__ = ["map_command"]

ESTIMATE_SAMPLE = 1000  # records whose prompts size the launch estimate


def _summary(result: MapResult, job: Job, out: Path) -> str:
    return (
        f"map: {result.already_done + result.done}/{result.total} done "
        f"({result.done} now, {result.already_done} earlier), {result.failed_count} failed; "
        f"{totals_line(job)} -> {out}"
    )


def map_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL or CSV records.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file the results are appended to.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="provider:model or an alias from shoal.toml (with --roles: the default)."
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Template with {field} placeholders.")
    ] = None,
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", help="Read the template from a file.")
    ] = None,
    id_field: Annotated[
        str | None, typer.Option("--id-field", help="Field holding each record's id.")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="JSON Schema the answers must match.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Answer budget per call.")
    ] = None,
    concurrency: ConcurrencyOption = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", min=0.0, help="Stop before this many USD.")
    ] = None,
    config_path: Annotated[Path | None, typer.Option("--config", help="shoal.toml to use.")] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send records that failed in earlier runs afresh.")
    ] = False,
    roles: Annotated[
        Path | None,
        typer.Option("--roles", help="roles.toml: several prompts per record, with dependencies."),
    ] = None,
    batch: Annotated[
        bool, typer.Option("--batch", help="Through the provider's batch API: half the price, within 24h.")
    ] = False,
    batch_fallback: Annotated[
        Fallback | None,
        typer.Option("--batch-fallback", help="Where requests go once their batch attempts are spent."),
    ] = None,
    cancel_batches: Annotated[
        bool, typer.Option("--cancel-batches", help="Cancel this job's open batches and exit.")
    ] = False,
    executor: ExecutorOption = None,
) -> None:
    """Run one prompt template (or the roles of --roles) over every record of INPUT; results are appended
    to OUT."""
    argv = resume_argv()

    async def main(stop: StopSignal) -> int:
        if roles is not None:
            _refuse_with_roles(prompt is not None or prompt_file is not None or schema is not None)
            options = RolesOptions(
                input_path,
                roles,
                out,
                model,
                id_field,
                max_tokens,
                concurrency,
                max_cost,
                config_path,
                retry_failed,
                executor,
            )
            return await run_roles_command(options, stop, argv)
        if model is None:
            raise InputError("Missing option '--model' (or --roles with a model per role)")
        template = _template(prompt, prompt_file)
        launch = Launch.prepare(
            config_path=config_path,
            concurrency=concurrency,
            max_cost=max_cost,
            argv=argv,
            executor=executor,
            batch_fallback=batch_fallback,
        )
        config = launch.config
        ref = resolve_model(model, config)
        use_batch = batch_config(config, batch, batch_fallback, [ref])
        check_max_tokens(
            ref,
            max_tokens or config.job.max_tokens,
            source="--max-tokens" if max_tokens else "[job] max_tokens",
        )
        launch.check_models([ref])
        plan = plan_map(
            input_path=input_path,
            template=template,
            model=ref,
            out=out,
            id_field=id_field or "id",
            id_required=id_field is not None,
            schema=load_schema(schema) if schema is not None else None,
            max_tokens=max_tokens or config.job.max_tokens,
        )
        inputs = [("INPUT", input_path), ("--prompt-file", prompt_file), ("--schema", schema)]
        check_output_file(
            out,
            inputs=[(label, path) for label, path in inputs if path is not None],
            state_dir=launch.state.state_dir,
        )
        check_workspace(launch.root)
        async with launch.open(plan.job_name, stop) as job:
            if cancel_batches:
                say(f"map: {await cancel_job_batches(job, os.environ)} open batch(es) cancelled")
                return 0

            # Estimated once the workspace is ours: the journal's earlier calls of this job inform it.
            _launch_estimate(plan, job, ref.key, use_batch=use_batch)
            async with (
                watch_job(job, stages=(MAP_STAGE,)),  # live view on stderr, snapshots for status
                maybe_batch_round(job, os.environ, use_batch) as rounds,
            ):
                result = await run_map(plan, job, retry_failed=retry_failed, batch=rounds)
            if retry_failed:
                say(f"map: {result.retried} record(s) that had failed were sent afresh")
            say(_summary(result, job, out))
        launch.failures(result.failed, result.failed_count, where="`shoal journal`")
        launch.ended("map", stopped=result.stopped, halted=result.halted)
        return result.exit_code

    code = run_async(main)
    raise typer.Exit(code)


def _template(prompt: str | None, prompt_file: Path | None) -> str:
    if (prompt is None) == (prompt_file is None):
        raise InputError("give the template with exactly one of --prompt or --prompt-file")
    template = prompt if prompt is not None else _read_template(prompt_file)
    check_template(template, source=f"--prompt-file {prompt_file}" if prompt_file else "--prompt")
    return template


def _launch_estimate(plan: MapPlan, job: Job, model_key: str, *, use_batch: bool) -> None:
    """Say what the job should cost (online and, with --batch, through batches), warn when that is
    over the cost budget, and journal it for the report."""

    def estimate_at(prices: PriceBook) -> Estimate:
        return estimate_map(
            plan.job_name,
            ((r.id, plan.prompt(r)) for r in islice(plan.records(), ESTIMATE_SAMPLE)),
            total=plan.total,
            model_key=model_key,
            max_tokens=plan.max_tokens,
            prices=prices,
            rows=job.journal.iter_usage(plan.job_name),
        )

    estimate, lines = launch_estimate(estimate_at, job.ledger.prices, batch=use_batch)
    for line in lines:
        say(f"map: {line}")
    warning = estimate.budget_warning(job.config.job.max_cost_usd)
    if warning:
        say(warning)
    job.journal.event(job.run_id, "estimate", None, **estimate.journal_detail())


def _refuse_with_roles(prompt_given: bool) -> None:
    if prompt_given:
        raise InputError(
            "--roles gives each role its prompt and schema: drop --prompt, --prompt-file, --schema"
        )


def _read_template(path: Path | None) -> str:
    assert path is not None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the prompt file: {exc.strerror}") from None
