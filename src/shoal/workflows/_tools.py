"""Tools for agents, confined to the agent's workspace.

`read_file`, `list_files` and `write_file` resolve every path (symlinks included) and refuse one
that lands outside the workspace; `run` starts only commands whose leading words match an entry
of the allowlist (the workflow's `commands=` plus shoal.toml `[workflow] allowed_commands`), with
no shell, inside the workspace, and refuses any argument that names a path outside it once
symlinks are resolved (`cat link` where `link` points out of the workspace is refused). Commands
get a scrubbed environment (no keys, tokens, secrets or passwords), and every known secret value
is redacted from their output before the model or the journal sees it. The allowlist is a gate,
not a sandbox: an allowed program can do whatever that program does.

A tool refusal is returned to the model as the tool's result, so it can correct itself without
spending the agent's retries.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_ai.tools import Tool

from ..gate import write_atomic
from ..view import Redactor

__all__ = [
    "BUILTIN_TOOLS",
    "CommandResult",
    "Refused",
    "WorkspaceTools",
    "builtin_tools",
    "check_command",
    "confine",
    "run_command",
    "run_shell",
    "scrubbed_environment",
]

BUILTIN_TOOLS = ("read_file", "list_files", "write_file", "run")
_MAX_READ = 200_000  # characters of a file read_file returns
_MAX_LISTED = 500
_OUTPUT_TAIL = 6_000
_COMMAND_TIMEOUT_S = 300.0
_SHELL_SYNTAX = (";", "|", "&", ">", "<", "`", "$(")
# Variables an allowed command never sees: keys, tokens, secrets, passwords, credentials.
_SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|TOKEN|API_?KEY"  # anywhere in the name
    r"|(?:^|_)(?:KEY|AUTH|AUTHORIZATION|COOKIE|PRIVATE)(?:$|_)",  # as a word: not GIT_AUTHOR_NAME
    re.I,
)
_CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


class Refused(Exception):
    """What an agent asked a tool to do is not allowed; the message goes back to the model."""


def confine(workspace: Path, relative: str, *, writing: bool = False) -> Path:
    """The real path of `relative` inside `workspace`; Refused if it resolves anywhere else."""
    if not relative or "\x00" in relative:
        raise Refused("refused: an empty or malformed path")
    root = workspace.resolve()
    resolved = (root / relative).resolve()  # absolute paths replace root; symlinks are followed
    if resolved != root and not resolved.is_relative_to(root):
        raise Refused(f"refused: {relative} is outside the workspace")
    if writing and ".git" in resolved.relative_to(root).parts:
        raise Refused(f"refused: {relative} is inside .git")
    return resolved


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int
    output: str  # stdout and stderr together, the tail only

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        return f"exit code {self.exit_code}\n{self.output}".rstrip()


def _matches(argv: list[str], allowed: Sequence[str]) -> bool:
    for entry in allowed:
        words = shlex.split(entry)
        if words and argv[: len(words)] == words:
            return True
    return False


def _outside(workspace: Path, argument: str) -> bool:
    """Whether an argument names a path outside the workspace once symlinks are resolved (also in
    --option=VALUE form). Every argument is tried as a path: `link` may be a symlink that leads out."""
    value = argument.split("=", 1)[1] if argument.startswith("-") and "=" in argument else argument
    if not value or "\x00" in value:
        return False
    try:
        confine(workspace, os.path.expanduser(value))
    except Refused:
        return True
    except (OSError, RuntimeError, ValueError):  # a symlink loop or an unusable name
        return True
    return False


def check_command(command: str, allowed: Sequence[str], workspace: Path) -> list[str]:
    """The command's argv if the allowlist admits it; Refused otherwise."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise Refused(f"refused: cannot parse the command ({exc})") from None
    if not argv:
        raise Refused("refused: empty command")
    if any(mark in word for word in argv for mark in _SHELL_SYNTAX):
        raise Refused("refused: commands run without a shell; pipes, redirects and ';' are not available")
    if not _matches(argv, allowed):
        listed = ", ".join(repr(a) for a in allowed) or "nothing (no allowed_commands configured)"
        raise Refused(f"refused: {argv[0]!r} is not in the allowlist; allowed: {listed}")
    for argument in argv[1:]:
        if _outside(workspace, argument):
            raise Refused(f"refused: {argument} points outside the workspace")
    return argv


