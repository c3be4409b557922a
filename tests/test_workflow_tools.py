"""Agent tools: confinement to the workspace, the command allowlist, git worktrees, and a
multi-turn tool-using agent that resumes mid-conversation."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from shoal.budget import BudgetSettings
from shoal.config import ModelLimits, ShoalConfig
from shoal.engine import StateDir, StopSignal, open_job
from shoal.providers._http import make_http_client
from shoal.providers._pydantic_ai import PydanticAIProvider
from shoal.workflows import WorkflowResult, agent, run_workflow, workflow
from shoal.workflows._tools import Refused, WorkspaceTools, check_command, confine

# -- confinement ---------------------------------------------------------------------------


@pytest.fixture
def room(tmp_path: Path) -> Path:
    """A workspace with a file, next to a secret outside it and a symlink that points there."""
    (tmp_path / "secret.txt").write_text("outside")
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)
    return root


def test_paths_outside_the_workspace_are_refused(room: Path) -> None:
    assert confine(room, "src/app.py") == (room / "src" / "app.py").resolve()
    for escape in ("../secret.txt", str(room.parent / "secret.txt"), "/etc/passwd", "escape", "outdir/x", ""):
        with pytest.raises(Refused):
            confine(room, escape)
    with pytest.raises(Refused, match=".git"):
        confine(room, ".git/config", writing=True)


def test_write_file_refuses_to_touch_anything_outside_the_workspace(room: Path) -> None:
    tools = WorkspaceTools(room, ())
    outside = room.parent / "planted.txt"
    for target in ("../planted.txt", str(outside), "outdir/planted.txt"):
        assert tools.write_file(target, "x").startswith("refused:")
    assert not outside.exists()
    assert tools.write_file("escape", "overwritten").startswith("refused:")
    assert (room.parent / "secret.txt").read_text() == "outside"
    assert tools.read_file("../secret.txt").startswith("refused:")
    assert tools.read_file("escape").startswith("refused:")
    assert tools.write_file("notes/todo.md", "- fix it") == "wrote notes/todo.md (8 characters)"
    assert tools.read_file("notes/todo.md") == "- fix it"
    assert tools.list_files().splitlines() == ["notes/todo.md", "src/app.py"]


def test_commands_outside_the_allowlist_are_refused(room: Path) -> None:
    allowed = ("python -m unittest", "ls")
    assert check_command("ls -l src", allowed, room) == ["ls", "-l", "src"]
    assert check_command("python -m unittest -q", allowed, room)[:3] == ["python", "-m", "unittest"]
    refusals = {
        "rm -rf src": "not in the allowlist",
        "python -c 'import os'": "not in the allowlist",
        "ls ../": "outside the workspace",
        "ls /etc": "outside the workspace",
        "ls --color=/tmp": "outside the workspace",
        "ls src; rm -rf src": "without a shell",
        "ls | sh": "without a shell",
        "ls 'unclosed": "cannot parse",
    }
    for command, reason in refusals.items():
        with pytest.raises(Refused, match=reason):
            check_command(command, allowed, room)
    with pytest.raises(Refused, match="no allowed_commands"):
        check_command("ls", (), room)


async def test_the_run_tool_runs_allowed_commands_in_the_workspace(room: Path) -> None:
    tools = WorkspaceTools(room, ("python -c", "cat"))
    result = await tools.run("python -c 'print(__import__(\"os\").getcwd())'")
    assert result.startswith("exit code 0") and str(room) in result
    assert (await tools.run("cat /etc/hostname")).startswith("refused:")
    assert (await tools.run("touch x")).startswith("refused:")
    assert not (room / "x").exists()


async def test_the_run_tool_refuses_a_symlink_that_leads_out_of_the_workspace(room: Path) -> None:
    tools = WorkspaceTools(room, ("cat", "ls"))
    escapes = ("cat escape", "cat outdir/secret.txt", "ls outdir", "cat --file=escape", "cat ./src/../escape")
    for command in escapes:
        reply = await tools.run(command)
        assert reply.startswith("refused:") and "outside the workspace" in reply, command
        assert "outside\n" not in reply
    (room / "inner").symlink_to(room / "src" / "app.py")  # a link that stays inside is fine
    assert "print('hi')" in await tools.run("cat inner")


async def test_commands_see_no_secrets_and_their_output_is_redacted(room: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "OPENAI_API_KEY": "sk-test-openai-0123456789",
        "GITHUB_TOKEN": "ghp-test-0123456789",
        "AWS_SECRET_ACCESS_KEY": "aws-test-0123456789",
        "MY_PROVIDER_VAR": "custom-key-0123456789",  # named by a provider's api_key_env
        "DATABASE_URL": "postgres://user:hunter2-password@db/x",
        "SSH_AUTH_SOCK": "/tmp/agent.sock",
        "PGPASSWORD": "hunter2-password",
        "LANG": "C.UTF-8",
        "GIT_AUTHOR_NAME": "A. Author",  # not a secret: kept
    }
    tools = WorkspaceTools(room, ("python",), env=env, hidden=["MY_PROVIDER_VAR"])
    (room / "env.py").write_text("import os\nprint(sorted(os.environ))\n")
    shown = await tools.run("python env.py")
    assert shown.startswith("exit code 0")
    for name in env.keys() - {"PATH", "LANG", "GIT_AUTHOR_NAME"}:
        assert name not in shown
    assert "LANG" in shown and "PATH" in shown and "GIT_AUTHOR_NAME" in shown
    # A command that prints a key it found some other way: the value is redacted from the output.
    (room / "leak.py").write_text("print('sk-test-openai-0123456789 and custom-key-0123456789')\n")
    leaked = await tools.run("python leak.py")
    assert "sk-test-openai" not in leaked and "custom-key" not in leaked
    assert leaked.count("[redacted]") == 2


# -- agents with tools, through a scripted pydantic-ai model -------------------------------

Script = Callable[[list[ModelMessage], AgentInfo, int], ModelResponse]


@dataclass
class Scripted:
    """A provider set whose "openai" provider is a FunctionModel following `script`."""

    script: Script
    calls: int = 0
    provider: PydanticAIProvider | None = None
    seen: list[list[ModelMessage]] = field(default_factory=list)

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        self.seen.append(messages)
        return self.script(messages, info, self.calls)

    def get(self, provider: str) -> PydanticAIProvider:
        if self.provider is None:
            self.provider = PydanticAIProvider(
                "openai", lambda name: FunctionModel(self.respond, model_name=name), make_http_client(5.0)
            )
        return self.provider

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None


def tool_results(messages: list[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


CONFIG = ShoalConfig(limits={"openai:scripted": ModelLimits(rpm=60_000, tpm=10_000_000)})


async def run(wf: Any, root: Path, scripted: Scripted, stop: StopSignal | None = None) -> WorkflowResult:
    async with open_job(
        state=StateDir(root),
        config=CONFIG,
        name=f"workflow:{wf.name}",
        command="test",
        env={},
        stop=stop or StopSignal(),
        providers=scripted,
        budget_settings=BudgetSettings(pause_jitter_s=0.0, spacing_jitter=0.0),
    ) as job:
        result: WorkflowResult = await run_workflow(
            wf, {}, job, settings=wf.settings(CONFIG, cwd=root), root=root
        )
    return result


def make_target(root: Path) -> Path:
    target = root / "project"
    target.mkdir()
    (target / "config.txt").write_text("retries = 3\n")
    return target


async def test_an_agent_edits_its_workspace_and_cannot_escape_it(workspace: Path) -> None:
    target = make_target(workspace)

    def script(messages: list[ModelMessage], info: AgentInfo, call: int) -> ModelResponse:
        steps: list[ModelResponse] = [
            ModelResponse(parts=[ToolCallPart("write_file", {"path": "../escaped.txt", "content": "x"})]),
            ModelResponse(
                parts=[ToolCallPart("write_file", {"path": str(target / "config.txt"), "content": "x"})]
            ),
            ModelResponse(parts=[ToolCallPart("write_file", {"path": "out/result.txt", "content": "done"})]),
            ModelResponse(parts=[ToolCallPart("run", {"command": "rm -rf out"})]),
            ModelResponse(parts=[TextPart("; ".join(tool_results(messages)))]),
        ]
        return steps[call - 1]

    @workflow(name="edit", target=target, model="openai:scripted")
    async def main() -> str:
        return await agent("Do the work", tools=["write_file", "run"], name="worker")

    result = await run(main, workspace, Scripted(script))
    assert result.exit_code == 0
    refusals = result.value.split("; ")
    assert refusals[0].startswith("refused:") and refusals[1].startswith("refused:")
    assert refusals[3].startswith("refused:") and "not in the allowlist" in refusals[3]
    assert (
        not (workspace / "escaped.txt").exists()
        and not (workspace / ".shoal" / "workspaces" / "edit" / "escaped.txt").exists()
    )
    assert (target / "config.txt").read_text() == "retries = 3\n"  # the target itself is never touched
    home = workspace / ".shoal" / "workspaces" / "edit" / "worker"
    assert (home / "out" / "result.txt").read_text() == "done"
    assert (home / "config.txt").read_text() == "retries = 3\n"  # seeded from the target


async def test_a_resumed_agent_continues_mid_conversation(workspace: Path) -> None:
    target = make_target(workspace)
    stop = StopSignal()

    def script(messages: list[ModelMessage], info: AgentInfo, call: int) -> ModelResponse:
        requests = sum(isinstance(m, ModelResponse) for m in messages)  # turns so far in this session
        if requests == 0:
            return ModelResponse(parts=[ToolCallPart("read_file", {"path": "config.txt"})])
        if requests == 1:
            stop.interrupt()  # Ctrl-C while this request is in flight: it finishes, nothing new starts
            return ModelResponse(parts=[ToolCallPart("write_file", {"path": "notes.txt", "content": "seen"})])
        return ModelResponse(parts=[TextPart("config says: " + tool_results(messages)[0].strip())])

    @workflow(name="resume", target=target, model="openai:scripted")
    async def main() -> str:
        return await agent("Read the config and take notes", tools=["read_file", "write_file"], name="reader")

    scripted = Scripted(script)
    first = await run(main, workspace, scripted, stop)
    assert first.exit_code == 3 and scripted.calls == 2
    home = workspace / ".shoal" / "workspaces" / "resume" / "reader"
    (home / "config.txt").write_text("retries = 99\n")  # changed under the agent between the runs
    (home / "notes.txt").unlink()

    second = await run(main, workspace, scripted)
    assert second.exit_code == 0
    assert scripted.calls == 3  # the two finished requests were replayed; only the last was sent
    assert second.value == "config says: retries = 3"  # the tool result came from the journal
    assert (home / "notes.txt").read_text() == "seen"  # a replayed write is applied again
    with sqlite3.connect(workspace / ".shoal" / "journal.db") as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM calls WHERE outcome = 'ok'")]
    assert len(keys) == len(set(keys)) == 3


async def test_a_git_repository_target_gives_each_agent_a_worktree(workspace: Path) -> None:
    repo = workspace / "repo"
    repo.mkdir()
    (repo / "main.py").write_text("print('v1')\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "main.py"], ["commit", "-q", "-m", "v1"]):
        subprocess.run([*git, *args], check=True, env=env, capture_output=True)

    def script(messages: list[ModelMessage], info: AgentInfo, call: int) -> ModelResponse:
        if not tool_results(messages):
            return ModelResponse(parts=[ToolCallPart("list_files", {})])
        return ModelResponse(parts=[TextPart(tool_results(messages)[0])])

    @workflow(name="git", target=repo, model="openai:scripted")
    async def main() -> str:
        return await agent("What is here?", tools=["list_files"], name="looker")

    result = await run(main, workspace, Scripted(script))
    assert result.value == "main.py"
    home = workspace / ".shoal" / "workspaces" / "git" / "looker"
    assert (home / ".git").is_file()  # a worktree, not a copy
    listed = subprocess.run([*git, "worktree", "list"], check=True, env=env, capture_output=True, text=True)
    assert str(home) in listed.stdout


def test_agent_failures_read_as_one_plain_line() -> None:
    from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

    from shoal.errors import ModelCallError
    from shoal.workflows._failure import failure_line

    rambling = [ModelResponse(parts=[TextPart("Let me look at that file once more.\n" + "x" * 500)])]
    line = failure_line(UsageLimitExceeded("The next request would exceed the request_limit of 50"), rambling)
    assert line.startswith("it used up its model requests (50) without a final answer (raise max_requests)")
    assert 'it answered: "Let me look at that file once more. xxx' in line and line.endswith('…"')
    assert "\n" not in line and "pydantic.dev" not in line and len(line) < 300

    called = [ModelResponse(parts=[ToolCallPart("final_result", {"widgets": "many"})])]
    line = failure_line(UnexpectedModelBehavior("Exceeded maximum output retries (1)"), called)
    assert line == (
        'the model\'s answer did not fit the expected output in 2 tries; it answered: "{"widgets":"many"}"'
    )
    assert failure_line(ModelCallError("HTTP 500 from openai after 5 attempts"), []) == (
        "HTTP 500 from openai after 5 attempts"
    )
