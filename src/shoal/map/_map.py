"""`shoal map`: one prompt template over every record of a dataset, results appended to JSONL."""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import CallResult, CallSpec, Job, LocalExecutor, StopSignal
from ..engine._batch import BatchRound
from ..errors import BudgetExhausted, ExitCode, InputError, ModelCallError
from ..journal import ItemStatus, RunStatus
from ..providers import Message, ModelRef, ModelRequest
from ._inputs import Record, iter_records
from ._map_batch import BatchAnswers
from ._output import DigestSet, JsonlOutput, id_digest, line_digest
from ._resume import DoneCheck, Reconciled
from ._template import Template

__all__ = ["MapPlan", "MapResult", "load_schema", "plan_map", "run_map"]

STAGE = "map"


@dataclass(frozen=True, slots=True)
class MapPlan:
    """Everything checked before a single request is sent.

    The records stay in the input file: a run reads them again as a stream, so a job's memory
    does not grow with its dataset.
    """

    job_name: str
    input_path: Path
    id_field: str
    id_required: bool
    template: Template
    total: int
    ids: DigestSet  # fingerprints of the records' ids, 8 bytes each
    model: ModelRef
    out: Path
    schema: dict[str, Any] | None
    max_tokens: int

    def records(self) -> Iterator[Record]:
        return iter_records(self.input_path, id_field=self.id_field, id_required=self.id_required)

    def prompt(self, record: Record) -> str:
        return self.template.render(record.fields)


_SHOWN_FAILURES = 20  # failures kept for the summary; the journal has them all


@dataclass(slots=True)
class MapResult:
    total: int
    done: int = 0
    already_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # the first few, for the summary
    failed_count: int = 0
    retried: int = 0  # failed records sent afresh (--retry-failed)
    stopped: str | None = None
    halted: str | None = None  # every call failed alike: fix the cause before rerunning

    def fail(self, record_id: str, error: str) -> None:
        self.failed_count += 1
        if len(self.failed) < _SHOWN_FAILURES:
            self.failed[record_id] = error

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of(failed=self.failed_count > 0, stopped=bool(self.stopped), halted=bool(self.halted))


