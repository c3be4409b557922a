"""What a failure looks like once the text specific to one call or task is taken out.

Two failures are "the same" when they differ only in the item they happened to: its title, file
name or slug, the numbers in the message (line numbers, token counts, positions) and quoted
values. Both the engine's streak detector and the plan's systemic rule compare failures this way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["failure_signature"]

ITEM = "<item>"
QUOTED = "'…'"
NUMBER = "N"

_QUOTED = re.compile(r"(?<!\w)'[^'\n]*'(?!\w)|\"[^\"\n]*\"|`[^`\n]*`")
# Hex ids (request ids, uuids, hashes), also after "call_" or "chatcmpl-": 8+ hex digits, one a digit.
_ID = re.compile(r"(?<![0-9a-z])(?=[0-9a-f-]*\d)[0-9a-f]{8,}(?:-[0-9a-f]{4,})*(?![0-9a-z])", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")
_MAX = 200


def failure_signature(text: str, specifics: Iterable[str] = ()) -> str:
    """`text` with the item's own words (`specifics`), quoted values, ids and numbers replaced.

    Longer specifics go first, so a title is taken out whole before a word of it could be; the
    comparison ignores case, because messages quote titles and slugs in either.
    """
    result = text
    for specific in sorted({s.strip() for s in specifics if len(s.strip()) >= 3}, key=len, reverse=True):
        result = re.sub(re.escape(specific), ITEM, result, flags=re.IGNORECASE)
    result = _QUOTED.sub(QUOTED, result)
    result = _ID.sub(NUMBER, result)
    result = _NUMBER.sub(NUMBER, result)
    result = _SPACE.sub(" ", result).strip()
    return result[:_MAX]
