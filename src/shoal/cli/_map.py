"""`shoal map`."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_config
from ..engine import Job, StopSignal, Workspace, open_job
from ..errors import InputError
from ..jobs import STAGE as MAP_STAGE
from ..jobs import MapResult, load_schema, plan_map, run_map
from ..providers import ProviderSet, resolve_model
from ..view import watch_job
from ._common import ConcurrencyOption, totals_line, unpriced_warning, with_overrides
from ._runtime import run_async, say

__all__ = ["map_command"]


def _summary(result: MapResult, job: Job, out: Path) -> str:
    return (
        f"map: {result.already_done + result.done}/{result.total} done "
        f"({result.done} now, {result.already_done} earlier), {len(result.failed)} failed; "
        f"{totals_line(job)} -> {out}"
    )


def map_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL or CSV records.")],
    model: Annotated[str, typer.Option("--model", help="provider:model or an alias from shoal.toml.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file the results are appended to.")],
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
) -> None:
    """Run one prompt template over every record of INPUT; results are appended to OUT."""
    argv = ["shoal", *sys.argv[1:]]

    async def main(stop: StopSignal) -> int:
        if (prompt is None) == (prompt_file is None):
            raise InputError("give the template with exactly one of --prompt or --prompt-file")
        template = prompt if prompt is not None else _read_template(prompt_file)
        config = with_overrides(load_config(config_path), concurrency, max_cost)
        ref = resolve_model(model, config)
        providers = ProviderSet(config, os.environ)
        providers.check(ref)
        warning = unpriced_warning(config, [ref])
        if warning:
            say(warning)
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
        async with open_job(
            workspace=Workspace(Path.cwd()),
            config=config,
            name=plan.job_name,
            command=shlex.join(argv),
            env=os.environ,
            stop=stop,
            providers=providers,
        ) as job:
            async with watch_job(job, stages=(MAP_STAGE,)):  # live view on stderr, snapshots for status
                result = await run_map(plan, job)
            say(_summary(result, job, out))
        for record_id, error in list(result.failed.items())[:20]:
            say(f"  failed: {record_id}: {error}")
        if len(result.failed) > 20:
            say(f"  ... and {len(result.failed) - 20} more failed (see `shoal journal`)")
        if result.stopped:
            say(f"map: stopped ({result.stopped}); resume with: {shlex.join(argv)}")
        return result.exit_code

    code = run_async(main)
    raise typer.Exit(code)


def _read_template(path: Path | None) -> str:
    assert path is not None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the prompt file: {exc.strerror}") from None
