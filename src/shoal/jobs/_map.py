"""`shoal map`: one prompt template over every record of a dataset, results appended to JSONL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from ..engine import CallSpec, Job, LocalExecutor, StopSignal
from ..engine._batch import BatchRound
from ..errors import BudgetExhausted, InputError, ModelCallError
from ..journal import ItemStatus, RunStatus
from ..providers import Message, ModelRef, ModelRequest
from ._inputs import Record, read_records
from ._map_batch import BatchAnswers
from ._output import JsonlOutput
from ._template import Template

__all__ = ["MapPlan", "MapResult", "load_schema", "plan_map", "run_map"]

STAGE = "map"


@dataclass(frozen=True, slots=True)
class MapPlan:
    """Everything checked before a single request is sent."""

    job_name: str
    records: list[Record]
    prompts: dict[str, str]
    model: ModelRef
    out: Path
    schema: dict[str, Any] | None
    max_tokens: int


@dataclass(slots=True)
class MapResult:
    total: int
    done: int = 0
    already_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    retried: int = 0  # failed records sent afresh (--retry-failed)
    stopped: str | None = None
    halted: str | None = None  # every call failed alike: fix the cause before rerunning

    @property
    def exit_code(self) -> int:
        if self.halted:
            return 1
        if self.stopped:
            return 3
        return 1 if self.failed else 0


def load_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: schema file not found") from None
    except ValueError as exc:
        raise InputError(f"{path}: schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InputError(f"{path}: schema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InputError(f"{path}: not a valid JSON Schema: {exc.message}") from None
    return schema


def plan_map(
    *,
    input_path: Path,
    template: str,
    model: ModelRef,
    out: Path,
    id_field: str,
    id_required: bool,
    schema: dict[str, Any] | None,
    max_tokens: int,
) -> MapPlan:
    records = read_records(input_path, id_field=id_field, id_required=id_required)
    prompt = Template(template)
    if not prompt.fields and len(records) > 1:
        raise InputError(
            "the prompt template has no {field} placeholder: every record would get the same prompt"
        )
    prompts: dict[str, str] = {}
    for record in records:
        missing = prompt.missing(record.fields)
        if missing:
            raise InputError(
                f"{input_path}:{record.line}: record '{record.id}' has no field '{missing[0]}' "
                "used by the template"
            )
        prompts[record.id] = prompt.render(record.fields)
    return MapPlan(f"map:{out.resolve()}", records, prompts, model, out, schema, max_tokens)


async def _reconcile(
    plan: MapPlan, job: Job, output: JsonlOutput, result: MapResult, retry_failed: bool
) -> tuple[list[Record], dict[str, int]]:
    """Mark what the output file holds as done; the records still to do, and their retry generations."""
    written = output.existing_ids()
    states = job.journal.item_states(plan.job_name)
    # The output file is the truth about what is shipped: reconcile the journal with it.
    shipped = [r.id for r in plan.records if r.id in written]
    to_mark = [rid for rid in shipped if states.get(rid) is not ItemStatus.DONE]
    if to_mark:
        await job.journal.set_items(plan.job_name, to_mark, ItemStatus.DONE)
    result.already_done = len(shipped)
    pending = [r for r in plan.records if r.id not in written]
    new = [r.id for r in pending if r.id not in states]
    if new:
        await job.journal.set_items(plan.job_name, new, ItemStatus.PENDING)
    generations = job.journal.retry_generations(plan.job_name)
    if retry_failed:
        failed = [r.id for r in pending if states.get(r.id) is ItemStatus.FAILED]
        if failed:
            generations.update(await job.journal.start_retry(plan.job_name, failed))
        result.retried = len(failed)
    return pending, generations


async def run_map(
    plan: MapPlan, job: Job, *, retry_failed: bool = False, batch: BatchRound | None = None
) -> MapResult:
    output = JsonlOutput(plan.out)
    result = MapResult(total=len(plan.records))
    pending, generations = await _reconcile(plan, job, output, result, retry_failed)

    def spec_of(record: Record) -> CallSpec:
        request = ModelRequest(
            model=plan.model.name,
            messages=(Message("user", plan.prompts[record.id]),),
            max_tokens=plan.max_tokens,
            schema=plan.schema,
        )
        return CallSpec(
            scope=f"{plan.job_name}#{record.id}",
            stage=STAGE,
            model=plan.model,
            request=request,
            retry=generations.get(record.id, 0),
        )

    answers: BatchAnswers | None = None
    if batch is not None and pending:
        try:
            answers = await BatchAnswers.collect(batch, [spec_of(r) for r in pending], STAGE)
        except ModelCallError as exc:  # an account-level error, or a batch that cannot be told apart
            result.halted = str(exc)
            job.status = RunStatus.FAILED
            return result

    async def process(record: Record) -> None:
        spec = spec_of(record)
        try:
            answer = await (answers.answer(spec, job.caller) if answers else job.caller.call(spec))
            if answer is None:
                return
        except BudgetExhausted as exc:
            job.stop.drain(f"budget: {exc}")
            return
        except ModelCallError as exc:
            result.failed[record.id] = str(exc)
            await job.journal.set_item(
                plan.job_name, record.id, ItemStatus.FAILED, stage=STAGE, error=str(exc), attempts=1
            )
            return
        output_value: Any = json.loads(answer.text) if plan.schema is not None else answer.text
        await output.append(
            {
                "id": record.id,
                "output": output_value,
                "model": plan.model.key,
                "usage": {
                    "input_tokens": answer.usage.input_tokens,
                    "output_tokens": answer.usage.output_tokens,
                    "cached_tokens": answer.usage.cached_tokens,
                },
            }
        )
        await job.journal.set_item(
            plan.job_name, record.id, ItemStatus.DONE, stage=STAGE, output=str(plan.out), attempts=1
        )
        result.done += 1

    output.open()
    try:
        # Answers a batch round collected are written even when the job is stopping: they are paid for.
        await LocalExecutor(job.caller.concurrency).run(
            pending, process, stop=StopSignal() if batch is not None else job.stop
        )
    finally:
        output.close()
    if answers is not None and answers.stopped:
        job.stop.drain(answers.stopped)
    if job.streak is not None and job.streak.reason:
        result.halted = job.streak.reason
        job.status = RunStatus.FAILED
    elif not job.stop.running:
        result.stopped = job.stop.reason or "stopped"
        job.status = RunStatus.STOPPED
    else:
        job.status = RunStatus.FAILED if result.failed else RunStatus.DONE
    return result
