"""`shoal map --roles`: several specialised prompts (roles) over every record, with dependencies.

Work runs in (record, role) units. A unit becomes ready the moment its record's dependencies are
answered, with no barrier between roles across records: a pool of workers (the job's concurrency)
takes ready units earliest record first, so dependents of early records go before the roots of
later ones and records complete, and reach the output file, in a steady stream. Every unit is one
call through the job's one caller: the same rate budget, cost budget, concurrency and journal.
A unit's journal key holds its role and its rendered prompt, so a rerun replays every answered
unit and an edited role prompt re-sends that role and, through their changed prompts, its
dependents only.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import CallSpec, Job, Stopped
from ..errors import InputError, ModelCallError
from ..estimate import Estimate, estimate_map
from ..journal import ItemStatus, UsageRow
from ..pricing import PriceBook
from ..providers import Message, ModelRef, ModelRequest
from ._inputs import Record, read_records
from ._map import MapResult, load_schema
from ._output import JsonlOutput
from ._roles_config import RoleRef, RolesFile, load_roles_file, role_order, role_refs
from ._template import Template

__all__ = ["Role", "RolesPlan", "estimate_roles", "plan_roles", "run_roles", "unit_id"]


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    template: Template
    model: ModelRef
    max_tokens: int
    schema: dict[str, Any] | None
    system: str | None
    after: tuple[str, ...]
    refs: tuple[RoleRef, ...]
    dependents: tuple[str, ...]  # roles that name this one in `after`


@dataclass(frozen=True, slots=True)
class RolesPlan:
    """Everything checked before a single request is sent."""

    job_name: str
    records: list[Record]
    roles: dict[str, Role]  # in dependency order
    out: Path
    schema_paths: tuple[Path, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.roles)


def unit_id(record_id: str, role: str) -> str:
    """The journal item of one role of one record."""
    return f"{record_id}#{role}"


def plan_roles(
    *,
    input_path: Path,
    roles_path: Path,
    out: Path,
    id_field: str,
    id_required: bool,
    default_model: str | None,
    resolve: Callable[[str], ModelRef],
    default_max_tokens: int,
) -> RolesPlan:
    """Read the roles file and the records and check every role against every record."""
    roles_file = load_roles_file(roles_path)
    order = role_order(roles_file, source=roles_path)
    roles = _build_roles(roles_file, order, roles_path, default_model, resolve, default_max_tokens)
    records = read_records(input_path, id_field=id_field, id_required=id_required)
    for role in roles.values():
        referenced = {ref.placeholder for ref in role.refs}
        fields = [name for name in role.template.fields if name not in referenced]
        if not role.template.fields and len(records) > 1:
            raise InputError(
                f"{roles_path}: role '{role.name}' prompt has no {{field}} placeholder: every record "
                "would get the same prompt"
            )
        for record in records:
            missing = [name for name in fields if name not in record.fields]
            if missing:
                raise InputError(
                    f"{input_path}:{record.line}: record '{record.id}' has no field '{missing[0]}' "
                    f"used by role '{role.name}'"
                )
    schema_paths = tuple(
        roles_path.parent / config.schema_file
        for config in roles_file.roles.values()
        if config.schema_file is not None
    )
    return RolesPlan(f"roles:{out.resolve()}", records, roles, out, schema_paths)


def _build_roles(
    roles_file: RolesFile,
    order: list[str],
    roles_path: Path,
    default_model: str | None,
    resolve: Callable[[str], ModelRef],
    default_max_tokens: int,
) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for name in order:
        config = roles_file.roles[name]
        model_name = config.model or default_model
        if model_name is None:
            raise InputError(
                f"{roles_path}: role '{name}' names no model; give --model or model = \"...\" for it"
            )
        schema = None
        if config.schema_file is not None:
            schema = load_schema(roles_path.parent / config.schema_file)
        roles[name] = Role(
            name=name,
            template=Template(config.prompt),
            model=resolve(model_name),
            # --max-tokens on the command line is the default of the roles that set none.
            max_tokens=config.max_tokens or default_max_tokens,
            schema=schema,
            system=config.system,
            after=tuple(config.after),
            refs=tuple(role_refs(config.prompt, roles_file)),
            dependents=tuple(n for n in order if name in roles_file.roles[n].after),
        )
        for ref in roles[name].refs:
            properties = (roles[ref.role].schema or {}).get("properties")
            if ref.key is not None and isinstance(properties, dict) and ref.key not in properties:
                raise InputError(
                    f"{roles_path}: role '{name}' uses {{{ref.placeholder}}}, but the schema of role "
                    f"'{ref.role}' has no property '{ref.key}'"
                )
    return roles


def estimate_roles(plan: RolesPlan, *, prices: PriceBook, rows: Iterable[UsageRow]) -> Estimate:
    """The sum of one map estimate per role. A dependency's output in a prompt counts as its whole
    answer budget (it is unknown until it is answered), so the figure leans high."""
    rows = list(rows)
    expected = worst = spent = 0.0
    basis = ""
    for role in plan.roles.values():
        stand_in = {ref.placeholder: "word " * plan.roles[ref.role].max_tokens for ref in role.refs}
        prompts = [
            (unit_id(r.id, role.name), (role.system or "") + role.template.render({**r.fields, **stand_in}))
            for r in plan.records
        ]
        suffix = f"#{role.name}"
        part = estimate_map(
            plan.job_name,
            prompts,
            total=len(prompts),
            model_key=role.model.key,
            max_tokens=role.max_tokens,
            prices=prices,
            rows=[row for row in rows if row.scope.endswith(suffix)],
        )
        expected += part.expected_usd
        worst += part.worst_usd
        spent += part.spent_usd
        basis = basis or part.basis
    return Estimate(expected, worst, f"{basis}, summed over {len(plan.roles)} roles", spent_usd=spent)


@dataclass(slots=True)
class _RecordState:
    record: Record
    index: int
    unmet: dict[str, int]  # role -> dependencies not answered yet
    open: int  # roles neither answered, failed nor skipped
    outputs: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class _RolesRun:
    def __init__(self, plan: RolesPlan, job: Job, generations: dict[str, int], result: MapResult) -> None:
        self.plan = plan
        self.job = job
        self.generations = generations
        self.result = result
        self.output = JsonlOutput(plan.out)
        self.position = {name: i for i, name in enumerate(plan.roles)}
        self.roots = [name for name, role in plan.roles.items() if not role.after]
        self._ready: list[tuple[int, int, str, _RecordState]] = []
        self._source: list[Record] = []
        self._cursor = 0
        self._active = 0
        self._changed = asyncio.Condition()

    # -- scheduling ------------------------------------------------------------------------------

    async def run(self, pending: list[Record]) -> None:
        self._source = pending
        stop = self.job.stop

        async def wake_on_stop() -> None:
            await stop.wait()
            async with self._changed:
                self._changed.notify_all()

        watcher = asyncio.ensure_future(wake_on_stop())
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._worker()) for _ in range(self.job.caller.concurrency)]

                def cancel_all() -> None:
                    for task in tasks:
                        task.cancel()

                stop.on_cancel(cancel_all)
        finally:
            watcher.cancel()

    async def _worker(self) -> None:
        while True:
            taken = await self._take()
            if taken is None:
                return
            state, role = taken
            try:
                await self._unit(state, self.plan.roles[role])
            except Stopped:
                return
            finally:
                self._active -= 1
                async with self._changed:
                    self._changed.notify_all()

    async def _take(self) -> tuple[_RecordState, str] | None:
        """The next ready unit (earliest record first); None once nothing is left or the job stops."""
        async with self._changed:
            while True:
                if not self.job.stop.running:
                    return None
                if self._ready:
                    _, _, role, state = heapq.heappop(self._ready)
                    self._active += 1
                    return state, role
                if self._cursor < len(self._source):
                    self._admit(self._source[self._cursor], self._cursor)
                    self._cursor += 1
                    continue
                if self._active == 0:
                    self._changed.notify_all()
                    return None
                await self._changed.wait()

    def _admit(self, record: Record, index: int) -> None:
        unmet = {name: len(role.after) for name, role in self.plan.roles.items()}
        state = _RecordState(record, index, unmet, open=len(self.plan.roles))
        for name in self.roots:
            self._push(state, name)

    def _push(self, state: _RecordState, role: str) -> None:
        heapq.heappush(self._ready, (state.index, self.position[role], role, state))

    # -- one unit --------------------------------------------------------------------------------

    def _values(self, state: _RecordState, role: Role) -> dict[str, Any]:
        values: dict[str, Any] = dict(state.record.fields)
        for ref in role.refs:
            output = state.outputs[ref.role]
            if ref.key is None:
                values[ref.placeholder] = output
            else:  # a key the schema allows to be absent renders empty
                values[ref.placeholder] = output.get(ref.key, "") if isinstance(output, dict) else ""
        return values

    async def _unit(self, state: _RecordState, role: Role) -> None:
        plan, job = self.plan, self.job
        item = unit_id(state.record.id, role.name)
        messages: list[Message] = []
        if role.system:
            # The same instructions for every record of the role: a cacheable shared prefix.
            messages.append(Message("system", role.system, cache=True))
        messages.append(Message("user", role.template.render(self._values(state, role))))
        request = ModelRequest(
            model=role.model.name, messages=tuple(messages), max_tokens=role.max_tokens, schema=role.schema
        )
        spec = CallSpec(
            scope=f"{plan.job_name}#{item}",
            stage=role.name,
            model=role.model,
            request=request,
            retry=self.generations.get(item, 0),
        )
        try:
            answer = await job.caller.call(spec)
        except ModelCallError as exc:
            state.failed[role.name] = str(exc)
            await job.journal.set_item(
                plan.job_name, item, ItemStatus.FAILED, stage=role.name, error=str(exc), attempts=1
            )
            await self._skip_dependents(state, role)
            await self._resolved(state)
            return
        state.outputs[role.name] = json.loads(answer.text) if role.schema is not None else answer.text
        state.usage[role.name] = {
            "input_tokens": answer.usage.input_tokens,
            "output_tokens": answer.usage.output_tokens,
            "cached_tokens": answer.usage.cached_tokens,
        }
        await job.journal.set_item(plan.job_name, item, ItemStatus.DONE, stage=role.name, attempts=1)
        for name in role.dependents:
            state.unmet[name] -= 1
            if state.unmet[name] == 0 and name not in state.skipped:
                async with self._changed:
                    self._push(state, name)
                    self._changed.notify_all()
        await self._resolved(state)

    async def _skip_dependents(self, state: _RecordState, failed: Role) -> None:
        """Every role that needs `failed`, directly or not, is skipped for this record."""
        todo = list(failed.dependents)
        while todo:
            name = todo.pop()
            if name in state.skipped:
                continue
            state.skipped.append(name)
            state.open -= 1
            todo.extend(self.plan.roles[name].dependents)
            # Left pending: a rerun tries it again once what it needs is answered.
            await self.job.journal.set_item(
                self.plan.job_name,
                unit_id(state.record.id, name),
                ItemStatus.PENDING,
                stage=name,
                error=f"skipped: needs role '{failed.name}', which failed",
            )

    async def _resolved(self, state: _RecordState) -> None:
        state.open -= 1
        if state.open > 0:
            return
        if state.failed:
            failures = "; ".join(f"role '{name}' failed: {error}" for name, error in state.failed.items())
            skipped = f"; skipped: {', '.join(sorted(state.skipped))}" if state.skipped else ""
            self.result.fail(state.record.id, failures + skipped)
            return
        names = list(self.plan.roles)  # dependency order
        await self.output.append(
            JsonlOutput.encode(
                {
                    "id": state.record.id,
                    "roles": {name: state.outputs[name] for name in names},
                    "model": {name: self.plan.roles[name].model.key for name in names},
                    "usage": {name: state.usage[name] for name in names},
                }
            )
        )
        self.result.done += 1


async def run_roles(plan: RolesPlan, job: Job, *, retry_failed: bool = False) -> MapResult:
    """Run every role over every record not yet in the output file."""
    output = JsonlOutput(plan.out)
    written = output.existing_ids()
    result = MapResult(total=len(plan.records))
    states = job.journal.item_states(plan.job_name)
    units = {r.id: [unit_id(r.id, name) for name in plan.roles] for r in plan.records}
    # The output file is the truth about what is shipped: reconcile the journal with it.
    shipped = [r.id for r in plan.records if r.id in written]
    to_mark = [u for rid in shipped for u in units[rid] if states.get(u) is not ItemStatus.DONE]
    if to_mark:
        await job.journal.set_items(plan.job_name, to_mark, ItemStatus.DONE)
    result.already_done = len(shipped)
    pending = [r for r in plan.records if r.id not in written]
    new = [u for r in pending for u in units[r.id] if u not in states]
    if new:
        await job.journal.set_items(plan.job_name, new, ItemStatus.PENDING)
    generations = job.journal.retry_generations(plan.job_name)
    if retry_failed:
        failed = [u for r in pending for u in units[r.id] if states.get(u) is ItemStatus.FAILED]
        if failed:
            generations.update(await job.journal.start_retry(plan.job_name, failed))
        result.retried = len({u.rpartition("#")[0] for u in failed})
    runner = _RolesRun(plan, job, generations, result)
    runner.output.open()
    try:
        await runner.run(pending)
    finally:
        runner.output.close()
    if job.streak is not None and job.streak.reason:
        result.halted = job.streak.reason
    elif not job.stop.running:
        result.stopped = job.stop.reason or "stopped"
    job.status = result.exit_code.run_status
    return result
