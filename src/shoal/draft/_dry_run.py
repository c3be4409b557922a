"""The child process of a rehearsal dry run: `python -m shoal.draft._dry_run REQUEST.json`.

It loads the drafted script, runs it with every model answered in-process by the fake backend,
and writes what it counted (or why it failed) to the result file the request names. It runs in a
process of its own so that a script that never yields (a busy loop at import time or in the entry
point) can be killed at the timeout, and so that nothing the script does to the interpreter
outlives the dry run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import ShoalConfig
from ..engine import StateDir, StopSignal, open_job
from ..errors import UsageError
from ..fake import FakeLimits, FakeSettings
from ..providers import Provider, RehearsalProvider
from ..workflows import CommandResult, agent_model, bind_args, load_workflow, outline, run_workflow
from ._errors import DraftRejected
from ._rehearse import DryRun, dry_run_to_json

__all__ = ["main", "run_dry"]

# Limits far above anything a dry run sends, so the fake never rate-limits it and the budget
# learns them from the first answer's headers.
_DRY_LIMITS = FakeLimits(rpm=1_000_000, tpm=1_000_000_000)


class _RehearsalEverywhere:
    """A provider source that answers every provider's models in-process."""

    def __init__(self) -> None:
        settings = FakeSettings(limits=_DRY_LIMITS, latency_s=0.0, jitter=0.0, per_token_s=0.0)
        self._provider = RehearsalProvider(lambda model: settings)

    def get(self, provider: str) -> Provider:
        return self._provider

    async def aclose(self) -> None:
        await self._provider.aclose()


_NOT_RUN = CommandResult(1, "(the oracle is not run in a rehearsal dry run: every round counts as failing)")


async def _oracle_not_run(command: str, cwd: Path, timeout_s: float = 600.0) -> CommandResult:
    return _NOT_RUN


def _keep_oracles_from_running() -> None:
    """A drafted oracle is a shell command nobody has approved yet: in this throwaway process the
    verify_fix loop gets a failing result instead of running it, which also makes the dry run
    count every fix round (an upper bound on the loop's agents)."""
    from ..workflows import _verify

    setattr(_verify, "run_shell", _oracle_not_run)  # noqa: B010 - the name is not exported


def _dry_config(config: ShoalConfig) -> ShoalConfig:
    """No cost budget (the dry run spends nothing) and no configured limits (nothing to pace)."""
    job = config.job.model_copy(update={"max_cost_usd": None})
    return config.model_copy(update={"job": job, "limits": {}})


async def run_dry(script: Path, root: Path, *, out: Path, config: ShoalConfig) -> DryRun:
    """Run the script in `root` on rehearsal; DraftRejected (or a UsageError) says why it cannot be used."""
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
        state=StateDir(root),
        config=_dry_config(config),
        name=f"workflow:{settings.name}",
        command="shoal draft (rehearsal dry run)",
        env={},
        stop=StopSignal(),
        providers=_RehearsalEverywhere(),
    ) as job:
        result = await run_workflow(definition, values, job, settings=dry, root=root)
        if result.error:
            raise DraftRejected(f"the rehearsal dry run failed: {result.error}")
        if result.failed:
            path, reason = next(iter(result.failed.items()))
            raise DraftRejected(f"in the rehearsal dry run, agent {path} failed: {reason}")
        if result.stopped:
            raise DraftRejected(f"the rehearsal dry run stopped: {result.stopped}")
        total = job.ledger.total
        return DryRun(
            settings=replace(settings, target=target),
            outline=seen,
            declared_max_agents=definition.max_agents,
            declared_max_tokens=definition.max_tokens,
            models=models,
            phases=tuple(result.runtime.phases),
            agents=result.runtime.agents.started,
            requests=job.caller.stats.sent,
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            cost_usd=total.cost_usd,
        )


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    script, out, result_path = Path(request["script"]), Path(request["out"]), Path(request["result"])
    config = ShoalConfig.model_validate(request["config"])
    _keep_oracles_from_running()
    answer: dict[str, Any]
    try:
        dry = asyncio.run(run_dry(script, script.parent, out=out, config=config))
        answer = {"dry_run": dry_run_to_json(dry)}
    except (UsageError, DraftRejected) as exc:  # loading, --arg binding, model names, the run itself
        answer = {"error": str(exc).replace(str(script), out.name)}
    except Exception as exc:  # anything else the script did while shoal ran it
        answer = {"error": f"the rehearsal dry run failed: {type(exc).__name__}: {exc}"}
    partial = result_path.with_suffix(".partial")
    partial.write_text(json.dumps(answer), encoding="utf-8")
    partial.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
