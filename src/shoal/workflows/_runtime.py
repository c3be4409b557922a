"""The state of one workflow run: the job it runs in, its caps and counters, its workspaces.

The runtime travels in a context variable so that agent(), parallel() and friends, called from
the user's script, find the job without being handed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ShoalConfig
from ..engine import FailureStreak, Job, StateDir, Stopped
from ..errors import InputError
from ..providers import ModelRef, resolve_model
from ._errors import AgentCapExceeded, WorkflowError
from ._paths import slug
from ._workspace import Sandboxes

__all__ = ["DEFAULT_MAX_AGENTS", "RunSettings", "Runtime", "agent_model", "current_runtime", "installed"]

DEFAULT_MAX_AGENTS = 1000


@dataclass(frozen=True, slots=True)
class RunSettings:
    """A workflow's caps and defaults, resolved from its decorator and shoal.toml."""

    name: str
    default_model: str = "rehearsal"
    max_agents: int = DEFAULT_MAX_AGENTS
    token_budget: int | None = None  # tokens for the whole job, earlier runs included
    allowed_commands: tuple[str, ...] = ()
    target: Path | None = None  # what agent workspaces are seeded from
    max_tokens: int = 1024  # answer budget per model request
    output_retries: int = 2  # invalid structured answers sent back to the model, per agent


@dataclass(slots=True)
class Counters:
    started: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)


class Runtime:
    def __init__(
        self, job: Job, settings: RunSettings, *, root: Path, say: Callable[[str], None] | None = None
    ) -> None:
        self.job = job
        self.say = say or (lambda message: None)
        self.settings = settings
        self.root = root
        self.sandboxes = Sandboxes(StateDir(root).sandboxes / slug(settings.name), settings.target)
        self.agent_slots = asyncio.Semaphore(job.caller.concurrency)
        self.agents = Counters()
        self.failures: dict[str, str] = {}
        self.phases: list[str] = []
        self._tokens_reserved = 0
        self._tokens_before = job.journal.tokens_before(job.name, job.run_id)
        self.retries = job.journal.retry_generations(job.name)  # agent path -> retry generation
        # Agents failing alike (output validation spent, say) stop the job, as calls do in the caller.
        self.agent_streak = FailureStreak(
            job.stop,
            limit=job.config.job.same_failure_limit,
            noun="agents",
            on_trip=lambda reason: job.journal.event(job.run_id, "same_failure", None, reason=reason),
        )

    # -- models ----------------------------------------------------------------------------

    def resolve_model(self, name: str | None) -> ModelRef:
        return agent_model(name, self.settings.default_model, self.job.config)

    # -- caps ------------------------------------------------------------------------------

    def admit(self, path: str, phase: str) -> None:
        """Count an agent before it starts; past max_agents it never starts."""
        cap = self.settings.max_agents
        if self.agents.started >= cap:
            raise AgentCapExceeded(
                f"agent cap reached: this run may start {cap} agents; {path} would be number {cap + 1}"
            )
        self.agents.started += 1
        self.agents.by_phase[phase] = self.agents.by_phase.get(phase, 0) + 1

    @property
    def tokens_used(self) -> int:
        total = self.job.ledger.total
        return self._tokens_before + total.input_tokens + total.output_tokens

    def reserve_tokens(self, amount: int) -> int:
        """Hold a request's worst case against the token budget; past it, the job drains."""
        budget = self.settings.token_budget
        if budget is None:
            return 0
        used = self.tokens_used + self._tokens_reserved
        if used + amount > budget:
            reason = f"token budget reached: {self.tokens_used:,} of {budget:,} tokens used"
            self.job.stop.drain(reason)
            raise Stopped(reason)
        self._tokens_reserved += amount
        return amount

    def release_tokens(self, amount: int) -> None:
        self._tokens_reserved = max(0, self._tokens_reserved - amount)

    def enter_phase(self, name: str) -> None:
        if name not in self.phases:
            self.phases.append(name)
            self.say(f"workflow {self.settings.name}: phase {name}")


def agent_model(name: str | None, default_model: str, config: ShoalConfig) -> ModelRef:
    """An agent's model: an alias or "provider:model", else the workflow's default. With a
    rehearsal default, an alias shoal.toml lacks ("fast", "smart") rehearses as
    rehearsal:<alias>, so a script runs before anyone configures a hosted model."""
    try:
        default = resolve_model(default_model, config)
        if name is None:
            return default
        if default.provider == "rehearsal" and ":" not in name and name not in config.models:
            return ModelRef("rehearsal", slug(name, "default"))
        return resolve_model(name, config)
    except InputError as exc:
        raise WorkflowError(str(exc)) from None


_runtime: ContextVar[Runtime | None] = ContextVar("shoal_workflow_runtime", default=None)


def current_runtime() -> Runtime:
    runtime = _runtime.get()
    if runtime is None:
        raise WorkflowError("workflow primitives run only inside a workflow (`shoal run FILE.py`)")
    return runtime


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the current one for the block (and every task started inside it)."""
    token = _runtime.set(runtime)
    try:
        yield runtime
    finally:
        _runtime.reset(token)