def scrubbed_environment(env: Mapping[str, str], hidden: Sequence[str] = ()) -> dict[str, str]:
    """`env` without secrets (names like *_API_KEY, *_TOKEN, *SECRET*, *PASSWORD*, the `hidden`
    names, values with credentials in a URL), with the Python that runs shoal first on PATH."""
    kept = {
        name: value
        for name, value in env.items()
        if not _SECRET_NAME.search(name) and name not in hidden and not _CREDENTIALS_IN_URL.search(value)
    }
    kept["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    kept.pop("PYTHONPATH", None)
    return kept


def _environment() -> dict[str, str]:
    """The author's own commands (a verify_fix oracle) keep the caller's environment."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


async def _collect(process: asyncio.subprocess.Process, timeout_s: float) -> CommandResult:
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return CommandResult(124, f"timed out after {timeout_s:g}s")
    text = output.decode("utf-8", "replace")
    return CommandResult(process.returncode or 0, text[-_OUTPUT_TAIL:])


async def run_command(
    argv: list[str],
    cwd: Path,
    timeout_s: float = _COMMAND_TIMEOUT_S,
    *,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """An allowed command, without a shell, with a scrubbed environment (`env`, default: ours)."""
    if argv[0] in ("python", "python3"):
        argv = [sys.executable, *argv[1:]]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else scrubbed_environment(os.environ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    result = await _collect(process, timeout_s)
    # Its output may reach a fixer agent and the journal: known secret values never do.
    return CommandResult(result.exit_code, Redactor.from_env(os.environ).text(result.output))


async def run_shell(command: str, cwd: Path, timeout_s: float = 600.0) -> CommandResult:
    """The script author's own command (a verify_fix oracle), through /bin/sh in `cwd`."""
    process = await asyncio.create_subprocess_shell(
        command,
        cwd=cwd,
        env=_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    result = await _collect(process, timeout_s)
    return CommandResult(result.exit_code, Redactor.from_env(os.environ).text(result.output))


class WorkspaceTools:
    """The built-in tools, bound to one workspace and one allowlist.

    `env`: the environment commands start from (default: ours), scrubbed of secrets and of the
    `hidden` names (say a provider key kept in a variable of the user's choosing); `redactor`
    removes known secret values from what commands print.
    """

    def __init__(
        self,
        workspace: Path,
        allowed: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        hidden: Sequence[str] = (),
    ) -> None:
        self.workspace = workspace
        self.allowed = tuple(allowed)
        source = os.environ if env is None else env
        self._env = scrubbed_environment(source, hidden)
        known = Redactor.from_env(source).secrets
        extra = tuple(source[name] for name in hidden if len(source.get(name, "")) >= 8)
        self._redactor = Redactor(tuple(sorted({*known, *extra}, key=len, reverse=True)))

    def read_file(self, path: str) -> str:
        """Read a text file of the workspace. `path` is relative to the workspace root."""
        try:
            text = confine(self.workspace, path).read_text(encoding="utf-8", errors="replace")
        except Refused as exc:
            return str(exc)
        except OSError as exc:
            return f"error: cannot read {path}: {exc.strerror or exc}"
        return text if len(text) <= _MAX_READ else text[:_MAX_READ] + "\n[... cut: file too long]"

    def list_files(self, path: str = ".") -> str:
        """List the files under a directory of the workspace, one relative path a line."""
        try:
            base = confine(self.workspace, path)
        except Refused as exc:
            return str(exc)
        if not base.is_dir():
            return f"error: {path} is not a directory"
        root = self.workspace.resolve()
        found: list[str] = []
        for folder, dirs, files in os.walk(base):  # symlinked folders are not followed
            dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
            for name in sorted(f for f in files if f != ".git"):  # a worktree's .git is a file
                item = Path(folder) / name
                if not item.resolve().is_relative_to(root):
                    continue  # a symlink that points out of the workspace
                if len(found) >= _MAX_LISTED:
                    return "\n".join([*found, f"[... more than {_MAX_LISTED} files]"])
                found.append(item.relative_to(root).as_posix())
        return "\n".join(found) or "(no files)"

    def write_file(self, path: str, content: str) -> str:
        """Create or replace a text file of the workspace with `content`."""
        try:
            write_atomic(confine(self.workspace, path, writing=True), content)
        except Refused as exc:
            return str(exc)
        except OSError as exc:
            return f"error: cannot write {path}: {exc.strerror or exc}"
        return f"wrote {path} ({len(content)} characters)"

    async def run(self, command: str) -> str:
        """Run an allowed command (no shell) in the workspace; returns its exit code and output."""
        try:
            argv = check_command(command, self.allowed, self.workspace)
            result = await run_command(argv, self.workspace, env=self._env)
        except Refused as exc:
            return str(exc)
        except OSError as exc:
            return f"error: cannot start the command: {exc.strerror or exc}"
        return self._redactor.text(result.describe())


def builtin_tools(
    names: Sequence[str], workspace: Path, allowed: Sequence[str], *, hidden: Sequence[str] = ()
) -> list[Tool[Any]]:
    """The named built-in tools, bound to one workspace; `hidden`: more variables commands never see."""
    tools = WorkspaceTools(workspace, allowed, hidden=hidden)
    return [Tool(getattr(tools, name), name=name) for name in names]
