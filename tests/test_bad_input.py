"""Every bad input, as one table: the command, its exit code and its one line on stderr.

Each row runs the real entry point (`shoal.cli.main`, in-process unless a real process matters)
in a workspace next to an `outside/` folder, and checks what a user would notice: the exit code,
exactly one line on stderr naming the problem, no traceback, nothing written outside the
workspace, and no earlier output lost (a refused command changes no file at all).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import clean_env, invoke_shoal, run_shoal, shoal_argv, write_records
from plan_helpers import copy_example

RECORDS = '{"id": "a", "topic": "tides"}\n{"id": "b", "topic": "reefs"}\n'
MAP = ("map", "records.jsonl", "--model", "rehearsal")
MAP_TO_O = (*MAP, "--prompt", "x {topic}", "--out", "o.jsonl")


@dataclass
class Env:
    """What a row's setup may use: the workspace, monkeypatch, and cleanups run after the command."""

    root: Path
    monkeypatch: pytest.MonkeyPatch
    stack: ExitStack

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    needle: tuple[str, ...]  # substrings of the one line on stderr
    setup: Callable[[Env], None] | None = None
    code: int = 2
    real_process: bool = False
    then: Callable[[Env], None] | None = None  # further checks, e.g. that a resume completes
    needs_permissions: bool = False  # the case relies on file modes, which root writes through
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())


# -- setups ------------------------------------------------------------------------------------

ROLES_ARGV = ("map", "records.jsonl", "--roles", "roles.toml", "--model", "rehearsal", "--out", "o.jsonl")
SUMMARY = '[roles.summary]\nprompt = "Summarise {topic}"\n'


