"""The checks a drafted script meets before it is executed at all, and taking it out of its fences."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.draft import UnsafeScript, assess, check_script, extract_draft

HEADER = "from shoal import agent, workflow\n\n"
ENTRY = "@workflow(name='w')\nasync def main() -> str:\n    return await agent('hi')\n"


def test_a_script_of_primitives_pydantic_and_harmless_stdlib_passes() -> None:
    source = (
        "from __future__ import annotations\nimport json\nimport re\nfrom collections import Counter\n"
        "from pydantic import BaseModel, Field\nfrom typing import Literal\n" + HEADER
        + "class Item(BaseModel):\n    kind: Literal['a', 'b'] = 'a'\n    n: int = Field(default=0)\n\n"
        + "def tidy(text: str) -> str:\n    return re.sub(r'\\s+', ' ', json.dumps(Counter(text)))\n\n"
        + ENTRY
    )  # fmt: skip
    check_script(source)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("import os", "`import os` is not allowed (runs commands and touches files)"),
        ("from subprocess import run", "`from subprocess import ...` is not allowed (runs commands)"),
        ("import importlib", "`import importlib` is not allowed (imports anything)"),
        ("import ctypes", "`import ctypes` is not allowed (calls native code)"),
        ("import socket", "`import socket` is not allowed (opens network connections)"),
        ("from pathlib import Path", "Path is not on the allow-list"),
        ("x = eval('1')", "`eval` is not allowed"),
        ("exec('x = 1')", "`exec` is not allowed"),
        ("m = __import__('os')", "`__import__` is not allowed"),
        ("y = getattr(agent, 'x')", "`getattr` is not allowed"),
        ("f = open('/etc/passwd')", "`open` is not allowed"),
        ("g = agent.__globals__", "`.__globals__` is not allowed"),
        ("import json\nc = json.codecs", "`json.codecs` is not on the allow-list"),
        ("import json\nm = json", "may only be used as `json.NAME`"),
        ("def f(x: \"__import__('os')\") -> None: ...", "calls something"),
        ("os.system('ls')", "`os.system` is not allowed: the os module runs commands"),
        ("import shoal", "`import shoal` is not allowed"),
    ],
)
def test_what_reaches_past_the_allow_list_is_refused_with_the_reason(line: str, reason: str) -> None:
    with pytest.raises(UnsafeScript) as refused:
        check_script(HEADER + line + "\n\n" + ENTRY)
    assert reason in str(refused.value)
    assert "line " in str(refused.value)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (HEADER + "async def main() -> str:\n    return 'x'\n", "no @workflow function"),
        (HEADER + ENTRY + ENTRY.replace("main", "other"), "2 @workflow functions (main, other)"),
        (HEADER + "@workflow\ndef main() -> str:\n    return 'x'\n", "must be `async def`"),
        (HEADER + "async def main(:\n", "syntax error on line 3"),
    ],
)
def test_the_shape_of_a_workflow_file_is_checked(source: str, reason: str) -> None:
    with pytest.raises(UnsafeScript, match=None) as refused:
        check_script(source)
    assert reason in str(refused.value)


def test_the_script_is_taken_from_its_python_block() -> None:
    answer = (
        "Sure! First install it:\n```sh\npip install shoal\n```\nThe script:\n```python\n"
        + HEADER + ENTRY + "```\nRun it with shoal run."
    )  # fmt: skip
    assert extract_draft(answer, "workflow") == HEADER + ENTRY
    assert extract_draft(HEADER + ENTRY, "workflow") == HEADER + ENTRY  # no fence: the answer itself


def test_a_plan_keeps_its_own_fences() -> None:
    plan = "# Plan\n\n## Content Rules\n\n- Show a block:\n\n```\nexample\n```\n\n## Phase 1: A\n"
    assert extract_draft(f"Here:\n```markdown\n{plan}```\nDone.", "plan") == plan
    assert extract_draft(plan, "plan") == plan


def test_the_assessment_finds_oracles_languages_and_what_the_task_names(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "src" / "b.py").write_text("y = 2\n")
    (tmp_path / "web.ts").write_text("let z = 3\n")
    (tmp_path / "Makefile").write_text("build:\n\ttrue\ntest:\n\tpytest\n")
    (tmp_path / "package.json").write_text(
        '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    )
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("skip me\n")
    found = assess("Port src/ to Rust", tmp_path)
    assert [o.command for o in found.oracles] == ["make test"]  # npm's placeholder test is no oracle
    assert {f.path for f in found.files} == {"src/a.py", "src/b.py", "web.ts", "Makefile", "package.json"}
    assert found.named == ("src/",)
    assert [f.path for f in found.in_scope] == ["src/a.py", "src/b.py"]
    assert dict(found.languages)["Python"] == 2
    assert assess("anything", tmp_path / "src").oracles == ()
