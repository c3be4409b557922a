"""The CLI edge: asyncio.run, signal handlers, and errors turned into one line and an exit code."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable

from ..engine import StopSignal
from ..errors import ShoalError, UsageError
from ._diskfull import disk_full

__all__ = ["run_async", "say"]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        return 1
    except BaseException as exc:
        full = disk_full(exc)
        if full is None:
            raise
        resume = shlex.join(["shoal", *sys.argv[1:]])
        say(f"shoal: stopped: {full}; free some space, then resume with: {resume}")
        return 3
