"""Bug hunt: fan out over a repository's files, attack every finding with an independent
verifier, and synthesize a report of the ones that survive.

    shoal run examples/bug_hunt/workflow.py --yes
    shoal run examples/bug_hunt/workflow.py --yes --arg files=pricing.py,dates.py

It runs on the keyless rehearsal provider as it is (placeholder answers, the whole path for
real). For real answers, name models in shoal.toml, for instance:

    [models]
    fast = "openai:gpt-4o-mini"
    smart = "anthropic:claude-sonnet-4-5"
"""

from pathlib import Path

from pydantic import BaseModel, Field

from shoal import agent, parallel, phase, workflow

REPO = Path(__file__).resolve().parent / "sample_repo"

SCAN = (
    "Find the bugs in {file}. The file is below; read the files it uses with your tools if you need "
    "to. Report each defect as a finding: the file, the line, and what goes wrong for which input. "
    "Report real defects only, not style; report none if you find none."
)
SKEPTIC = (
    "You review bug reports written by someone else, and most reports you see are wrong. Read the "
    "code yourself. Confirm a report only if the defect is real and a caller can reach it."
)
VERIFY = "A colleague reports this bug in {file}, line {line}: {problem}\nIs it a real, reachable defect?"
SUMMARY = (
    "Write a short summary for the maintainers of the confirmed bugs below: what to fix first and why. "
    "Plain prose, at most two paragraphs."
)


class Finding(BaseModel):
    file: str
    line: int
    problem: str


class Verdict(BaseModel):
    real: bool = Field(description="true only if the defect is real and reachable")
    reason: str


def _table(rows: list[tuple[Finding, Verdict]]) -> list[str]:
    lines = ["| file | line | problem | why it holds |", "|---|---|---|---|"]
    for finding, verdict in rows:
        cells = [finding.file, str(finding.line), finding.problem, verdict.reason]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |")
    return lines


@workflow(name="bug-hunt", max_agents=200, target="sample_repo")
async def main(files: list[str] | None = None) -> str:
    names = files or sorted(path.name for path in REPO.glob("*.py"))

    with phase("scan"):
        found = await parallel(
            names,
            lambda name: agent(
                SCAN.format(file=name),
                schema=list[Finding],
                model="fast",
                tools=["read_file", "list_files"],
                reference=(REPO / name).read_text(),
            ),
        )
    findings = [finding for batch in found if batch for finding in batch]

    with phase("verify"):  # every finding attacked in a context of its own
        verdicts = await parallel(
            findings,
            lambda finding: agent(
                VERIFY.format(file=finding.file, line=finding.line, problem=finding.problem),
                schema=Verdict,
                model="smart",
                system=SKEPTIC,
                tools=["read_file"],
            ),
        )
    confirmed = [(f, v) for f, v in zip(findings, verdicts, strict=True) if v is not None and v.real]

    with phase("report"):
        summary = await agent(
            SUMMARY, model="smart", reference=[{"finding": f, "verdict": v} for f, v in confirmed]
        )

    lines = [
        "# Bug hunt",
        "",
        f"{len(names)} file(s) scanned, {len(findings)} finding(s) reported, {len(confirmed)} confirmed "
        "by an independent verifier.",
        "",
        summary.strip(),
        "",
        "## Confirmed",
        "",
        *(_table(confirmed) if confirmed else ["(none)"]),
    ]
    return "\n".join(lines)
