"""Reading a plan and writing its statuses back, byte for byte."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shoal.config import TieringSettings, TierRuleSettings
from shoal.plan import StatusUpdate, choose_tier, parse_plan, tier_order, write_statuses

from plan_helpers import copy_example


def test_example_plan_reads_as_written(tmp_path: Path) -> None:
    copy_example(tmp_path)
    plan = parse_plan(tmp_path / "PLAN.md", cwd=tmp_path)
    assert [p.name for p in plan.phases] == ["Fundamentals", "Advanced"]
    assert [t.filename for t in plan.tasks(2)] == [
        "identity-provider-selection.md",
        "zero-trust-patterns.md",
        "token-lifecycle.md",
    ]
    assert plan.lint_commands == ("python lint_content.py <filepath>",)
    assert plan.registration == tmp_path / "docs" / "config.json"
    assert plan.default_tier == "haiku"
    assert len(plan.content_rules) == 4 and len(plan.checklist) == 4


def test_tiering_follows_column_then_rules_then_default(tmp_path: Path) -> None:
    copy_example(tmp_path)
    plan = parse_plan(tmp_path / "PLAN.md", cwd=tmp_path)
    tasks = {t.filename: t for t in plan.tasks()}
    settings = TieringSettings()
    assert choose_tier(tasks["token-lifecycle.md"], plan, settings).tier == "haiku"  # Model column
    blank = choose_tier(tasks["identity-provider-selection.md"], plan, settings)
    assert blank.tier == "sonnet" and "selection" in blank.reason
    # A 'selection' title outside an advanced phase gets the default.
    fundamentals = replace(tasks["rbac.md"], model="", title="Database Selection")
    assert choose_tier(fundamentals, plan, settings).tier == "haiku"
    configured = TieringSettings(rules=[TierRuleSettings(model="opus", title_contains=["database"])])
    assert choose_tier(fundamentals, plan, configured).tier == "opus"
    assert tier_order(plan, settings) == ["haiku", "sonnet"]


def test_status_write_back_keeps_every_other_byte_even_crlf(tmp_path: Path) -> None:
    copy_example(tmp_path)
    path = tmp_path / "PLAN.md"
    original = path.read_bytes().replace(b"\n", b"\r\n")
    path.write_bytes(original)
    plan = parse_plan(path, cwd=tmp_path)
    write_statuses(plan, [StatusUpdate("oauth-oidc.md", "complete")])
    after = path.read_bytes()
    assert after == original.replace(
        b"| oauth-oidc.md | haiku | pending |", b"| oauth-oidc.md | haiku | complete |"
    )
    write_statuses(plan, [StatusUpdate("rbac.md", "needs-review", "flagged | twice")])
    lines = path.read_bytes().split(b"\r\n")
    assert b"| # | Title | Filename | Model | Status | Notes |" in lines
    assert b"| 2 | Role-Based Access Control | rbac.md | haiku | needs-review | flagged / twice |" in lines
    assert b"|---|-------|----------|-------|--------|-------|" in lines
