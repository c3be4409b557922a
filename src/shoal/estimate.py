"""What a job will cost: a worst case and an expected figure, before launch and again as it runs.

One estimator serves map, plans and workflows. A job describes a unit of its work (a record, a
plan task's pass through the gate, a workflow request) as the kinds of call that unit makes.

- Worst case: every call of a unit uses its whole answer budget, and a unit makes the most calls
  it can (for plans: every fix round, and one escalation per task). The cost budget never lets a
  job go past this bound's per-call version (see engine/_ledger.py).
- Expected: where the journal holds calls of this job, each kind of call is expected as often per
  unit, and with the same mean input and output tokens, as observed; retries, fixes and
  escalations are in those figures. Where it holds none, each call is expected once (fix calls at
  a default allowance) with its estimated prompt and DEFAULT_OUTPUT_SHARE of its answer budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ._tokens import estimate_tokens
from .config import Price
from .journal import CallOutcome, UsageRow
from .pricing import PriceBook, worst_case_cost

__all__ = [
    "DEFAULT_OUTPUT_SHARE",
    "CallKind",
    "Estimate",
    "KindUsage",
    "Observed",
    "basis_of",
    "call_cost",
    "estimate_map",
    "expected_unit_cost",
    "item_of",
    "workflow_estimate_line",
    "worst_unit_cost",
]

# Answers use about half their token budget when nothing has been observed yet. On the last
# round's plans actual cost was 0.34x a full-budget worst case (input included); a prose answer
# is rarely cut short by max_tokens, so half is a deliberately cautious middle.
DEFAULT_OUTPUT_SHARE = 0.5

_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class CallKind:
    """One kind of call a unit of work makes, as planned before anything is observed."""

    kind: str  # the journal stage it is recorded under, without any "phase-N/" prefix
    input_tokens: int  # estimated prompt, with earlier answers at their expected length
    max_tokens: int
    expected_calls: float = 1.0  # per unit, when nothing has been observed
    worst_calls: int = 1  # the most per unit
    worst_input_tokens: int | None = None  # the prompt with earlier answers at their limit
    worst_input_step: int = 0  # each further call's prompt grows by this much (a session's history)


@dataclass(slots=True)
class KindUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(slots=True)
class Observed:
    """What the journal recorded for a job: usage per kind of call, over how many units."""

    by_kind: dict[str, KindUsage] = field(default_factory=dict)
    units: set[str] = field(default_factory=set)  # units of work the calls were for
    groups: set[str] = field(default_factory=set)  # what units belong to (plan tasks: a unit per tier)
    done: set[str] = field(default_factory=set)  # items with at least one good answer
    cost_usd: float = 0.0

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[UsageRow],
        *,
        unit_of: Callable[[UsageRow], tuple[str, str] | None],
        kind_of: Callable[[str], str] = lambda stage: stage,
    ) -> Observed:
        """`unit_of` maps a call to (unit, group), or None to leave it out."""
        observed = cls()
        for row in rows:
            unit = unit_of(row)
            if unit is None:
                continue
            observed.units.add(unit[0])
            observed.groups.add(unit[1])
            if row.outcome == CallOutcome.OK:
                observed.done.add(unit[1])
            usage = observed.by_kind.setdefault(kind_of(row.stage), KindUsage())
            usage.calls += 1
            usage.input_tokens += row.input_tokens
            usage.output_tokens += row.output_tokens
            observed.cost_usd += row.cost_usd
        return observed

    @property
    def empty(self) -> bool:
        return not self.units

    @property
    def units_per_group(self) -> float:
        """For plans: passes per task, 1 + the escalation rate."""
        return len(self.units) / len(self.groups) if self.groups else 1.0


def call_cost(price: Price | None, input_tokens: float, output_tokens: float) -> float:
    """Dollars for one call with this many tokens, all input uncached."""
    if price is None:
        return 0.0
    return (input_tokens * price.input + output_tokens * price.output) / _MILLION


def expected_unit_cost(kinds: Sequence[CallKind], price: Price | None, observed: Observed | None) -> float:
    """Expected dollars for one unit: observed usage per unit where there is any, else the defaults."""
    if observed is not None and not observed.empty:
        units = len(observed.units)
        total = 0.0
        for usage in observed.by_kind.values():
            mean_in = usage.input_tokens / usage.calls
            mean_out = usage.output_tokens / usage.calls
            total += usage.calls / units * call_cost(price, mean_in, mean_out)
        return total
    return sum(
        k.expected_calls * call_cost(price, k.input_tokens, k.max_tokens * DEFAULT_OUTPUT_SHARE)
        for k in kinds
    )


def worst_unit_cost(kinds: Sequence[CallKind], price: Price | None) -> float:
    """The most one unit can cost: the most calls, every answer at its token limit."""
    total = 0.0
    for k in kinds:
        first = k.input_tokens if k.worst_input_tokens is None else k.worst_input_tokens
        for n in range(k.worst_calls):
            total += worst_case_cost(price, first + n * k.worst_input_step, k.max_tokens)
    return total


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 10 else f"${value:,.2f}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """A job's cost before (or part way through) a run."""

    expected_usd: float
    worst_usd: float
    basis: str  # where the expected figure comes from, in words
    spent_usd: float = 0.0  # already spent by earlier runs (or phases) of this job

    @property
    def expected_total_usd(self) -> float:
        return self.spent_usd + self.expected_usd

    def line(self) -> str:
        earlier = f"; {_money(self.spent_usd)} already spent" if self.spent_usd else ""
        return (
            f"Estimate: about {_money(self.expected_usd)} expected ({self.basis}), "
            f"{_money(self.worst_usd)} at worst{earlier}"
        )

    def budget_warning(self, max_cost_usd: float | None) -> str | None:
        """A warning when the budget will (or may) stop the job before it finishes."""
        if max_cost_usd is None:
            return None
        if self.expected_total_usd > max_cost_usd:
            return (
                f"shoal: warning: the expected cost {_money(self.expected_total_usd)} ({self.basis}) is over "
                f"the {_money(max_cost_usd)} budget: the job will likely stop before it finishes "
                "(raise --max-cost to finish it)"
            )
        return None

    def journal_detail(self) -> dict[str, float | str]:
        return {
            "expected_usd": round(self.expected_usd, 8),
            "worst_usd": round(self.worst_usd, 8),
            "spent_usd": round(self.spent_usd, 8),
            "basis": self.basis,
        }


