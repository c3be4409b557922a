"""shoal: run a large batch of LLM work as one controlled, resumable job.

The workflow primitives are importable from here; they load on first use, so `import shoal`
stays light for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Finding",
    "FixOutcome",
    "agent",
    "log",
    "parallel",
    "phase",
    "pipeline",
    "verify_fix",
    "workflow",
    "workspace",
]

if TYPE_CHECKING:
    from .workflows import (
        Finding,
        FixOutcome,
        agent,
        log,
        parallel,
        phase,
        pipeline,
        verify_fix,
        workflow,
        workspace,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        # The primitives live in shoal.workflows (plural, so that `shoal.workflow` stays the
        # decorator); importing it on first use keeps `import shoal` light.
        module = importlib.import_module(f"{__name__}.workflows")
        return getattr(module, name)
    raise AttributeError(f"module 'shoal' has no attribute {name!r}")
