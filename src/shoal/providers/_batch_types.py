"""Plain types for provider batch APIs: what a batch adapter takes and gives back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._types import ModelReply, ModelRequest

__all__ = ["BatchFailure", "BatchProvider", "BatchStatus", "BatchTag", "ItemOutcome"]


@dataclass(frozen=True, slots=True)
class BatchTag:
    """What identifies a batch as shoal's: the job, the round and the attempt's chunk."""

    job: str
    round: str
    tag: str  # unique per submission intent; kept in the provider's metadata where it has any
    created_after: float  # unix time just before the intent was journaled
    size: int  # requests in the batch

    def metadata(self) -> dict[str, str]:
        # OpenAI metadata values are limited to 512 characters.
        return {"shoal_job": self.job[-500:], "shoal_round": self.round[-500:], "shoal_tag": self.tag}


@dataclass(frozen=True, slots=True)
class BatchStatus:
    batch_id: str
    state: str  # the provider's own word: in_progress, completed, expired, ended, ...
    ended: bool
    counts: Mapping[str, int] = field(default_factory=dict)  # by state: processing, succeeded, failed, ...


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """One request of a batch that produced no answer."""

    message: str
    code: str | None = None  # the provider's error code or type, e.g. insufficient_quota
    status: int | None = None
    kind: str = "error"  # error, expired, cancelled


ItemOutcome = ModelReply | BatchFailure


class BatchProvider(Protocol):
    """One provider's batch API. Implementations raise shoal.errors.ModelCallError subclasses."""

    name: str
    max_requests: int  # the provider's per-batch limits
    max_bytes: int

    def request_line(self, custom_id: str, request: ModelRequest) -> bytes: ...

    async def submit(self, model: str, lines: Sequence[bytes], tag: BatchTag) -> str: ...

    async def find(self, tag: BatchTag) -> list[str]: ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str) -> dict[str, ItemOutcome]: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...