def roles_file(text: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        records(env)
        env.write("roles.toml", text)

    return setup


def records(env: Env) -> None:
    env.write("records.jsonl", RECORDS)


def with_config(text: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        records(env)
        env.write("shoal.toml", text)

    return setup


REDIS_CONFIG = '[budget]\nredis_url = "%s"\n'


def redis_with_password(env: Env) -> None:
    """A redis-server of its own on a free loopback port that wants a password shoal does not give."""
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = env.stack.enter_context(tempfile.TemporaryDirectory())
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "hunter2"]
    server = subprocess.Popen([*argv, "--save", "", "--dir", data], stdout=subprocess.DEVNULL)
    env.stack.callback(server.wait, 30)
    env.stack.callback(server.terminate)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    records(env)
    env.write("shoal.toml", REDIS_CONFIG % f"redis://127.0.0.1:{port}/0")


def holding_the_lock(env: Env) -> None:
    from shoal.journal import WorkspaceLock

    records(env)
    lock = WorkspaceLock(env.root / ".shoal" / "lock")
    lock.acquire("shoal map other.jsonl --out x.jsonl")
    env.stack.callback(lock.release)


def plan_example(old: str = "", new: str = "") -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        copy_example(env.root)
        if old:
            plan = (env.root / "PLAN.md").read_text()
            assert old in plan
            (env.root / "PLAN.md").write_text(plan.replace(old, new, 1))

    return setup


def registration(text: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        copy_example(env.root)
        (env.root / "docs" / "config.json").write_text(text)

    return setup


def script(text: str) -> Callable[[Env], None]:
    return lambda env: env.write("wf.py", text) and None


def journal_bytes(make: Callable[[bytes], bytes]) -> Callable[[Env], None]:
    """A journal from a real job, then damaged by `make`."""

    def setup(env: Env) -> None:
        records(env)
        state = env.root / ".shoal"
        state.mkdir()
        with sqlite3.connect(state / "journal.db") as conn:
            conn.execute("CREATE TABLE calls (id INTEGER PRIMARY KEY, response TEXT)")
            conn.executemany("INSERT INTO calls (response) VALUES (?)", [("x" * 3000,)] * 50)
        (state / "journal.db").write_bytes(make((state / "journal.db").read_bytes()))

    return setup


def dir_without_write_permission(env: Env) -> None:
    records(env)
    (env.root / "locked").mkdir(mode=0o555)
    env.stack.callback(os.chmod, env.root / "locked", 0o755)


def link_to_records(kind: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        records(env)
        (os.symlink if kind == "symlink" else os.link)(env.root / "records.jsonl", env.root / "o.jsonl")

    return setup


def full_disk_after_some_lines(env: Env) -> None:
    """The output file's fsync fails with ENOSPC after a few lines, leaving a torn line behind."""
    write_records(env.root / "in.jsonl", 30)
    synced = {"n": 0}
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def is_output(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").endswith("/out.jsonl")
        except OSError:
            return False

    def fsync(fd: int) -> None:
        if is_output(fd):
            synced["n"] += 1
            # Once: the writer's own close() fsyncs again, and a second failure there would leak
            # its handle in this test process (a real process exits; see the report).
            if synced["n"] == 3:
                os.write(fd, b'{"id": "rec-0')  # a torn write, as a full disk leaves it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        fsync(fd) if is_output(fd) else real_fdatasync(fd)

    env.monkeypatch.setattr(os, "fsync", fsync)
    env.monkeypatch.setattr(os, "fdatasync", fdatasync)


def resume_completes_every_record_once(env: Env) -> None:
    env.monkeypatch.undo()  # space freed
    env.monkeypatch.chdir(env.root)
    before = (env.root / "out.jsonl").read_bytes()
    assert before and not before.endswith(b"\n")  # the torn tail is there
    code, err = invoke(env.monkeypatch, FULL_DISK_ARGV)
    assert code == 0, err
    whole = before[: before.rfind(b"\n") + 1]
    assert whole and (env.root / "out.jsonl").read_bytes().startswith(whole)  # earlier lines kept
    lines = (env.root / "out.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]  # every line whole
    assert sorted(ids) == [f"rec-{i:03d}" for i in range(30)]


FULL_DISK_ARGV = (
    *("map", "in.jsonl", "--model", "rehearsal", "--prompt", "Explain {topic}."),
    *("--out", "out.jsonl", "--concurrency", "2"),  # small groups: many fsyncs, the third one fails
)

# Root writes through file modes. As root (CI), such a case runs as a real process that has lost the
# capabilities to override them, so it checks what a normal user sees instead of skipping.
AS_ROOT = os.geteuid() == 0
DROP_OVERRIDES = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
)


# -- the table ---------------------------------------------------------------------------------

CASES: dict[str, Case] = {
    # inputs and the command line
    "input file missing": Case(
        ("map", "nope.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"),
        ("nope.jsonl", "not found"),
        real_process=True,  # one row through `python -m shoal` itself
    ),
    "malformed JSONL line": Case(
        ("map", "bad.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"),
        ("bad.jsonl:2", "not valid JSON"),
        setup=lambda env: env.write("bad.jsonl", '{"id": 1, "topic": "x"}\n{"id": 2, "topic": \n') and None,
    ),
    "unknown config key": Case(
        MAP_TO_O, ("shoal.toml", "job.concurency"), setup=with_config("[job]\nconcurency = 4\n")
    ),
    "bad config value": Case(
        MAP_TO_O, ("shoal.toml", "rpm"), setup=with_config('[limits."openai:gpt-4o-mini"]\nrpm = -5\n')
    ),
    "lint_timeout_s not positive": Case(
        MAP_TO_O, ("shoal.toml", "plan.lint_timeout_s"), setup=with_config("[plan]\nlint_timeout_s = 0\n")
    ),
    "unknown model alias": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "o.jsonl", "--model", "quick"),
        ("unknown model 'quick'",),
        setup=with_config('[models]\nfast = "openai:gpt-4o-mini"\n'),
    ),
    "OpenAI key missing": Case(
        (*MAP_TO_O, "--model", "openai:gpt-4o-mini"), ("OPENAI_API_KEY",), setup=records
    ),
    "Anthropic key missing": Case(
        (*MAP_TO_O, "--model", "anthropic:claude-haiku-4-5"), ("ANTHROPIC_API_KEY",), setup=records
    ),
    "template field missing from a record": Case(
        (*MAP, "--prompt", "x {topic} for {audience}", "--out", "o.jsonl"),
        ("records.jsonl:1", "'audience'"),
        setup=records,
    ),
    "schema not a JSON Schema": Case(
        (*MAP_TO_O, "--schema", "schema.json"),
        ("schema.json", "JSON Schema"),
        setup=lambda env: (records(env), env.write("schema.json", '{"type": "objekt"}')) and None,
    ),
    "workspace busy": Case(
        MAP_TO_O, ("workspace busy", "shoal map other.jsonl --out x.jsonl"), setup=holding_the_lock
    ),
    "missing option": Case(
        ("map", "records.jsonl", "--prompt", "x {topic}", "--out", "o.jsonl"), ("Missing option '--model'",)
    ),
    "missing --out": Case(("map", "records.jsonl", "--prompt", "x {topic}"), ("Missing option '--out'",)),
    "option not a number": Case((*MAP_TO_O, "--max-tokens", "lots"), ("--max-tokens",), setup=records),
    "unknown command": Case(("fly",), ("No such command 'fly'",)),
    "--concurrency too high": Case(
        (*MAP_TO_O, "--concurrency", "100000000"), ("--concurrency 100000000", "10000"), setup=records
    ),
    "--max-cost zero": Case(
        (*MAP_TO_O, "--max-cost", "0"), ("--max-cost 0", "greater than 0"), setup=records
    ),
    "fake-server bad fault": Case(
        ("fake-server", "--faults", "500,teapot", "--fault-rate", "0.1"), ("Invalid value", "--faults")
    ),
    "fake-server fault rate above 1": Case(("fake-server", "--fault-rate", "1.5"), ("Invalid value",)),
    "fake-server zero rpm": Case(("fake-server", "--rpm", "0"), ("Invalid value", "--rpm")),
    "fake-server zero window": Case(("fake-server", "--window", "0"), ("Invalid value", "--window")),
    # templates: refused before anything is sent
    "template unclosed brace": Case(
        (*MAP, "--prompt", "{id: x} {topic}", "--out", "o.jsonl"), ("--prompt", "'{id: x}'"), setup=records
    ),
    "template stray closing brace": Case(
        (*MAP, "--prompt", "{id}} {topic}", "--out", "o.jsonl"), ("--prompt", "unmatched '}'"), setup=records
    ),
    "template index": Case(
        (*MAP, "--prompt", "{text[0]} {topic}", "--out", "o.jsonl"), ("'{text[0]}'",), setup=records
    ),
    "template positional field": Case(
        (*MAP, "--prompt", "{0} {topic}", "--out", "o.jsonl"), ("'{0}'",), setup=records
    ),
    "template never closed": Case(
        (*MAP, "--prompt", "about {topic", "--out", "o.jsonl"), ("unclosed '{'",), setup=records
    ),
    "template file with a format spec": Case(
        (*MAP, "--prompt-file", "p.txt", "--out", "o.jsonl"),
        ("--prompt-file p.txt", "'{topic:>10}'"),
        setup=lambda env: (records(env), env.write("p.txt", "Explain {topic:>10}\n")) and None,
    ),
    # OUT
    "--out a directory": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "results"),
        ("--out results", "is a directory"),
        setup=lambda env: (records(env), (env.root / "results").mkdir()) and None,
    ),
    "--out in a folder without write permission": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "locked/o.jsonl"),
        ("locked/o.jsonl", "ermission denied"),
        setup=dir_without_write_permission,
        needs_permissions=True,
    ),
    "--out a read-only file": Case(
        MAP_TO_O,
        ("--out o.jsonl", "ermission denied"),
        setup=lambda env: (records(env), env.write("o.jsonl", "earlier\n").chmod(0o444)) and None,
        needs_permissions=True,
    ),
    "--out in /sys": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "/sys/o.jsonl"), ("--out /sys/o.jsonl",), setup=records
    ),
    "--out /dev/full": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "/dev/full"), ("--out /dev/full",), setup=records
    ),
    "--out a pipe": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "fifo"),
        ("--out fifo", "not a regular file"),
        setup=lambda env: (records(env), os.mkfifo(env.root / "fifo")) and None,
    ),
    "--out is INPUT": Case(
        (*MAP, "--prompt", "x {topic}", "--out", "records.jsonl"), ("same file as INPUT",), setup=records
    ),
    "--out a symlink to INPUT": Case(MAP_TO_O, ("same file as INPUT",), setup=link_to_records("symlink")),
    "--out a hard link to INPUT": Case(MAP_TO_O, ("same file as INPUT",), setup=link_to_records("hardlink")),
    "--out inside .shoal": Case(
        (*MAP, "--prompt", "x {topic}", "--out", ".shoal/journal.db"),
        ("where shoal keeps its journal",),
        setup=records,
    ),
    "--max-tokens above the model's limit": Case(
        (*MAP_TO_O, "--model", "openai:gpt-4o-mini", "--max-tokens", "20000"),
        ("--max-tokens 20,000", "openai:gpt-4o-mini", "16,384"),
        setup=records,
    ),
    "a model shoal has no limit for passes the --max-tokens check": Case(
        (*MAP_TO_O, "--model", "openai:my-local-llm", "--max-tokens", "200000"),
        ("OPENAI_API_KEY",),  # the next check, not the limit, is what refuses it
        setup=records,
    ),
    "[job] max_tokens above the model's limit": Case(
        (*MAP_TO_O, "--model", "anthropic:claude-3-5-haiku-20241022"),
        ("[job] max_tokens 9,000", "8,192"),
        setup=with_config("[job]\nmax_tokens = 9000\n"),
    ),
    # the workspace
    "journal not SQLite": Case(
        MAP_TO_O,
        ("journal.db", "not an SQLite database", "mv "),
        setup=journal_bytes(lambda data: b"this is not a database\n" * 10),
    ),
    "journal truncated": Case(
        MAP_TO_O, ("journal.db", "truncated", "mv "), setup=journal_bytes(lambda data: data[: len(data) // 3])
    ),
    ".shoal a file": Case(
        MAP_TO_O,
        (".shoal is a file", "mv "),
        setup=lambda env: (records(env), env.write(".shoal", "notes\n")) and None,
    ),
    "disk full": Case(
        FULL_DISK_ARGV,
        ("disk full", "resume with: shoal map in.jsonl"),
        code=3,
        setup=full_disk_after_some_lines,
        then=resume_completes_every_record_once,
    ),
    # plans
    "plan table lacks a column": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:29:", "lacks column(s): status"),
        setup=plan_example(
            "| # | Title | Filename | Model | Status |\n|---|-------|----------|-------|--------|\n| 1 |",
            "| # | Title | Filename | Model |\n|---|-------|----------|-------|\n| 1 |",
        ),
    ),
    "plan duplicate filename": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:33:", "duplicate filename 'rbac.md'"),
        setup=plan_example("| oauth-oidc.md |", "| rbac.md |"),
    ),
    "plan filename escapes": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:34:", "escapes the output directory"),
        setup=plan_example("| session-management.md |", "| ../../outside.md |"),
    ),
    "plan format reference missing": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:7:", "format reference 'docs/completed/missing.md' not found"),
        setup=plan_example("docs/completed/authentication-overview.md", "docs/completed/missing.md"),
    ),
    "plan output directory escapes the project": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:11:", "output directory '../outside/guides/'", "outside the project"),
        setup=plan_example("docs/guides/", "../outside/guides/"),
    ),
    "plan registration file not JSON": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:25:", "config.json", "not valid JSON"),
        setup=registration('{"pages": [\n'),
    ),
    "plan registration file has no list": Case(
        ("run", "PLAN.md", "--yes"),
        ("config.json", "no list of entries"),
        setup=registration('"just a string"'),
    ),
    "plan lint program missing": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:24:", "lint-my-docs", "not found"),
        setup=plan_example("`python lint_content.py <filepath>`", "`lint-my-docs --strict <filepath>`"),
    ),
    "plan lint script missing": Case(
        ("run", "PLAN.md", "--yes"),
        ("PLAN.md:24:", "script 'lint_contents.py' not found"),
        setup=plan_example("lint_content.py <filepath>", "lint_contents.py <filepath>"),
    ),
    "plan mode is not a choice": Case(
        ("run", "PLAN.md", "--yes", "--mode", "fast"),
        ("--mode", "'fast' is not one of", "phased", "pipeline"),
        setup=plan_example("docs/guides/", "docs/guides/"),
    ),
    "plan given a workflow's --arg": Case(
        ("run", "PLAN.md", "--yes", "--arg", "topic=tides"),
        ("--arg is for workflow scripts (.py)",),
        setup=plan_example("docs/guides/", "docs/guides/"),
    ),
    # workflows
    "workflow given a plan's --phase": Case(
        ("run", "wf.py", "--yes", "--phase", "1"),
        ("--phase: for batch plans (.md)",),
        setup=script("from shoal import workflow\n\n@workflow\nasync def main():\n    return 'hi'\n"),
    ),
    "workflow given a plan's --mode": Case(
        ("run", "wf.py", "--yes", "--mode", "pipeline"),
        ("--mode: for batch plans (.md)",),
        setup=script("from shoal import workflow\n\n@workflow\nasync def main():\n    return 'hi'\n"),
    ),
    "workflow syntax error": Case(
        ("run", "broken.py", "--yes"),
        ("broken.py:4: syntax error",),
        setup=lambda env: (
            env.write("broken.py", "from shoal import workflow\n\n@workflow\nasync def main(:\n    pass\n")
            and None
        ),
    ),
    "workflow without @workflow": Case(
        ("run", "wf.py", "--yes"),
        ("no @workflow function",),
        setup=script("async def main():\n    return 'hi'\n"),
    ),
    "workflow sys.exit at import": Case(
        ("run", "wf.py", "--yes"),
        ("wf.py:3:", "sys.exit(3)"),
        setup=script(
            "import sys\nfrom shoal import workflow\nsys.exit(3)\n\n"
            "@workflow\nasync def main() -> None:\n    pass\n"
        ),
    ),
    "workflow [job] max_tokens above its model's limit": Case(
        ("run", "wf.py", "--yes"),
        ("[job] max_tokens 9,000", "anthropic:claude-3-5-haiku-20241022", "8,192"),
        setup=lambda env: (
            (
                env.write("shoal.toml", "[job]\nmax_tokens = 9000\n"),
                script(
                    "from shoal import agent, workflow\n\n"
                    "@workflow(name='big', model='anthropic:claude-3-5-haiku-20241022')\n"
                    "async def main() -> str:\n    return await agent('hello')\n"
                )(env),
            )
            and None
        ),
    ),
    "workflow unknown --arg": Case(
        ("run", "wf.py", "--yes", "--arg", "files=a.py"),
        ("no such argument",),
        setup=script(
            "from shoal import agent, workflow\n\n@workflow(name='args')\n"
            "async def main(rounds: int = 1) -> str:\n    return await agent('hello')\n"
        ),
    ),
    "workflow --arg of the wrong type": Case(
        ("run", "wf.py", "--yes", "--arg", "rounds=many"),
        ("rounds=many",),
        setup=script(
            "from shoal import agent, workflow\n\n@workflow(name='args')\n"
            "async def main(rounds: int = 1) -> str:\n    return await agent('hello')\n"
        ),
    ),
    # observing
    "report without a journal": Case(("report",), ("no journal here",)),
    "status without a journal": Case(("status", "--json"), ("no journal yet",)),
    "journal listing from a journal that is not SQLite": Case(
        ("journal",),
        ("not an SQLite database", "mv "),
        setup=journal_bytes(lambda data: b"\x00" * len(data)),
    ),
    "report from a truncated journal": Case(
        ("report",), ("truncated", "mv "), setup=journal_bytes(lambda data: data[: len(data) // 2])
    ),
    "status with .shoal a file": Case(
        ("status",), (".shoal is a file",), setup=lambda env: env.write(".shoal", "notes\n") and None
    ),
    # map --roles: the roles file and the records, checked before anything is sent
    "roles: unknown dependency": Case(
        ROLES_ARGV,
        ("roles.toml", "role 'refined'", "'sumary', which is not a role"),
        setup=roles_file(SUMMARY + '[roles.refined]\nprompt = "x {topic}"\nafter = ["sumary"]\n'),
    ),
    "roles: a cycle": Case(
        ROLES_ARGV,
        ("roles.toml", "'a' -> 'b' -> 'a'", "cycle"),
        setup=roles_file(
            '[roles.a]\nprompt = "x {topic} {b}"\nafter = ["b"]\n[roles.b]\nprompt = "y {a}"\nafter = ["a"]\n'
        ),
    ),
    "roles: a template naming a role not in after": Case(
        ROLES_ARGV,
        ("roles.toml", "role 'refined'", "{summary}", "not in its after list"),
        setup=roles_file(SUMMARY + '[roles.refined]\nprompt = "Expand {summary} on {topic}"\n'),
    ),
    "roles: a record missing a field": Case(
        ROLES_ARGV,
        ("records.jsonl:1", "record 'a'", "'audience'", "role 'pitch'"),
        setup=roles_file(SUMMARY + '[roles.pitch]\nprompt = "Pitch {topic} to {audience}"\n'),
    ),
    "roles: unknown key": Case(
        ROLES_ARGV,
        ("roles.toml", "unknown key 'roles.summary.promt'"),
        setup=roles_file('[roles.summary]\npromt = "x {topic}"\n'),
    ),
    "roles: a field of a text role": Case(
        ROLES_ARGV,
        ("roles.toml", "{summary.title}", "no schema"),
        setup=roles_file(SUMMARY + '[roles.refined]\nprompt = "x {summary.title}"\nafter = ["summary"]\n'),
    ),
    "roles: a field the schema does not have": Case(
        ROLES_ARGV,
        ("roles.toml", "{tags.labels}", "no property 'labels'"),
        setup=lambda env: (
            (
                roles_file(
                    '[roles.tags]\nprompt = "Tags for {topic}"\nschema = "tags.json"\n'
                    '[roles.pitch]\nprompt = "Pitch {topic} with {tags.labels}"\nafter = ["tags"]\n'
                )(env),
                env.write("tags.json", '{"type": "object", "properties": {"tags": {"type": "array"}}}'),
            )
            and None
        ),
    ),
    "roles: a role with no model": Case(
        ("map", "records.jsonl", "--roles", "roles.toml", "--out", "o.jsonl"),
        ("roles.toml", "role 'summary' names no model"),
        setup=roles_file(SUMMARY),
    ),
    "roles: a bad placeholder": Case(
        ROLES_ARGV,
        ("roles.toml", "role 'summary' prompt", "'{topic:>4}'"),
        setup=roles_file('[roles.summary]\nprompt = "x {topic:>4}"\n'),
    ),
    "roles: schema file missing": Case(
        ROLES_ARGV,
        ("tags.json", "schema file not found"),
        setup=roles_file(SUMMARY + '[roles.tags]\nprompt = "Tags for {topic}"\nschema = "tags.json"\n'),
    ),
    "roles: file missing": Case(ROLES_ARGV, ("roles.toml", "not found"), setup=records),
    "roles with --prompt": Case(
        (*ROLES_ARGV, "--prompt", "x {topic}"), ("--roles", "--prompt"), setup=records
    ),
    # [budget] redis_url: a shared rate budget whose Redis cannot be used is refused before anything runs
    "redis URL malformed": Case(
        MAP_TO_O,
        ("redis_url", "redis//nope", "not a Redis URL"),
        setup=with_config(REDIS_CONFIG % "redis//nope"),
    ),
    "redis wrong port": Case(
        MAP_TO_O,
        ("redis_url", "redis://127.0.0.1:1/0", "cannot use Redis"),
        setup=with_config(REDIS_CONFIG % "redis://127.0.0.1:1/0"),
    ),
    "redis needs a password": Case(MAP_TO_O, ("redis_url", "needs a password"), setup=redis_with_password),
}


# -- running a row -----------------------------------------------------------------------------


def invoke(monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]) -> tuple[int, str]:
    """`shoal ARGV` through the real entry point, in this process; (exit code, stderr)."""
    from shoal.cli import main

    sink = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "argv", ["shoal", *argv])
        patch.setattr(sys, "stderr", sink)
        with pytest.raises(SystemExit) as exited:
            main()
    text = sink.getvalue()
    return int(exited.value.code or 0), text