def basis_of(observed: Observed | None, what: str) -> str:
    if observed is None or observed.empty:
        return f"answers at {DEFAULT_OUTPUT_SHARE:.0%} of their token budget"
    calls = sum(u.calls for u in observed.by_kind.values())
    return f"from {calls} journaled call(s) over {len(observed.units)} {what}"


def item_of(job: str, scope: str) -> str | None:
    """The item part of a call's scope ("<job>#<item>..."), or None for a call of another shape."""
    prefix = f"{job}#"
    return scope[len(prefix) :] if scope.startswith(prefix) else None


def estimate_map(
    job: str,
    sample: Iterable[tuple[str, str]],
    *,
    total: int,
    model_key: str,
    max_tokens: int,
    prices: PriceBook,
    rows: Iterable[UsageRow],
) -> Estimate:
    """A map job: one call per record not yet answered (records answered earlier are replayed free).

    `sample` is (record id, prompt) for the first records of the dataset, not all of them: prompt
    sizes are averaged over it and scaled to the records not yet answered, so estimating a 100,000
    record job neither renders nor holds every prompt.
    """

    def unit_of(row: UsageRow) -> tuple[str, str] | None:
        item = item_of(job, row.scope)
        return None if item is None else (item, item)

    observed = Observed.from_rows(rows, unit_of=unit_of)
    price = prices.price(model_key)
    tokens = [estimate_tokens(prompt) for _, prompt in sample]
    pending = max(0, total - len(observed.done))
    mean_tokens = sum(tokens) / len(tokens) if tokens else 0.0
    worst = pending * worst_case_cost(price, round(mean_tokens), max_tokens)
    if observed.empty:
        expected = pending * call_cost(price, mean_tokens, max_tokens * DEFAULT_OUTPUT_SHARE)
    else:
        expected = pending * expected_unit_cost((), price, observed)
    return Estimate(expected, worst, basis_of(observed, "records"), spent_usd=observed.cost_usd)


def workflow_estimate_line(
    model_key: str,
    *,
    max_tokens: int,
    max_agents: int,
    prices: PriceBook,
    rows: Iterable[UsageRow],
    typical_prompt: int = 2_000,
    requests_per_agent: int = 3,
) -> str:
    """A workflow's agents are only known as it runs: per request figures, and a bound at the agent cap."""
    price = prices.price(model_key)
    usage = KindUsage()
    for row in rows:
        usage.calls += 1
        usage.input_tokens += row.input_tokens
        usage.output_tokens += row.output_tokens
    worst = worst_case_cost(price, typical_prompt, max_tokens)
    if usage.calls:
        expected = call_cost(price, usage.input_tokens / usage.calls, usage.output_tokens / usage.calls)
        basis = f"mean of {usage.calls} journaled request(s)"
    else:
        expected = call_cost(price, typical_prompt, max_tokens * DEFAULT_OUTPUT_SHARE)
        basis = f"answers at {DEFAULT_OUTPUT_SHARE:.0%} of their token budget"
    bound = requests_per_agent * max_agents
    return (
        f"Estimate: about {_money(expected)} expected per model request on {model_key} ({basis}), "
        f"up to {_money(worst)} (~{typical_prompt:,}-token prompts, {max_tokens:,}-token answers); "
        f"at the agent cap, about {_money(expected * bound)} expected and {_money(worst * bound)} at worst "
        f"if each agent makes {requests_per_agent} requests. Calls finished in an earlier run are "
        "replayed free."
    )
