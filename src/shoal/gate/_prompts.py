"""What the writer and the reviewer are told.

The writer's first message (format reference + content rules) is identical for every task, so
providers can cache it as a shared prefix; the task-specific part comes last.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "REVIEW_SCHEMA",
    "SELF_CHECK_SCHEMA",
    "fix_flags_prompt",
    "fix_lint_prompt",
    "fix_metadata_prompt",
    "review_prompt",
    "self_check_prompt",
    "task_prompt",
    "writer_brief",
]

SELF_CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fixed"]},
        "problems": {"type": "array", "items": {"type": "string"}},
        "document": {"type": "string", "description": "the whole corrected document when verdict is 'fixed'"},
    },
    "required": ["verdict", "problems", "document"],
    "additionalProperties": False,
}

FLAG_KINDS = ["invented_fact", "unverifiable_claim", "vagueness", "format"]

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["clean", "flagged"]},
        "flags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": FLAG_KINDS},
                    "quote": {"type": "string"},
                    "problem": {"type": "string"},
                },
                "required": ["kind", "quote", "problem"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["verdict", "flags"],
    "additionalProperties": False,
}


def writer_brief(reference_name: str, reference: str, rules: tuple[str, ...]) -> str:
    listed = "\n".join(f"- {rule}" for rule in rules) or "- (none)"
    return (
        "You write one document of a batch. Follow the structure, style and front matter format of the "
        "reference document below exactly.\n\n"
        f"REFERENCE DOCUMENT ({reference_name}):\n<<<\n{reference}\n>>>\n\n"
        f"CONTENT RULES:\n{listed}\n\n"
        "Answer with the complete document only: no commentary before or after it."
    )


def task_prompt(title: str, filename: str, phase_name: str) -> str:
    return f'Create the document "{title}" (file {filename}, phase "{phase_name}").'


def self_check_prompt(title: str, checklist: tuple[str, ...]) -> str:
    listed = (
        "\n".join(f"{i}. {item}" for i, item in enumerate(checklist, 1)) or "1. The content rules are met."
    )
    return (
        f'Check your draft of "{title}" against this validation checklist:\n{listed}\n\n'
        "Answer with verdict 'pass' if it meets every item, or 'fixed' with the problems you found and the "
        "whole corrected document."
    )


def fix_lint_prompt(title: str, violations: tuple[str, ...]) -> str:
    listed = "\n".join(violations)
    return (
        f'The linter rejected your draft of "{title}":\n{listed}\n\n'
        "Fix exactly these violations and change nothing else. Answer with the whole corrected document."
    )


def fix_metadata_prompt(title: str, problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f'The front matter of your draft of "{title}" has problems:\n{listed}\n\n'
        "Fix only the front matter. Answer with the whole corrected document."
    )


def review_prompt(title: str, rules: tuple[str, ...], draft: str) -> str:
    listed = "\n".join(f"- {rule}" for rule in rules) or "- (none)"
    return (
        "You are a skeptical editor reviewing a draft before publication. Your job is to find problems, "
        "not to approve. Flag:\n"
        "- any factual claim you cannot verify from the brief (invented_fact or unverifiable_claim)\n"
        "- any date, name or statistic that seems invented (invented_fact)\n"
        "- any section that is vague where the brief asked for specifics (vagueness)\n"
        "- any breach of the content rules or the expected format (format)\n"
        "Quote the exact words each flag is about. Do NOT rewrite the content. If you find nothing, answer "
        "verdict 'clean' with no flags.\n\n"
        f'BRIEF: a document titled "{title}".\nCONTENT RULES:\n{listed}\n\n'
        f'Review the draft of "{title}":\n<<<\n{draft}\n>>>'
    )


def fix_flags_prompt(title: str, flags: list[dict[str, str]]) -> str:
    listed = "\n".join(f'- [{f["kind"]}] "{f["quote"]}": {f["problem"]}' for f in flags)
    return (
        f'A reviewer flagged these problems in your draft of "{title}":\n{listed}\n\n'
        "Make surgical edits that resolve exactly these flags (remove or qualify what cannot be verified); "
        "leave everything else unchanged. Answer with the whole corrected document."
    )
