"""The scripted replies file: `[rehearsal] replies` and `shoal fake-server --replies` read it alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.errors import ConfigError
from shoal.fake import FakeReply, FakeToolCall
from shoal.providers import load_replies

BAD = {
    "a number as match": [{"match": 5, "reply": "x"}],
    "an empty match": [{"match": "", "reply": "x"}],
    "no reply": [{"match": "fox"}],
    "times as a string": [{"match": "fox", "reply": "x", "times": "2"}],
    "times as a boolean": [{"match": "fox", "reply": "x", "times": True}],
    "negative times": [{"match": "fox", "reply": "x", "times": -1}],
    "a misspelt key": [{"match": "fox", "reply": "x", "time": 2}],
    "an object, not a list": {"match": "fox", "reply": "x"},
    "a list of strings": ["fox"],
    "both a reply and a call": [{"match": "fox", "reply": "x", "call": {"tool": "t"}}],
    "a call without a tool": [{"match": "fox", "call": {"args": {}}}],
    "a call to an empty tool name": [{"match": "fox", "call": {"tool": ""}}],
    "a call with a list of args": [{"match": "fox", "call": {"tool": "t", "args": [1]}}],
    "a call with a misspelt key": [{"match": "fox", "call": {"tool": "t", "arguments": {}}}],
    "a call as a string": [{"match": "fox", "call": "t"}],
}


def fake_server_reads(path: Path) -> tuple[int, str]:
    """Exit code and output of `shoal fake-server --replies path`, stopped before it serves."""
    result = CliRunner().invoke(app, ["fake-server", "--replies", str(path), "--port", "-1"])
    return result.exit_code, result.output


@pytest.mark.parametrize("content", BAD.values(), ids=BAD.keys())
def test_both_readers_refuse_the_same_bad_files(tmp_path: Path, content: object) -> None:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as refused:
        load_replies(path)
    message = str(refused.value)
    assert str(path) in message and len(message.splitlines()) == 1
    code, output = fake_server_reads(path)
    assert code == 2 and "--replies" in output and "port number" not in output


def test_a_file_that_is_not_json_is_named_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    path.write_text('[{"match": "fox",')
    with pytest.raises(ConfigError, match="not JSON"):
        load_replies(path)
    assert fake_server_reads(path)[0] == 2
    with pytest.raises(ConfigError, match="No such file"):
        load_replies(tmp_path / "missing.json")


def test_both_readers_accept_the_same_good_file(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    entries = [{"match": "fox", "reply": "a fox", "times": 2}, {"match": "x", "reply": "y"}]
    path.write_text(json.dumps(entries))
    assert load_replies(path) == (FakeReply("fox", "a fox", 2), FakeReply("x", "y"))
    # Accepted, it gets as far as the port check, which `--port -1` fails.
    code, output = fake_server_reads(path)
    assert code == 2 and "port number" in output


def test_a_scripted_tool_call_is_read_for_rehearsal_and_refused_by_the_fake_server(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    entries = [{"match": "fox", "call": {"tool": "burn", "args": {"rounds": 5}}, "times": 1}]
    path.write_text(json.dumps(entries))
    assert load_replies(path) == (FakeReply("fox", times=1, call=FakeToolCall("burn", {"rounds": 5})),)
    code, output = fake_server_reads(path)  # its wire formats carry text answers only
    assert code == 2 and '"call" is for the rehearsal provider' in output


def test_a_bad_call_entry_is_named_by_its_field(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps([{"match": "a", "reply": "b"}, {"match": "fox", "call": {"tool": 5}}]))
    with pytest.raises(ConfigError, match='entry 2: "call.tool": Input should be a valid string'):
        load_replies(path)
