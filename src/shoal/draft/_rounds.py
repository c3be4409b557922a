"""The conversation with the drafting model: ask, check, send a refusal back, a bounded number of times.

Every request goes through the job's caller (rate budget, cost budget, journal), keyed by the
job, the round and the conversation so far. The checks are deterministic for a given answer, so
a rerun of the same command replays every round from the journal and sends nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from ..engine import CallSpec, Job
from ..providers import Message, ModelRef, ModelRequest
from ._errors import DraftRejected
from ._extract import extract_draft
from ._prompt import feedback

__all__ = ["Attempt", "DraftOutcome", "draft_job_name", "write_draft"]

C = TypeVar("C")
STAGE = "draft"


@dataclass(frozen=True, slots=True)
class Attempt:
    round: int
    replayed: bool
    error: str | None  # None: accepted


@dataclass(slots=True)
class DraftOutcome(Generic[C]):
    checked: C | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last_error(self) -> str | None:
        return self.attempts[-1].error if self.attempts else None


def draft_job_name(kind: str, task: str, target: Path) -> str:
    """The same task on the same target is the same job, so its calls replay: a readable slug of the
    task and a hash of the task and the target's absolute path."""
    words = re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")[:40].rstrip("-") or "task"
    digest = hashlib.sha256(f"{kind}\0{task}\0{target.resolve()}".encode()).hexdigest()[:12]
    return f"draft:{kind}:{words}-{digest}"


async def write_draft(
    job: Job,
    *,
    model: ModelRef,
    messages: tuple[Message, ...],
    kind: str,
    check: Callable[[str], Awaitable[C]],
    fix_rounds: int,
    max_tokens: int,
    say: Callable[[str], None],
) -> DraftOutcome[C]:
    """At most 1 + fix_rounds requests; the first draft that passes `check` is the outcome."""
    history = list(messages)
    outcome: DraftOutcome[C] = DraftOutcome()
    for number in range(1, fix_rounds + 2):
        request = ModelRequest(model=model.name, messages=tuple(history), max_tokens=max_tokens)
        spec = CallSpec(scope=f"{job.name}#round-{number}", stage=STAGE, model=model, request=request)
        say(f"draft: round {number}: asking {model}")
        answer = await job.caller.call(spec)
        text = extract_draft(answer.text, kind)
        try:
            checked = await check(text)
        except DraftRejected as exc:
            error = str(exc)
            outcome.attempts.append(Attempt(number, answer.replayed, error))
            job.journal.event(job.run_id, "draft", model.key, round=number, outcome="refused", error=error)
            say(f"draft: round {number}: refused: {error}")
            history += [Message("assistant", answer.text), Message("user", feedback(error, kind))]
            continue
        outcome.attempts.append(Attempt(number, answer.replayed, None))
        job.journal.event(job.run_id, "draft", model.key, round=number, outcome="accepted")
        outcome.checked = checked
        return outcome
    return outcome
