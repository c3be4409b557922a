"""Models wrap code in Markdown fences and add prose around it: take the draft out of its block."""

from __future__ import annotations

import re

__all__ = ["extract_draft"]

_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*$", re.MULTILINE)
_LANGUAGES = {"workflow": ("python", "py", "python3"), "plan": ("markdown", "md")}


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    found: list[tuple[str, str]] = []
    position = 0
    while True:
        start = _OPEN.search(text, position)
        if start is None:
            return found
        fence = start.group(1)
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = close.search(text, start.end())
        body_end = end.start() if end else len(text)
        found.append((start.group(2).lower(), text[start.end() + 1 : body_end]))
        if end is None:
            return found
        position = end.end()


def extract_draft(text: str, kind: str) -> str:
    """The script (kind "workflow") or plan (kind "plan") in a model's answer.

    A workflow is the longest block marked python (else the longest unmarked block, else the whole
    answer). A plan may hold fences of its own, so a plan wrapped in a fence (markdown or none,
    with no heading before it) runs to the answer's last fence line.
    """
    wanted = _LANGUAGES[kind]
    if kind == "plan":
        start = _OPEN.search(text)
        before = text[: start.start()] if start is not None else ""
        wrapped = start is not None and start.group(2).lower() in (*wanted, "")
        if wrapped and start is not None and not re.search(r"^#{1,6}\s", before, re.MULTILINE):
            closes = list(re.finditer(r"^[ \t]*`{3,}[ \t]*$", text[start.end() :], re.MULTILINE))
            body = (
                text[start.end() + 1 : start.end() + closes[-1].start()]
                if closes
                else text[start.end() + 1 :]
            )
            return body.strip() + "\n"
        return text.strip() + "\n"
    blocks = _blocks(text)
    marked = [body for language, body in blocks if language in wanted]
    plain = [body for language, body in blocks if not language]
    chosen = max(marked or plain or [text], key=len)
    return chosen.strip("\n") + "\n"
