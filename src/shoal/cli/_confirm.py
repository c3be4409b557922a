"""Asking before anything is sent: y/N on a terminal, --yes otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from ..errors import UsageError

__all__ = ["confirm_launch"]


def confirm_launch(
    summary: str,
    *,
    yes: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    is_tty: Callable[[], bool] | None = None,
) -> bool:
    """Print what will happen; True if the user approves (or gave --yes).

    Without a terminal and without --yes there is nobody to ask: that is a usage error.
    """
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    print(summary, file=out, flush=True)
    if yes:
        return True
    interactive = is_tty() if is_tty is not None else stdin.isatty()
    if not interactive:
        raise UsageError("no terminal to confirm on: pass --yes to start without asking")
    print("Start? [y/N] ", end="", file=out, flush=True)
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")
