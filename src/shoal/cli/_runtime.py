"""The CLI edge: asyncio.run, signal handlers, and errors turned into one line and an exit code."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from ..engine import StopSignal
from ..errors import ExitCode, ShoalError, UsageError
from ._diskfull import disk_full

__all__ = ["invoked_as", "resume_argv", "run_async", "say"]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def invoked_as(argv0: str | None = None, orig_argv: Sequence[str] | None = None) -> list[str]:
    """The words the user typed to start shoal, for the resume line: `.venv/bin/shoal` stays
    `.venv/bin/shoal`, `python -m shoal` stays that, and a `shoal` found on PATH is `shoal`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    orig_argv = sys.orig_argv if orig_argv is None else orig_argv
    if os.path.basename(argv0) == "__main__.py" or argv0 in ("-m", "-c", ""):
        return [orig_argv[0] if orig_argv else "python", "-m", "shoal"]
    name = os.path.basename(argv0)
    if os.sep in argv0:
        # The shell hands a script found on PATH its full path: show the name the user typed.
        found = shutil.which(name)
        try:
            if found is not None and os.path.samefile(found, argv0):
                return [name]
        except OSError:
            pass
    return [argv0]


def resume_argv() -> list[str]:
    """This command line as the user can type it again."""
    return [*invoked_as(), *sys.argv[1:]]


def run_async(main: Callable[[StopSignal], Awaitable[int]]) -> int:
    """Run a job's coroutine with Ctrl-C/SIGTERM wired to its stop signal; return the exit code."""

    async def runner() -> int:
        stop = StopSignal()
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)

        def interrupt() -> None:
            first = stop.running
            stop.interrupt()
            if first:
                say("shoal: stopping: no new calls start, calls in flight finish (Ctrl-C again cancels them)")
            else:
                say("shoal: cancelling calls in flight; the journal stays resumable")

        for sig in handled:
            loop.add_signal_handler(sig, interrupt)
        try:
            return await main(stop)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(runner())
    except UsageError as exc:
        say(f"shoal: error: {exc}")
        return exc.exit_code
    except ShoalError as exc:
        say(f"shoal: failed: {exc}")
        return ExitCode.FAILED
    except BaseException as exc:
        full = disk_full(exc)
        if full is None:
            raise
        resume = shlex.join(resume_argv())
        say(f"shoal: stopped: {full}; free some space, then resume with: {resume}")
        return ExitCode.STOPPED