def snapshot(root: Path, *, skip: Path | None = None) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents) or "__pycache__" in path.parts:
            continue
        if path.is_symlink() or not path.is_file():
            found[str(path.relative_to(root))] = None
        else:
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_")):
            monkeypatch.delenv(name, raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("not shoal's\n")
    monkeypatch.chdir(root)
    with ExitStack() as stack:
        yield Env(root, monkeypatch, stack)


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=case.marks, id=name) for name, case in CASES.items()]
)
def test_bad_input_is_one_line_and_changes_nothing(env: Env, name: str) -> None:
    case = CASES[name]
    if case.setup is not None:
        case.setup(env)
    workspace_before = snapshot(env.root)
    outside_before = snapshot(env.root.parent, skip=env.root)

    if case.needs_permissions and AS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and util-linux's setpriv is missing: root writes through file modes")
        argv = [*DROP_OVERRIDES, *shoal_argv(*case.argv)]
        result = subprocess.run(argv, cwd=env.root, env=clean_env(), capture_output=True, text=True)
        code, stderr = result.returncode, result.stderr
    elif case.real_process:
        result = run_shoal(env.root, *case.argv, env=clean_env())
        code, stderr = result.returncode, result.stderr
    else:
        code, stderr = invoke(env.monkeypatch, case.argv)

    assert code == case.code, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if case.code == 2:
        assert len(lines) == 1, stderr  # a refusal is one line and nothing else
    else:
        # a run that started may have printed its launch lines (the estimate); it ends on one stop line
        assert len([line for line in lines if line.startswith("shoal:")]) == 1, stderr
    prefix = "shoal: error: " if case.code == 2 else "shoal: stopped: "
    assert lines[-1].startswith(prefix), lines[-1]
    for needle in case.needle:
        assert needle in lines[-1], lines[-1]

    assert snapshot(env.root.parent, skip=env.root) == outside_before  # nothing written outside
    workspace_after = snapshot(env.root)
    if case.code == 2:
        assert workspace_after == workspace_before  # refused before anything was written
    for path, content in workspace_before.items():  # no earlier output lost
        assert path in workspace_after and (content is None or workspace_after[path].startswith(content))
    if case.then is not None:
        case.then(env)


