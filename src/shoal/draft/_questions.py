"""The seed's decision tree, answered from the assessment (and the draft, once there is one).

1. Objective oracle: is there a test suite or a ground-truth measurement? No: do not run a workflow.
2. Massive fan-out: hundreds of files, or complex parallel logic? No: a plain subagent run may do.
3. Mid-run state: must results be carried between steps? No: a /goal-style loop may do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._assess import Assessment

__all__ = ["FAN_OUT_FILES", "Answer", "decision_tree"]

FAN_OUT_FILES = 100  # files in scope from which a fan-out counts as massive

_CHANGING = ("migrate", "port", "convert", "rewrite", "refactor", "fix", "upgrade", "translate", "implement")
_CROSS_CHECKING = ("audit", "verify", "review", "hunt", "find", "check", "research")


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    yes: bool
    because: str
    if_no: str  # what the seed advises when the answer is no


def decision_tree(
    assessment: Assessment,
    *,
    phases: int | None = None,
    agents: int | None = None,
    loops: int = 0,
    gates: Sequence[str] = (),
) -> list[Answer]:
    """`phases`, `agents` and `loops` (verify_fix calls) come from a validated draft's dry run;
    `gates` are a drafted plan's lint commands, which check every file it writes."""
    oracles = assessment.oracles
    found = [f"`{o.command}` ({o.source})" for o in oracles]
    found += [f"`{command}` (the plan's lint command)" for command in gates]
    oracle = Answer(
        "Objective oracle: is there a test suite or ground-truth check?",
        bool(found),
        "; ".join(found)
        if found
        else f"no test command found under {assessment.target} (pyproject, pytest/tox config, Makefile, "
        "package.json, Cargo.toml, go.mod, test files)",
        "stop: without an oracle a workflow burns tokens on opinions",
    )
    scope = len(assessment.in_scope)
    massive = scope >= FAN_OUT_FILES or (agents is not None and agents >= FAN_OUT_FILES)
    fan_out = f"{scope} code file(s) in scope"
    if agents is not None:
        fan_out += f"; the rehearsal dry run started {agents} agent(s)"
    fan = Answer(
        "Massive fan-out: hundreds of files or complex parallel logic?",
        massive,
        fan_out,
        "a standard subagent run may do; the draft keeps its caps small",
    )
    task = assessment.task.lower()
    changing = [w for w in _CHANGING if w in task]
    checking = [w for w in _CROSS_CHECKING if w in task]
    state_yes = bool(loops) or (phases is not None and phases > 1) or bool(changing and found)
    reasons = []
    if phases is not None:
        reasons.append(f"the draft has {phases} phase(s) and {loops} verify/fix loop(s)")
    if changing:
        reasons.append(f"the task changes code ({', '.join(changing)}) and results must pass the oracle")
    elif checking:
        reasons.append(f"the task cross-checks results ({', '.join(checking)})")
    state = Answer(
        "Mid-run state: must results be carried between steps?",
        state_yes,
        "; ".join(reasons) or "nothing in the task or the draft carries results between steps",
        "a single /goal-style loop may do",
    )
    return [oracle, fan, state]
