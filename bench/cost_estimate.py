"""How close the expected cost comes to what a plan actually spends: the example plan
(examples/guides) run with `shoal run PLAN.md --yes` against shoal's fake OpenAI server, with the
tiers priced like Claude Haiku and Sonnet through [prices] given for the aliases.

Two scenarios: `clean` (the example's scripted drafts: one lint fix, one review fix, nothing
escalates) and `escalating` (every phase-1 draft fails the linter on the cheap tier and escalates,
and so does the one cheap-tier task of phase 2). For each: the estimate shown before launch, the
projection journaled after phase 1, and the journal's actual cost. Target: the projection after
phase 1 within 15% of the actual total.

    .venv/bin/python bench/cost_estimate.py
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from shoal.fake import FakeLimits, FakeServer, FakeSettings
from shoal.providers import load_replies

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "guides"

# What makes each cheap-tier draft fail the linter: one violation per task, each of its own kind, so
# the plan's systemic rule (the same failure in most tasks) does not stop the phase.
_VIOLATION = {
    "Role-Based Access Control": "```\nrbac grant admin\n```",
    "OAuth and OIDC Patterns": "A provider costs $5 a month.",
    "Session Management": "Cookies compared:\n| kind | lifetime |\n|---|---|\n| session | short |",
    "Token Lifecycle Management": "```\ntoken revoke --all\n```",
}


def escalating_replies(example: list[dict[str, object]]) -> list[dict[str, object]]:
    """The cheap tier's first draft and both lint fixes fail; the escalated tier gets the good draft."""
    good = {str(r["match"]): str(r["reply"]) for r in example}
    bad: list[dict[str, object]] = []
    for title, violation in _VIOLATION.items():
        draft = good[f'Create the document "{title}"'].rstrip() + "\n\n" + violation + "\n"
        bad.append({"match": f'Create the document "{title}"', "reply": draft, "times": 1})
        bad.append({"match": f'The linter rejected your draft of "{title}"', "reply": draft, "times": 2})
    # The example's own lint fix for Session Management would pass; the bad ones come first.
    return bad + example


def run(scenario: str, root: Path) -> dict[str, float]:
    work = root / scenario
    shutil.copytree(EXAMPLE, work)
    example = json.loads((EXAMPLE / "rehearsal.json").read_text())
    replies = escalating_replies(example) if scenario == "escalating" else example
    (work / "replies.json").write_text(json.dumps(replies))
    settings = FakeSettings(
        limits=FakeLimits(rpm=100_000, tpm=100_000_000),
        latency_s=0.02,
        replies=load_replies(work / "replies.json"),
    )
    with FakeServer(settings) as server:
        (work / "shoal.toml").write_text(
            "[models]\n"
            'haiku = "openai:fake-haiku"\n'
            'sonnet = "openai:fake-sonnet"\n\n'
            "[prices]\n"
            "haiku = { input = 1.0, output = 5.0 }\n"
            "sonnet = { input = 3.0, output = 15.0 }\n\n"
            "[providers.openai]\n"
            f'base_url = "{server.openai_base_url}"\n\n'
            "[job]\nconcurrency = 8\nmax_tokens = 1500\nmax_cost_usd = 5.0\n"
        )
        env = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "k", "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "shoal", "run", "PLAN.md", "--yes"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if done.returncode not in (0, 1):
        raise SystemExit(f"{scenario}: shoal exited {done.returncode}:\n{done.stderr}")
    with sqlite3.connect(work / ".shoal" / "journal.db") as conn:
        actual = conn.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
        query = "SELECT kind, detail FROM events WHERE kind IN ('estimate', 'projection')"
        events = {kind: json.loads(detail) for kind, detail in conn.execute(query)}
        phase1 = conn.execute("SELECT sum(cost_usd) FROM calls WHERE stage LIKE 'phase-1/%'").fetchone()[0]
    estimate, projection = events["estimate"], events["projection"]
    return {
        "launch_expected": estimate["expected_usd"],
        "launch_worst": estimate["worst_usd"],
        "projected_total": projection["spent_usd"] + projection["expected_usd"],
        "projected_rest": projection["expected_usd"],
        "actual_total": actual,
        "actual_rest": actual - phase1,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "scenario     launch expected  launch worst  projected after phase 1  actual   "
            "projection/actual (total, phase 2)"
        )
        for scenario in ("clean", "escalating"):
            f = run(scenario, Path(tmp))
            print(
                f"{scenario:<12} ${f['launch_expected']:<15.4f} ${f['launch_worst']:<12.4f} "
                f"${f['projected_total']:<23.4f} ${f['actual_total']:<7.4f} "
                f"{f['projected_total'] / f['actual_total']:.3f}x, "
                f"{f['projected_rest'] / f['actual_rest']:.3f}x"
                f"   (launch expected {f['launch_expected'] / f['actual_total']:.2f}x actual)"
            )


if __name__ == "__main__":
    main()