def test_lint_timeout_is_set_in_shoal_toml(env: Env) -> None:
    """[plan] lint_timeout_s reaches the gate: a linter slower than it counts as a lint failure."""
    copy_example(env.root)
    (env.root / "slow_lint.py").write_text("import time\ntime.sleep(60)\n")
    plan = (env.root / "PLAN.md").read_text()
    (env.root / "PLAN.md").write_text(plan.replace("lint_content.py <filepath>", "slow_lint.py <filepath>"))
    config = (env.root / "shoal.toml").read_text()
    (env.root / "shoal.toml").write_text(config + "\n[plan]\nlint_timeout_s = 0.2\n")
    result = invoke_shoal(env.root, "run", "PLAN.md", "--yes", "--phase", "1")
    assert "Traceback" not in result.stderr
    # The summary names the failure without task-specific numbers; the journal keeps the real one.
    assert "lint command timed out" in result.stderr, result.stderr
    with sqlite3.connect(env.root / ".shoal" / "journal.db") as db:
        journaled = " ".join(str(row[0]) for row in db.execute("SELECT detail FROM events"))
    assert "timed out after 0.2s" in journaled
    assert not (env.root / "docs" / "guides" / "rbac.md").exists()  # nothing failing lint ships


@pytest.mark.parametrize(
    "template", ["Explain {topic}.", "{{literal}} {topic}", 'JSON like {{"a": 1}} for {a.b-c_d}', "no fields"]
)
def test_valid_templates_pass(template: str) -> None:
    from shoal.preflight import check_template

    check_template(template, source="--prompt")


def test_a_full_disk_is_recognised_however_it_surfaces() -> None:
    from shoal.cli._diskfull import disk_full

    journal_full = sqlite3.OperationalError("database or disk is full")
    assert disk_full(ExceptionGroup("tasks", [ValueError("x"), journal_full])) is not None
    wrapped = RuntimeError("while closing")
    wrapped.__context__ = OSError(errno.EDQUOT, "Disk quota exceeded", "out.jsonl")
    assert "out.jsonl" in (disk_full(wrapped) or "")
    assert disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full(KeyboardInterrupt()) is None