def load_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: schema file not found") from None
    except ValueError as exc:
        raise InputError(f"{path}: schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InputError(f"{path}: schema must be a JSON object")
    from jsonschema import Draft202012Validator, SchemaError  # about 0.1 s: only when a schema is given

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
    prompt = Template(template)
    # One streaming pass checks every record; ids are kept as 8-byte fingerprints only.
    fingerprints: array[int] = array("q")
    total = 0
    for record in iter_records(input_path, id_field=id_field, id_required=id_required):
        missing = prompt.missing(record.fields)
        if missing:
            raise InputError(
                f"{input_path}:{record.line}: record '{record.id}' has no field '{missing[0]}' "
                "used by the template"
            )
        fingerprints.append(id_digest(record.id))
        total += 1
    if not total:
        raise InputError(f"{input_path}: no records")
    if _has_duplicates(fingerprints):
        _raise_duplicate(input_path, id_field, id_required, fingerprints)
    if not prompt.fields and total > 1:
        raise InputError(
            "the prompt template has no {field} placeholder: every record would get the same prompt"
        )
    return MapPlan(
        f"map:{out.resolve()}",
        input_path,
        id_field,
        id_required,
        prompt,
        total,
        DigestSet(fingerprints),
        model,
        out,
        schema,
        max_tokens,
    )


def _has_duplicates(fingerprints: array[int]) -> bool:
    ordered = sorted(fingerprints)
    return any(a == b for a, b in zip(ordered, ordered[1:], strict=False))


def _raise_duplicate(path: Path, id_field: str, id_required: bool, fingerprints: array[int]) -> None:
    """Name the first repeated id and where it was first seen (a second pass, only on error)."""
    ordered = sorted(fingerprints)
    suspects = {a for a, b in zip(ordered, ordered[1:], strict=False) if a == b}
    seen: dict[str, int] = {}
    for record in iter_records(path, id_field=id_field, id_required=id_required):
        if id_digest(record.id) not in suspects:
            continue
        if record.id in seen:
            raise InputError(
                f"{path}:{record.line}: duplicate id '{record.id}' (first on line {seen[record.id]})"
            )
        seen[record.id] = record.line


async def _reconcile(
    plan: MapPlan, job: Job, check: DoneCheck, result: MapResult, retry_failed: bool
) -> tuple[Reconciled | None, dict[str, int]]:
    """Count what OUT already holds and mark the rest pending; None when every record is done
    (the no-op rerun: the dataset is not read again). Also the records' retry generations."""
    journal, job_name = job.journal, plan.job_name
    if retry_failed:  # before reconciling, which marks every record not done as pending
        failed = journal.items_with_status(job_name, ItemStatus.FAILED)
        if failed:
            await journal.start_retry(job_name, failed)
        result.retried = len(failed)
    if check.all_done(plan.ids, plan.total):
        result.already_done = plan.total
        return None, {}
    generations = journal.retry_generations(job_name)  # only the items ever retried
    reconciled = await check.reconcile(plan.records())
    result.already_done = reconciled.already_done
    return reconciled, generations


async def _batch_answers(
    plan: MapPlan, check: DoneCheck, batch: BatchRound, spec_of: Callable[[Record], CallSpec]
) -> BatchAnswers:
    """One batch round for every record not done yet; `process` then writes what it answered."""
    # A record edited since the check is failed by `process`, not sent in the batch.
    specs = [spec_of(r) for r in check.pending(plan.records) if not plan.template.missing(r.fields)]
    return await BatchAnswers.collect(batch, specs, STAGE)


def _output_line(plan: MapPlan, record: Record, answer: CallResult) -> bytes:
    """The line OUT gets for a record's answer (a structured answer as JSON, not as a string)."""
    output_value: Any = json.loads(answer.text) if plan.schema is not None else answer.text
    return JsonlOutput.encode(
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


def _finish(job: Job, result: MapResult, answers: BatchAnswers | None) -> None:
    if answers is not None and answers.stopped:
        job.stop.drain(answers.stopped)
    if job.streak is not None and job.streak.reason:
        result.halted = job.streak.reason
    elif not job.stop.running:
        result.stopped = job.stop.reason or "stopped"
    job.status = result.exit_code.run_status


async def run_map(
    plan: MapPlan, job: Job, *, retry_failed: bool = False, batch: BatchRound | None = None
) -> MapResult:
    output = JsonlOutput(plan.out)
    journal, job_name = job.journal, plan.job_name
    check = DoneCheck(journal, job_name, output.existing_lines())
    result = MapResult(total=plan.total)
    reconciled, generations = await _reconcile(plan, job, check, result, retry_failed)
    if reconciled is None:
        job.status = RunStatus.DONE
        return result

    def spec_of(record: Record) -> CallSpec:
        request = ModelRequest(
            model=plan.model.name,
            messages=(Message("user", plan.prompt(record)),),
            max_tokens=plan.max_tokens,
            schema=plan.schema,
        )
        return CallSpec(
            scope=f"{job_name}#{record.id}",
            stage=STAGE,
            model=plan.model,
            request=request,
            retry=generations.get(record.id, 0),
        )

    answers: BatchAnswers | None = None
    if batch is not None and reconciled.pending:
        try:
            answers = await _batch_answers(plan, check, batch, spec_of)
        except ModelCallError as exc:  # an account-level error, or a batch that cannot be told apart
            result.halted = str(exc)
            job.status = RunStatus.FAILED
            return result

    async def process(record: Record) -> None:
        missing = plan.template.missing(record.fields)
        if missing:  # the input file was edited after it was checked
            error = f"record changed since the job started: no field '{missing[0]}'"
            result.fail(record.id, error)
            await journal.set_item(job_name, record.id, ItemStatus.FAILED, stage=STAGE, error=error)
            return
        spec = spec_of(record)
        try:
            answer = await (answers.answer(spec, job.caller) if answers else job.caller.call(spec))
            if answer is None:
                return
        except BudgetExhausted as exc:
            job.stop.drain(f"budget: {exc}")
            return
        except ModelCallError as exc:
            result.fail(record.id, str(exc))
            await journal.set_item(
                job_name, record.id, ItemStatus.FAILED, stage=STAGE, error=str(exc), attempts=1
            )
            return
        line = _output_line(plan, record, answer)
        digest = line_digest(line)
        # A replayed answer whose line is already in the file was written before a crash that
        # came before the journal heard of it: it is not written twice.
        if digest not in check.present:
            await output.append(line)
        # The line is on disk: the journal may now call the item done. Nobody waits for this
        # write; if it is lost, the next run replays the call and finds the line in the file.
        journal.write_nowait(
            [
                journal.item_write(
                    job_name, record.id, ItemStatus.DONE, stage=STAGE, output=str(plan.out), attempts=1
                ),
                journal.line_write(job_name, record.id, digest),
            ]
        )
        result.done += 1

    if reconciled.pending:
        output.open()
        try:
            # Answers a batch round collected are written even when the job is stopping: they are paid for.
            await LocalExecutor(job.caller.concurrency).run(
                check.pending(plan.records), process, stop=StopSignal() if batch is not None else job.stop
            )
        finally:
            output.close()
    _finish(job, result, answers)
    return result
