"""shoal.toml: the job's settings as small validated value objects.

Unknown keys and bad values are user mistakes: they raise ConfigError with one line that names
the key and the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "BatchSettings",
    "BudgetConfig",
    "DraftSettings",
    "ExecutorSettings",
    "JobSettings",
    "ModelLimits",
    "PlanSettings",
    "Price",
    "ProviderSettings",
    "RehearsalSettings",
    "ShoalConfig",
    "TierRuleSettings",
    "TieringSettings",
    "WorkflowSettings",
    "load_config",
]

CONFIG_FILENAME = "shoal.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(_Strict):
    base_url: str | None = None
    api_key_env: str | None = None  # name of the variable holding the key, if not the usual one
    timeout_s: float = Field(default=120.0, gt=0)


class ModelLimits(_Strict):
    """The provider's limits for one model. Anthropic counts input and output tokens separately."""

    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    itpm: int | None = Field(default=None, gt=0)
    otpm: int | None = Field(default=None, gt=0)
    # Does the provider give back the unused part of max_tokens when an answer ends? true: settle
    # each call to its real output at once. Unset or false: keep the reservation; where the provider
    # sends rate-limit headers, they give back what it refunded either way (learned per response).
    refunds_unused: bool | None = None

    @property
    def configured(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.itpm, self.otpm))


class Price(_Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    # Through a batch API; unset: half the online price.
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)


class JobSettings(_Strict):
    # Ceiling of requests in flight, whole job; "auto": found from throughput, up to max_concurrency.
    concurrency: Annotated[int, Field(gt=0, le=10_000)] | Literal["auto"] = 16
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=5, gt=0, le=50)  # per call, for errors other than 429
    max_rate_limited: int = Field(default=30, gt=0)  # 429s one call may meet before it fails
    request_timeout_s: float = Field(default=120.0, gt=0)  # the most a request waits for its answer
    max_pause_s: float = Field(default=60.0, gt=0)  # longest job-wide pause one 429 may cause
    max_tokens: int = Field(default=1024, gt=0)  # default answer budget per call
    same_failure_limit: int = Field(default=10, ge=0)  # alike call failures in a row that stop; 0: off
    max_concurrency: int = Field(default=128, gt=0, le=10_000)  # the most "auto" concurrency tries
    # Learned timeouts (a high percentile of similar requests' latency, times a factor) stay above this.
    request_timeout_min_s: float = Field(default=10.0, gt=0)
    max_outage_s: float = Field(default=600.0, gt=0)  # a provider down this long drains the job
    batch: bool = False  # send rounds through the providers' batch APIs (half price, within 24h)


class BatchSettings(_Strict):
    """Provider batch APIs (`--batch`); limits left unset are the provider's own."""

    max_requests: int | None = Field(default=None, gt=0)  # per batch (OpenAI 50,000; Anthropic 100,000)
    max_bytes: int | None = Field(default=None, gt=0)  # per batch (OpenAI 200 MB; Anthropic 256 MB)
    queue_tokens: int | None = Field(default=None, gt=0)  # enqueued input tokens per model, all open batches
    poll_s: float = Field(default=30.0, gt=0)  # seconds between status checks of open batches
    max_attempts: int = Field(default=3, gt=0, le=20)  # batches one request may go through
    fallback: Literal["batch", "online"] = "batch"  # where requests go once their batch attempts are spent
    account_error_share: float = Field(default=0.5, gt=0, le=1)  # share of a batch failing alike that stops


class PlanSettings(_Strict):
    """Settings for `shoal run PLAN.md`."""

    lint_timeout_s: float = Field(default=120.0, gt=0)  # one run of one lint command on one file


class TierRuleSettings(_Strict):
    model: str
    title_contains: list[str] = Field(default_factory=list)
    phase_contains: list[str] = Field(default_factory=list)


class TieringSettings(_Strict):
    """Model tiers for plan tasks whose Model cell is blank (the plan's own rules also apply)."""

    default: str | None = None
    order: list[str] = Field(default_factory=list)  # cheapest first; escalation moves one step
    rules: list[TierRuleSettings] = Field(default_factory=list)


class RehearsalSettings(_Strict):
    """The keyless rehearsal provider: scripted replies and a simulated latency."""

    replies: str | None = None  # JSON list of {"match", "reply" or "call": {"tool", "args"}, "times"?}
    latency_s: float = Field(default=0.15, ge=0)


class WorkflowSettings(_Strict):
    """Defaults for `shoal run script.py`; a workflow's own arguments win over these."""

    default_model: str | None = None  # model for agent() calls that name none; "rehearsal" when unset
    allowed_commands: list[str] = Field(default_factory=list)  # what the `run` tool may start
    max_agents: int | None = Field(default=None, gt=0)  # agents per run (built-in default 1,000)
    max_tokens: int | None = Field(default=None, gt=0)  # tokens per job, all runs; drains when reached


class DraftSettings(_Strict):
    """`shoal draft`: the model that writes a workflow or a plan, and how often a refused draft goes back."""

    model: str | None = None  # default: [workflow] default_model, else rehearsal
    fix_rounds: int = Field(default=2, ge=0, le=10)  # times a refused draft goes back with its error
    max_tokens: int = Field(default=4096, gt=0)  # answer budget of one drafting request
    rehearsal_timeout_s: float = Field(default=120.0, gt=0)  # the dry run of a drafted workflow


class BudgetConfig(_Strict):
    """`[budget]`: share the rate budget with every process on the same key, through Redis."""

    redis_url: str | None = None  # e.g. "redis://127.0.0.1:6379/0"; SHOAL_REDIS_URL also sets it
    namespace: str = Field(default="shoal", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    redis_timeout_s: float = Field(default=60.0, gt=0)  # Redis gone this long drains the job (exit 3)


class ExecutorSettings(_Strict):
    """Where items run: in this process ("local") or on a Ray cluster ("ray", the extra shoal[ray])."""

    kind: Literal["local", "ray"] = "local"
    # Ray only. Absent: start a local Ray on this machine; "auto": the cluster running here;
    # "host:6379" (a head's GCS) or "ray://host:10001" (Ray Client).
    address: str | None = None
    workers: int | None = Field(default=None, gt=0, le=10_000)  # actors; default: the cluster's CPUs


class ShoalConfig(_Strict):
    models: dict[str, str] = Field(default_factory=dict)  # alias -> "provider:model"
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    limits: dict[str, ModelLimits] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    job: JobSettings = Field(default_factory=JobSettings)
    workflow: WorkflowSettings = Field(default_factory=WorkflowSettings)
    plan: PlanSettings = Field(default_factory=PlanSettings)
    tiering: TieringSettings = Field(default_factory=TieringSettings)
    rehearsal: RehearsalSettings = Field(default_factory=RehearsalSettings)
    draft: DraftSettings = Field(default_factory=DraftSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    return f"{where}: {first['msg']}"


def load_config(path: Path | None = None, *, cwd: Path | None = None) -> ShoalConfig:
    """Read shoal.toml: the given file, else the one in the working directory, else defaults."""
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
        if not candidate.exists():
            return ShoalConfig()
        path = candidate
    elif not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return ShoalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
