"""A copy of examples/guides in a temporary workspace, and checks on what a plan run left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "guides"
SHIPPED = {
    "rbac.md",
    "oauth-oidc.md",
    "session-management.md",
    "identity-provider-selection.md",
    "zero-trust-patterns.md",
    "token-lifecycle.md",
}


def copy_example(workspace: Path) -> Path:
    for item in EXAMPLE.iterdir():
        target = workspace / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    return workspace


def use_openai_models(workspace: Path, extra: str = "") -> None:
    """Point the plan's tiers at an OpenAI-compatible server instead of rehearsal."""
    (workspace / "shoal.toml").write_text(
        '[models]\nhaiku = "openai:haiku-test"\nsonnet = "openai:sonnet-test"\n\n[job]\nconcurrency = 8\n'
        + extra
    )


def replies(workspace: Path) -> list[dict[str, object]]:
    return json.loads((workspace / "rehearsal.json").read_text())


def write_replies(workspace: Path, items: list[dict[str, object]]) -> None:
    (workspace / "rehearsal.json").write_text(json.dumps(items))


def shipped(workspace: Path) -> set[str]:
    return {p.name for p in (workspace / "docs" / "guides").glob("*.md")}


def registered_paths(workspace: Path) -> list[str]:
    return [entry["path"] for entry in json.loads((workspace / "docs" / "config.json").read_text())["guides"]]


def status_cells(plan_text: str) -> dict[str, str]:
    """filename -> status, from the task rows of a plan."""
    statuses = {}
    for line in plan_text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[2].endswith(".md"):
            statuses[cells[2]] = cells[4]
    return statuses


def assert_only_status_cells_changed(before: str, after: str) -> None:
    old_lines, new_lines = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    for old, new in zip(old_lines, new_lines, strict=True):
        if old == new:
            continue
        old_cells, new_cells = old.split("|"), new.split("|")
        assert len(old_cells) == len(new_cells), (old, new)
        changed = [i for i, (a, b) in enumerate(zip(old_cells, new_cells, strict=True)) if a != b]
        assert changed == [5], (old, new)  # | # | Title | Filename | Model | Status |
