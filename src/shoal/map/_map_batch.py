"""`shoal map --batch`: the map's calls go through one batch round before records are written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..engine import CallResult, CallSpec, ModelCaller, call_key
from ..engine._batch import BatchRound
from ..errors import ModelCallError

__all__ = ["BatchAnswers"]


@dataclass(slots=True)
class BatchAnswers:
    """What a batch round answered, by call key; the rest is sent online or left for the next run."""

    found: dict[str, CallResult | ModelCallError] = field(default_factory=dict)
    online: set[str] = field(default_factory=set)
    stopped: str | None = None

    @classmethod
    async def collect(cls, batch: BatchRound, specs: Sequence[CallSpec], round_name: str) -> BatchAnswers:
        outcome = await batch.run(specs, round_name)
        answers = cls(stopped=outcome.stopped, online=set(outcome.online))
        answers.found.update(outcome.results)
        answers.found.update(outcome.failed)
        return answers

    async def answer(self, spec: CallSpec, caller: ModelCaller) -> CallResult | None:
        """The round's answer (or its failure, raised), an online call, or None: not answered now."""
        key = call_key(spec)
        found = self.found.get(key)
        if isinstance(found, ModelCallError):
            raise found
        if found is None and key in self.online:
            return await caller.call(spec)
        return found
