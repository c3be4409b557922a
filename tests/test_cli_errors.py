"""User mistakes end in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import run_shoal

RECORDS = '{"id": "a", "topic": "tides"}\n{"id": "b", "topic": "reefs"}\n'


def assert_one_line_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def records(workspace: Path) -> Path:
    path = workspace / "records.jsonl"
    path.write_text(RECORDS)
    return path


def test_missing_input_file(workspace: Path) -> None:
    result = run_shoal(
        workspace, "map", "nope.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"
    )
    assert_one_line_usage_error(result, "nope.jsonl", "not found")


def test_malformed_jsonl_line_names_the_line(workspace: Path) -> None:
    (workspace / "bad.jsonl").write_text('{"id": 1, "topic": "x"}\n{"id": 2, "topic": \n')
    result = run_shoal(
        workspace, "map", "bad.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"
    )
    assert_one_line_usage_error(result, "bad.jsonl:2", "not valid JSON")


def test_unknown_config_key_names_key_and_file(workspace: Path, records: Path) -> None:
    (workspace / "shoal.toml").write_text("[job]\nconcurency = 4\n")
    result = run_shoal(
        workspace, "map", "records.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"
    )
    assert_one_line_usage_error(result, "shoal.toml", "job.concurency")


def test_bad_config_value(workspace: Path, records: Path) -> None:
    (workspace / "shoal.toml").write_text('[limits."openai:gpt-4o-mini"]\nrpm = -5\n')
    result = run_shoal(
        workspace, "map", "records.jsonl", "--prompt", "x {topic}", "--model", "rehearsal", "--out", "o.jsonl"
    )
    assert_one_line_usage_error(result, "shoal.toml", "rpm")


def test_unknown_model_alias(workspace: Path, records: Path) -> None:
    (workspace / "shoal.toml").write_text('[models]\nfast = "openai:gpt-4o-mini"\n')
    result = run_shoal(
        workspace, "map", "records.jsonl", "--prompt", "x {topic}", "--model", "quick", "--out", "o.jsonl"
    )
    assert_one_line_usage_error(result, "unknown model 'quick'")


def test_missing_api_key(workspace: Path, records: Path) -> None:
    result = run_shoal(
        workspace,
        "map",
        "records.jsonl",
        "--prompt",
        "x {topic}",
        "--model",
        "openai:gpt-4o-mini",
        "--out",
        "o.jsonl",
    )
    assert_one_line_usage_error(result, "OPENAI_API_KEY")
    result = run_shoal(
        workspace,
        "map",
        "records.jsonl",
        "--prompt",
        "x {topic}",
        "--model",
        "anthropic:claude-haiku-4-5",
        "--out",
        "o.jsonl",
    )
    assert_one_line_usage_error(result, "ANTHROPIC_API_KEY")


def test_template_field_missing_from_a_record(workspace: Path, records: Path) -> None:
    result = run_shoal(
        workspace,
        "map",
        "records.jsonl",
        "--prompt",
        "x {topic} for {audience}",
        "--model",
        "rehearsal",
        "--out",
        "o.jsonl",
    )
    assert_one_line_usage_error(result, "records.jsonl:1", "'audience'")
    assert not (workspace / "o.jsonl").exists()


def test_invalid_schema_file(workspace: Path, records: Path) -> None:
    (workspace / "schema.json").write_text('{"type": "objekt"}')
    result = run_shoal(
        workspace,
        "map",
        "records.jsonl",
        "--prompt",
        "x {topic}",
        "--model",
        "rehearsal",
        "--out",
        "o.jsonl",
        "--schema",
        "schema.json",
    )
    assert_one_line_usage_error(result, "schema.json", "JSON Schema")


def test_busy_workspace_names_the_running_job(workspace: Path, records: Path) -> None:
    from shoal.journal import WorkspaceLock

    lock = WorkspaceLock(workspace / ".shoal" / "lock")
    lock.acquire("shoal map other.jsonl --out x.jsonl")
    try:
        result = run_shoal(
            workspace,
            "map",
            "records.jsonl",
            "--prompt",
            "x {topic}",
            "--model",
            "rehearsal",
            "--out",
            "o.jsonl",
        )
    finally:
        lock.release()
    assert_one_line_usage_error(result, "workspace busy", "shoal map other.jsonl --out x.jsonl")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["map", "records.jsonl", "--prompt", "x {topic}"], "Missing option '--model'"),
        (
            [
                "map",
                "records.jsonl",
                "--model",
                "rehearsal",
                "--out",
                "o",
                "--prompt",
                "x",
                "--max-tokens",
                "lots",
            ],
            "--max-tokens",
        ),
        (["fly"], "No such command 'fly'"),
    ],
)
def test_command_line_mistakes_are_one_line_too(
    workspace: Path, records: Path, args: list[str], needle: str
) -> None:
    assert_one_line_usage_error(run_shoal(workspace, *args), needle)
