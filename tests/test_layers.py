"""The house rules of docs/architecture.md, checked on the source: packages import each other
without a cycle, and only the journal package speaks SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "shoal"


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """Relative imports that run (those under `if TYPE_CHECKING:` only annotate)."""
    hidden = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level and id(n) not in hidden]


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        here = _package(path)
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            base = list(rel[: len(rel) - node.level])
            target = base + (node.module.split(".") if node.module else [node.names[0].name])
            there = target[0].removesuffix(".py")
            if there != here:
                edges.setdefault(here, set()).add(there)
    return edges


def test_packages_import_each_other_without_a_cycle() -> None:
    edges = package_graph()
    assert edges["budget"] and "providers" not in edges["budget"]  # the cycle issue 11 removed

    def reaches(start: str, goal: str) -> bool:
        seen, todo = {start}, [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            for nxt in edges.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted((a, b) for a, targets in edges.items() for b in targets if reaches(b, a))
    assert cycles == []


_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.+\b(FROM|INTO|SET)\b")


def test_only_the_journal_speaks_sql() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        if _package(path) != "journal"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _SQL.search(line)
    ]
    assert offenders == []
