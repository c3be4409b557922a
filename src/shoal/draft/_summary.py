"""The estimate shown with a draft: what its rehearsal dry run counted, and the usual bound per
request and at the agent cap (the same estimator `shoal run FILE.py` prints before launch)."""

from __future__ import annotations

import ast
from pathlib import Path

from ..config import ShoalConfig
from ..engine import StateDir
from ..estimate import workflow_estimate_line
from ..journal import read_usage
from ..pricing import PriceBook
from ._validate import CheckedPlan, CheckedWorkflow

__all__ = ["plan_summary", "workflow_summary"]


def _oracles_in(text: str) -> list[str]:
    """The verify_fix oracles a script names as literals (a drafted one is never run before approval)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "verify_fix"
        ):
            for keyword in node.keywords:
                value = keyword.value
                if (
                    keyword.arg == "oracle"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    found.append(value.value)
    return list(dict.fromkeys(found))


def workflow_summary(checked: CheckedWorkflow, config: ShoalConfig, root: Path) -> list[str]:
    dry = checked.dry_run
    settings = dry.settings
    seen = dry.outline
    default, *named = dry.models
    budget = f"{settings.token_budget:,}" if settings.token_budget else "unlimited"
    lines = [
        f"Workflow {settings.name}",
        f"  Phases in the script: {', '.join(seen.phases) or '(none named)'}; "
        f"agent calls {seen.agent_calls}, verify_fix loops {seen.verify_fix_calls}",
        f"  Models: default {default}" + "".join(f", {ref}" for ref in named),
        f"  Caps: {settings.max_agents:,} agents per run, tokens {budget}; commands agents may run: "
        f"{', '.join(settings.allowed_commands) or 'none'}",
        f"  Rehearsal dry run (nothing sent): {len(dry.phases)} phase(s) "
        f"({', '.join(dry.phases) or 'none'}), {dry.agents} agent(s), {dry.requests} request(s), "
        f"tokens {dry.input_tokens:,} in / "
        f"{dry.output_tokens:,} out; at the script's models' prices about ${dry.cost_usd:.4f} "
        "(placeholder answers; agents using tools make more requests)",
    ]
    oracles = _oracles_in(checked.text)
    if oracles or seen.verify_fix_calls:
        listed = ", ".join(f"`{o}`" for o in oracles) or "none named as a literal"
        lines.append(f"  Oracles of its verify_fix loops: {listed} (not run by the dry run)")
    if settings.token_budget and dry.tokens > settings.token_budget:
        lines.append(
            f"  warning: the dry run used {dry.tokens:,} tokens, more than the "
            f"{settings.token_budget:,}-token budget: the real run would stop (resumable) before it finishes"
        )
    name = f"workflow:{settings.name}"
    lines.append(
        "  "
        + workflow_estimate_line(
            default.key,
            max_tokens=settings.max_tokens,
            max_agents=settings.max_agents,
            prices=PriceBook.from_config(config),
            rows=read_usage(StateDir(root).journal_path, name),
        )
    )
    return lines


def plan_summary(checked: CheckedPlan) -> list[str]:
    plan = checked.plan
    lines = [f"Plan: {len(checked.runs)} pending task(s) in {len(plan.phases)} phase(s)"]
    for run in checked.runs:
        lines.append(
            f"  #{run.task.number} {run.task.title} -> {run.task.filename}: {run.tier} = {run.model}"
        )
    lines.extend(f"  Lint: {command}" for command in plan.lint_commands)
    lines.append(f"  Output: {plan.output_dir}")
    lines.append("  " + checked.estimate.line())
    return lines
