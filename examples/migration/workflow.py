"""Migration: move a small codebase off its legacy `fmt()` helper to f-strings, file by file.

Each file goes through verify_fix in a workspace of its own (a copy of codebase/, or a git
worktree when it is a repository): an implementer edits the file, an independent verifier
looks for what the migration broke, a fixer addresses only those findings, and the codebase's
own test suite is the oracle with the last word.

    shoal run examples/migration/workflow.py --yes
    shoal run examples/migration/workflow.py --yes --arg files=textkit/greet.py

On the keyless rehearsal provider the agents answer with placeholder text and edit nothing, so
the oracle passes in the first round; with real models (shoal.toml [models] smart = "...") the
report shows each file's diff.
"""

import difflib
from pathlib import Path

from shoal import FixOutcome, parallel, phase, verify_fix, workflow

CODEBASE = Path(__file__).resolve().parent / "codebase"
TESTS = "python -m unittest discover -s tests -q"

IMPLEMENT = (
    "Migrate {file} off textkit.legacy.fmt: rewrite every fmt(...) call as an f-string with the same "
    "output (keep width, padding and precision specifiers), and drop the import. Edit the file with "
    "write_file; change nothing else. You may run `{tests}` to check."
)
VERIFY = (
    "Check the migration of {file} away from textkit.legacy.fmt. Read the file as it is now. Look for "
    "calls left behind, format specifiers that changed the output, and anything else that changed."
)
FIX = "Fix these problems in {file}, and only these. Edit the file with write_file."


def _legacy_modules() -> list[str]:
    return sorted(
        str(path.relative_to(CODEBASE))
        for path in (CODEBASE / "textkit").glob("*.py")
        if "from textkit.legacy import fmt" in path.read_text()
    )


def _diff(name: str, outcome: FixOutcome[str] | None) -> list[str]:
    if outcome is None or outcome.workspace is None:
        return ["(no workspace)"]
    before = (CODEBASE / name).read_text().splitlines(keepends=True)
    after = (outcome.workspace / name).read_text().splitlines(keepends=True)
    diff = list(difflib.unified_diff(before, after, f"a/{name}", f"b/{name}"))
    return ["```diff", *(line.rstrip("\n") for line in diff), "```"] if diff else ["(file unchanged)"]


@workflow(name="migration", max_agents=100, target="codebase", commands=["python -m unittest"])
async def main(files: list[str] | None = None) -> str:
    names = files or _legacy_modules()
    with phase("migrate"):
        outcomes = await parallel(
            names,
            lambda name: verify_fix(
                IMPLEMENT.format(file=name, tests=TESTS),
                verify=VERIFY.format(file=name),
                fix=FIX.format(file=name),
                oracle=TESTS,
                max_rounds=3,
                model="smart",
            ),
        )

    passed = sum(1 for outcome in outcomes if outcome is not None and outcome.passed)
    lines = [
        "# Migration off textkit.legacy.fmt",
        "",
        f"{passed} of {len(names)} file(s) pass the test suite.",
        "",
    ]
    for name, outcome in zip(names, outcomes, strict=True):
        lines.append(f"## {name}")
        lines.append("")
        if outcome is None:
            lines += ["Failed: an agent gave up (see the run's output).", ""]
            continue
        lines.append(
            f"Stopped: {outcome.stopped} after {outcome.rounds} round(s); workspace {outcome.workspace}"
        )
        if outcome.findings:
            lines.append(f"Open verifier findings ({len(outcome.findings)}), overruled by the test suite:")
            lines += [f"- {getattr(f, 'problem', f)}" for f in outcome.findings]
        lines += ["", *_diff(name, outcome), ""]
    return "\n".join(lines)
