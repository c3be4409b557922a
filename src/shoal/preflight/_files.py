"""The OUT file of `shoal map`: a regular file (or one not there yet) that shoal can append to,
which is none of the job's own inputs and not a device or a kernel file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError

__all__ = ["check_output_file"]

# Pseudo-filesystems whose "regular files" are kernel settings or devices, never results.
_SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_output_file(
    out: Path,
    *,
    flag: str = "--out",
    inputs: Iterable[tuple[str, Path]] = (),
    state_dir: Path | None = None,
) -> None:
    """Raise InputError when results could not be appended to `out`, or would destroy an input
    (or shoal's own state under `state_dir`)."""
    where = f"{flag} {out}"
    resolved = out.resolve()
    if any(resolved == root or root in resolved.parents for root in _SYSTEM_ROOTS):
        raise InputError(f"{where}: a system path, not a file for results; give a regular file")
    if state_dir is not None and resolved.is_relative_to(state_dir.resolve()):
        raise InputError(
            f"{where}: inside {state_dir}, where shoal keeps its journal; write results elsewhere"
        )
    for label, source in inputs:
        if _same_file(out, source):
            raise InputError(f"{where}: is the same file as {label} {source}; results would overwrite it")
    try:
        info = out.stat()
    except FileNotFoundError:
        _check_creatable(out, where)
        return
    except OSError as exc:
        raise InputError(f"{where}: cannot use it: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{where}: is a directory; give a file path such as {out / 'results.jsonl'}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{where}: not a regular file (a device, pipe or socket); give a regular file")
    try:
        with out.open("ab"):  # opening to append changes nothing
            pass
    except OSError as exc:
        raise InputError(f"{where}: cannot write to it: {exc.strerror}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # follows symlinks; also catches hard links
    except OSError:
        return a.resolve() == b.resolve()


def _check_creatable(out: Path, where: str) -> None:
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # missing folders are created when the job starts
    if not parent.is_dir():
        raise InputError(f"{where}: {parent} is not a directory")
    if parent != out.parent:
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{where}: cannot create folders in {parent}: permission denied")
        return
    try:  # the only honest test of "can I create this file": create it, and take it away again
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return  # it appeared meanwhile: the job will append to it
    except OSError as exc:
        raise InputError(f"{where}: cannot create it: {exc.strerror}") from None
    os.close(fd)
    out.unlink()
