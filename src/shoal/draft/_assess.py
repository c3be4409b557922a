"""Step one of a draft: what the target holds, what can tell right from wrong, what the task names.

Nothing here calls a model. The assessment reads file names and sizes (never contents, except
the few project files that declare a test command) so that the drafting prompt stays small.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Assessment", "Oracle", "SourceFile", "assess"]

_SKIP_DIRS = frozenset(
    {".git", ".shoal", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox", "dist", "build", "target", ".idea", ".vscode"}
)  # fmt: skip
_LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".jsx": "JavaScript", ".mjs": "JavaScript",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".go": "Go", ".rs": "Rust", ".java": "Java",
    ".kt": "Kotlin", ".swift": "Swift", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".hpp": "C++", ".cs": "C#", ".rb": "Ruby", ".php": "PHP", ".scala": "Scala", ".sh": "Shell",
    ".md": "Markdown", ".rst": "reStructuredText", ".txt": "Text", ".json": "JSON", ".toml": "TOML",
    ".yaml": "YAML", ".yml": "YAML", ".html": "HTML", ".css": "CSS", ".sql": "SQL",
}  # fmt: skip
_CODE = frozenset(
    {"Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "Kotlin", "Swift", "C", "C++", "C#",
     "Ruby", "PHP", "Scala", "Shell"}
)  # fmt: skip
_NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str  # relative to the target, with "/"
    size: int
    language: str

    @property
    def is_code(self) -> bool:
        return self.language in _CODE


@dataclass(frozen=True, slots=True)
class Oracle:
    """A command whose exit status says whether the work is right, and where it was found."""

    command: str
    source: str


@dataclass(frozen=True, slots=True)
class Assessment:
    task: str
    target: Path
    files: tuple[SourceFile, ...]
    oracles: tuple[Oracle, ...]
    named: tuple[str, ...]  # files and folders of the target that the task mentions
    more_files: int = 0  # files past the listing limit, counted but not listed

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def languages(self) -> list[tuple[str, int]]:
        """(language, files), most files first."""
        return Counter(f.language for f in self.files).most_common()

    @property
    def code_files(self) -> list[SourceFile]:
        return [f for f in self.files if f.is_code]

    @property
    def in_scope(self) -> list[SourceFile]:
        """The code files the work is about: those the task names (or lie under a named folder),
        else every code file."""
        code = self.code_files
        if not self.named:
            return code
        chosen = [
            f for f in code if any(f.path == n or f.path.startswith(n.rstrip("/") + "/") for n in self.named)
        ]
        return chosen or code


def _language(path: Path) -> str:
    return _LANGUAGES.get(path.suffix.lower(), "other")


def _walk(target: Path, limit: int) -> tuple[list[SourceFile], int]:
    files: list[SourceFile] = []
    extra = 0
    for folder, dirs, names in os.walk(target):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            if len(files) >= limit:
                extra += 1
                continue
            files.append(
                SourceFile(path.relative_to(target).as_posix(), path.stat().st_size, _language(path))
            )
    return files, extra


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _python_oracles(target: Path, files: list[SourceFile]) -> list[Oracle]:
    found: list[Oracle] = []
    pyproject = _read(target / "pyproject.toml")
    if pyproject is not None:
        try:
            tool = tomllib.loads(pyproject).get("tool", {})
        except tomllib.TOMLDecodeError:
            tool = {}
        if "pytest" in tool:
            found.append(Oracle("python -m pytest", "pyproject.toml [tool.pytest]"))
        if "tox" in tool:
            found.append(Oracle("tox", "pyproject.toml [tool.tox]"))
    if (target / "pytest.ini").is_file():
        found.append(Oracle("python -m pytest", "pytest.ini"))
    for name, sections in (("setup.cfg", ("tool:pytest",)), ("tox.ini", ("pytest", "tox"))):
        text = _read(target / name)
        if text is None:
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error:
            continue
        for section in sections:
            if parser.has_section(section):
                command = "tox" if section == "tox" else "python -m pytest"
                found.append(Oracle(command, f"{name} [{section}]"))
    tests = [f.path for f in files if re.search(r"(^|/)(test_[^/]*|[^/]*_test)\.py$", f.path)]
    if tests and not any(o.command == "python -m pytest" for o in found):
        found.append(Oracle("python -m pytest", f"{len(tests)} test file(s), e.g. {tests[0]}"))
    return found


def _make_oracles(target: Path) -> list[Oracle]:
    text = _read(target / "Makefile")
    if text is None:
        return []
    targets = re.findall(r"^(test|tests|check)\s*:", text, re.MULTILINE)
    return [Oracle(f"make {name}", "Makefile") for name in dict.fromkeys(targets)]


def _npm_oracles(target: Path) -> list[Oracle]:
    text = _read(target / "package.json")
    if text is None:
        return []
    try:
        scripts = json.loads(text).get("scripts", {})
    except (ValueError, AttributeError):
        return []
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if isinstance(test, str) and test.strip() and test.strip() != _NPM_PLACEHOLDER:
        return [Oracle("npm test", f"package.json scripts.test ({test.strip()})")]
    return []


def _other_oracles(target: Path) -> list[Oracle]:
    found = []
    if (target / "Cargo.toml").is_file():
        found.append(Oracle("cargo test", "Cargo.toml"))
    if (target / "go.mod").is_file():
        found.append(Oracle("go test ./...", "go.mod"))
    return found


def _named(task: str, files: list[SourceFile]) -> list[str]:
    """Files and folders of the target that the task mentions by path or by file name."""
    words = {w.strip(".,;:()'\"`").rstrip("/") for w in task.split()}
    words.discard("")
    named: list[str] = []
    folders = {p for f in files for p in _parents(f.path)}
    for folder in sorted(folders):
        if folder in words or folder.rsplit("/", 1)[-1] + "/" in task.split():
            named.append(folder + "/")
    for f in files:
        if f.path in words or f.path.rsplit("/", 1)[-1] in words:
            named.append(f.path)
    return list(dict.fromkeys(named))


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def assess(task: str, target: Path, *, limit: int = 2_000) -> Assessment:
    """Read the target's file tree and project files; send nothing anywhere."""
    files, extra = _walk(target, limit)
    oracles = [*_python_oracles(target, files), *_make_oracles(target), *_npm_oracles(target)]
    oracles.extend(_other_oracles(target))
    unique = list({(o.command, o.source): o for o in oracles}.values())
    return Assessment(task, target, tuple(files), tuple(unique), tuple(_named(task, files)), extra)
