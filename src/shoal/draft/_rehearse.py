"""The rehearsal dry run of a drafted workflow: the whole script, every model on the rehearsal provider.

It runs in a child process (`_dry_run.py`) and a temporary workspace (its own journal, empty
agent workspaces, nothing of the user's touched) with every provider answered in-process by the
fake backend, so nothing reaches a real model; the child gets no API keys either. What it counts
— phases, agents, requests, tokens — is what the script really does with placeholder answers; the
tokens are priced at the models the script names, which makes the dollar figure an estimate of
one run with answers of placeholder length.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import ShoalConfig
from ..engine import Stopped, StopSignal
from ..providers import ModelRef
from ..workflows import Outline, RunSettings
from ._errors import DraftRejected

__all__ = ["DryRun", "dry_run_from_json", "dry_run_to_json", "rehearse"]

_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


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


def dry_run_to_json(dry: DryRun) -> dict[str, Any]:
    data = asdict(dry)
    target = dry.settings.target
    data["settings"]["target"] = None if target is None else str(target)
    data["models"] = [ref.key for ref in dry.models]
    return data


def dry_run_from_json(data: dict[str, Any]) -> DryRun:
    settings = dict(data["settings"])
    settings["target"] = None if settings["target"] is None else Path(settings["target"])
    settings["allowed_commands"] = tuple(settings["allowed_commands"])
    models = tuple(ModelRef(*key.split(":", 1)) for key in data["models"])
    parts = {"settings": RunSettings(**settings), "outline": Outline(**data["outline"])}
    return DryRun(**{**data, **parts, "models": models, "phases": tuple(data["phases"])})


def _child_env() -> dict[str, str]:
    """The environment without anything that looks like a credential: the child needs none."""
    return {k: v for k, v in os.environ.items() if not any(m in k.upper() for m in _SECRET_MARKERS)}


async def rehearse(
    text: str, *, out: Path, config: ShoalConfig, stop: StopSignal, timeout_s: float
) -> DryRun:
    """Run the script on rehearsal in a child process; DraftRejected says why it cannot be used."""
    with tempfile.TemporaryDirectory(prefix="shoal-draft-") as folder:
        root = Path(folder)
        script = root / (out.stem + ".py")
        script.write_text(text, encoding="utf-8")
        result = root / "result.json"
        request = root / "request.json"
        payload = {
            "script": str(script),
            "out": str(out.resolve()),
            "result": str(result),
            "config": config.model_dump(mode="json"),
        }
        request.write_text(json.dumps(payload), encoding="utf-8")
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shoal.draft._dry_run", str(request),
            cwd=root, env=_child_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        finished = asyncio.ensure_future(child.communicate())
        interrupted = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {finished, interrupted}, timeout=timeout_s, return_when="FIRST_COMPLETED"
            )
        finally:
            interrupted.cancel()
            if not finished.done():
                child.kill()
                await finished
        if interrupted in done and finished not in done:
            raise Stopped(stop.reason or "stopped")
        if finished not in done:
            raise DraftRejected(
                f"the rehearsal dry run did not finish within {timeout_s:g} s: the script fans out "
                "further than its caps suggest, or loops; bound every loop and fan-out"
            )
        if not result.is_file():
            _, err = finished.result()
            lines = err.decode(errors="replace").strip().splitlines()
            raise DraftRejected(
                f"the rehearsal dry run ended without a result (exit {child.returncode})"
                + (f": {lines[-1]}" if lines else "")
            )
        answer = json.loads(result.read_text(encoding="utf-8"))
    if "error" in answer:
        raise DraftRejected(str(answer["error"]))
    return dry_run_from_json(answer["dry_run"])
