"""Files reach the disk whole: write to a temporary file, fsync, rename.

The temporary file is created 0600; before the rename it takes the mode of the file it replaces,
or for a new file the mode the user's umask gives (0644 under the usual 022), so a shipped guide,
a registration file or PLAN.md keeps the permissions it had.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["new_file_mode", "write_atomic"]


def new_file_mode() -> int:
    """0666 less the process's umask, read without changing it where /proc tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = new_file_mode()
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
