"""The rehearsal dry run of a drafted workflow: the whole script, every model on the rehearsal provider.

It runs in a temporary workspace (its own journal, empty agent workspaces, nothing of the user's
touched) with every provider answered in-process by the fake backend, so nothing reaches a real
model. What it counts — phases, agents, requests, tokens — is what the script really does with
placeholder answers; the tokens are priced at the models the script names, which makes the
dollar figure an estimate of one run with answers of placeholder length.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import ShoalConfig
from ..engine import Stopped, StopSignal, Workspace, open_job
from ..errors import UsageError
from ..fake import FakeLimits, FakeSettings
from ..providers import ModelRef, Provider
from ..providers._rehearsal import RehearsalProvider
from ..workflows import Outline, RunSettings, agent_model, bind_args, load_workflow, outline, run_workflow
from ._errors import DraftRejected

__all__ = ["DryRun", "rehearse"]

# Limits far above anything a dry run sends, so the fake never rate-limits it and the budget
# learns them from the first answer's headers.
_DRY_LIMITS = FakeLimits(rpm=1_000_000, tpm=1_000_000_000)


@dataclass(frozen=True, slots=True)
class DryRun:
    settings: RunSettings  # as the real run will have them
    outline: Outline
    declared_max_agents: int | None  # as @workflow(...) says, before shoal.toml's caps
    declared_max_tokens: int | None
    models: tuple[ModelRef, ...]  # the default first
    phases: tuple[str, ...]  # as the run entered them
    agents: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class _RehearsalEverywhere:
    """A provider source that answers every provider's models in-process."""

    def __init__(self) -> None:
        settings = FakeSettings(limits=_DRY_LIMITS, latency_s=0.0, jitter=0.0, per_token_s=0.0)
        self._provider = RehearsalProvider(lambda model: settings)

    def get(self, provider: str) -> Provider:
        return self._provider

    async def aclose(self) -> None:
        await self._provider.aclose()


def _dry_config(config: ShoalConfig) -> ShoalConfig:
    """No cost budget (the dry run spends nothing) and no configured limits (nothing to pace)."""
    job = config.job.model_copy(update={"max_cost_usd": None})
    return config.model_copy(update={"job": job, "limits": {}})


async def rehearse(
    text: str, *, out: Path, config: ShoalConfig, stop: StopSignal, timeout_s: float
) -> DryRun:
    """Load and run the script on rehearsal; DraftRejected says why it cannot be used."""
    with tempfile.TemporaryDirectory(prefix="shoal-draft-") as folder:
        root = Path(folder)
        script = root / (out.stem + ".py")
        script.write_text(text, encoding="utf-8")
        try:
            return await _run(script, root, out=out, config=config, stop=stop, timeout_s=timeout_s)
        except UsageError as exc:  # loading, --arg binding, model names: the script's mistakes
            raise DraftRejected(str(exc).replace(str(script), out.name)) from None
        finally:
            if str(root) in sys.path:
                sys.path.remove(str(root))


async def _run(
    script: Path, root: Path, *, out: Path, config: ShoalConfig, stop: StopSignal, timeout_s: float
) -> DryRun:
    definition = load_workflow(script)
    values = bind_args(definition, [])
    settings = definition.settings(config, cwd=root)
    target = (out.parent / definition.target).resolve() if definition.target is not None else None
    seen = outline(script)
    default = agent_model(None, settings.default_model, config)
    named = [agent_model(name, settings.default_model, config) for name in seen.models]
    models = tuple(dict.fromkeys([default, *named]))
    dry = replace(settings, target=None, token_budget=None)
    async with open_job(
        workspace=Workspace(root),
        config=_dry_config(config),
        name=f"workflow:{settings.name}",
        command="shoal draft (rehearsal dry run)",
        env={},
        stop=stop,
        providers=_RehearsalEverywhere(),
    ) as job:
        try:
            async with asyncio.timeout(timeout_s):
                result = await run_workflow(definition, values, job, settings=dry, root=root)
        except TimeoutError:
            raise DraftRejected(
                f"the rehearsal dry run did not finish within {timeout_s:g} s: the script fans out "
                "further than its caps suggest, or loops; bound every loop and fan-out"
            ) from None
        if result.error:
            raise DraftRejected(f"the rehearsal dry run failed: {result.error}")
        if result.failed:
            path, reason = next(iter(result.failed.items()))
            raise DraftRejected(f"in the rehearsal dry run, agent {path} failed: {reason}")
        if result.stopped:  # nothing in a dry run drains but the user
            raise Stopped(result.stopped)
        runtime = result.runtime
        total = job.ledger.total
        return DryRun(
            settings=replace(settings, target=target),
            outline=seen,
            declared_max_agents=definition.max_agents,
            declared_max_tokens=definition.max_tokens,
            models=models,
            phases=tuple(runtime.phases),
            agents=runtime.agents.started,
            requests=job.caller.stats.sent,
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            cost_usd=total.cost_usd,
        )
