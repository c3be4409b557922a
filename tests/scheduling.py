"""How a parallel run (`pytest -n 6`, as `make test`) spreads the suite over pytest-xdist processes.

Tests are handed out one at a time (xdist's "load"), so a long test never waits behind a whole file,
except the tests of a Ray test file (`test_ray*.py`): they share the file's local Ray, so they stay in
one process and Ray starts once per file. Tests marked `long` are collected first (conftest), so none
of them starts last and holds up the end of the run while the other processes sit idle.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import Producer

__all__ = ["OneRayPerFile", "Scheduling"]


class OneRayPerFile(LoadScopeScheduling):
    """Each test is a unit of work on its own, except a Ray test file's tests, which are one unit."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return path if PurePosixPath(path).name.startswith("test_ray") else nodeid


class Scheduling:
    """The plugin conftest registers when xdist is there (its hook is unknown to pytest without it)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Producer) -> OneRayPerFile | None:
        # xdist's own schedulers stay one option away: --dist loadfile, loadscope, worksteal...
        return OneRayPerFile(config, log) if config.getvalue("dist") == "load" else None
