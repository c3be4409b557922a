"""verify_fix: an implementer's result goes to a verifier in a separate context, told to find
what is wrong; a fixer addresses only those findings; an oracle (a shell command, exit 0 =
pass) has the last word when given. Stops when clean, when the oracle passes, or after
max_rounds, and says which.

All agents of one loop, and the oracle, share one workspace, so the verifier sees the files the
implementer wrote and the oracle tests them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import BaseModel

from ._agent import ToolSpec, agent, render_reference
from ._compose import log
from ._paths import current_scope, in_scope, slug
from ._runtime import Runtime, current_runtime
from ._tools import CommandResult, run_shell
from ._workspace import workspace

__all__ = ["FIXER_SYSTEM", "VERIFIER_SYSTEM", "Finding", "FixOutcome", "verify_fix"]

T = TypeVar("T")
StopReason = Literal["clean", "oracle-passed", "max-rounds"]

VERIFIER_SYSTEM = (
    "You are an independent verifier. Another agent produced the work shown as the reference, and "
    "any files in your workspace. You did not write it and must not trust it: find what is wrong "
    "with it - errors, requirements it misses, inputs it breaks on, claims it cannot support. "
    "Report each problem as one finding, with where it is. Report no findings only if you looked "
    "hard and found nothing wrong."
)
FIXER_SYSTEM = (
    "You fix the findings listed, and only those. Leave everything no finding names as it is. "
    "Answer with the corrected work."
)


class Finding(BaseModel):
    """One problem a verifier found."""

    problem: str
    location: str = ""


@dataclass(frozen=True, slots=True)
class FixOutcome(Generic[T]):
    result: T  # the last implementation or fix
    stopped: StopReason
    rounds: int  # verification rounds run
    findings: list[Any] = field(default_factory=list)  # open at the end: not fixed
    oracle: CommandResult | None = None  # the last oracle run
    workspace: Path | None = None

    @property
    def passed(self) -> bool:
        return self.stopped != "max-rounds"


Implement = str | Callable[[], Awaitable[T]]
Verify = str | Callable[[T], Awaitable[Sequence[Any]]]
Fix = str | Callable[[T, list[Any]], Awaitable[T]]


def _default_tools(runtime: Runtime, *, writing: bool) -> tuple[str, ...]:
    tools = ("read_file", "list_files", "write_file") if writing else ("read_file", "list_files")
    return (*tools, "run") if runtime.settings.allowed_commands else tools


def _render_findings(findings: Sequence[Any]) -> str:
    lines = []
    for number, finding in enumerate(findings, 1):
        if isinstance(finding, Finding):
            where = f" ({finding.location})" if finding.location else ""
            lines.append(f"{number}. {finding.problem}{where}")
        else:
            lines.append(f"{number}. {render_reference(finding)}")
    return "\n".join(lines)


@dataclass(slots=True)
class _Loop(Generic[T]):
    implement: Implement[T]
    verify: Verify[T]
    fix: Fix[T]
    model: str | None
    tools: Sequence[ToolSpec] | None
    runtime: Runtime

    def _tools(self, writing: bool) -> Sequence[ToolSpec]:
        return self.tools if self.tools is not None else _default_tools(self.runtime, writing=writing)

    async def run_implement(self) -> T:
        if isinstance(self.implement, str):
            text: Any = await agent(
                self.implement, model=self.model, tools=self._tools(True), name="implement"
            )
            return text  # type: ignore[no-any-return]
        return await self.implement()

    async def run_verify(self, result: T) -> list[Any]:
        if isinstance(self.verify, str):
            found = await agent(
                self.verify,
                model=self.model,
                schema=list[Finding],
                system=VERIFIER_SYSTEM,
                tools=self._tools(False),
                reference=result,
                name="verify",
            )
            return list(found)
        return list(await self.verify(result))

    async def run_fix(self, result: T, findings: list[Any]) -> T:
        if isinstance(self.fix, str):
            prompt = f"{self.fix}\n\nFindings to address:\n{_render_findings(findings)}"
            text: Any = await agent(
                prompt,
                model=self.model,
                system=FIXER_SYSTEM,
                tools=self._tools(True),
                reference=result,
                name="fix",
            )
            return text  # type: ignore[no-any-return]
        return await self.fix(result, findings)


@overload
async def verify_fix(
    implement: str,
    *,
    verify: Verify[str],
    fix: Fix[str],
    oracle: str | None = None,
    max_rounds: int = 3,
    model: str | None = None,
    tools: Sequence[ToolSpec] | None = None,
    name: str = "verify-fix",
) -> FixOutcome[str]: ...


@overload
async def verify_fix(
    implement: Callable[[], Awaitable[T]],
    *,
    verify: Verify[T],
    fix: Fix[T],
    oracle: str | None = None,
    max_rounds: int = 3,
    model: str | None = None,
    tools: Sequence[ToolSpec] | None = None,
    name: str = "verify-fix",
) -> FixOutcome[T]: ...


async def verify_fix(
    implement: Implement[T],
    *,
    verify: Verify[T],
    fix: Fix[T],
    oracle: str | None = None,
    max_rounds: int = 3,
    model: str | None = None,
    tools: Sequence[ToolSpec] | None = None,
    name: str = "verify-fix",
) -> FixOutcome[T]:
    """Implement, then verify and fix until clean (or the oracle passes), at most `max_rounds`.

    `implement`, `verify` and `fix` are prompts (shoal runs the agents: the verifier answers with
    a list of `Finding`s) or async functions: `implement()`, `verify(result) -> findings`,
    `fix(result, findings) -> result`. `oracle` is a shell command run in the loop's workspace
    after each verification; exit 0 passes, and then the loop stops even if the verifier still
    objects (its open findings are kept in the outcome). A failing oracle's output becomes a
    finding for the fixer.
    """
    if max_rounds < 1:
        raise ValueError("verify_fix: max_rounds must be at least 1")
    runtime = current_runtime()
    scope = current_scope().fork(slug(name, "verify-fix"))
    loop = _Loop(implement, verify, fix, model, tools, runtime)
    with in_scope(scope), workspace() as shared:
        result = await loop.run_implement()
        last_oracle: CommandResult | None = None
        for number in range(1, max_rounds + 1):
            with in_scope(scope.fork(f"round-{number}")):
                findings = await loop.run_verify(result)
                stopped: StopReason | None = None
                if oracle is not None:
                    last_oracle = await run_shell(oracle, await shared.path())
                    if last_oracle.passed:
                        stopped = "oracle-passed"
                    else:
                        failure = f"the oracle `{oracle}` failed with {last_oracle.describe()}"
                        findings.append(Finding(problem=failure, location="oracle"))
                elif not findings:
                    stopped = "clean"
                if stopped is None and number == max_rounds:
                    stopped = "max-rounds"
                oracle_note = "" if last_oracle is None else f", oracle exit {last_oracle.exit_code}"
                log(f"{scope.path}: round {number}: {len(findings)} finding(s){oracle_note}")
                if stopped is not None:
                    where = await shared.path()
                    runtime.job.journal.event(
                        runtime.job.run_id, "verify_fix", path=scope.path, stopped=stopped, rounds=number
                    )
                    log(f"{scope.path}: stopped: {stopped} after {number} round(s)")
                    return FixOutcome(result, stopped, number, findings, last_oracle, where)
                result = await loop.run_fix(result, findings)
    raise AssertionError("unreachable: the last round always stops")
