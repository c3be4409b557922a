"""Running a job's items on a Ray cluster (the optional extra shoal[ray]).

Ray is imported only when `[executor] kind = "ray"` or `--executor ray` chooses it. The `shoal`
process stays the driver: the only journal writer and the only writer of the user's files. Ray
actors send map and plan requests and run workflow agents' loops, asking the driver for each model
request; see docs/decisions.md ("Ray: the driver governs, actors send").
"""

from ._connect import RayTarget, executor_providers, executor_tools, ray_target
from ._placing import (
    LintPlacer,
    LoopPlacer,
    Relay,
    ToolPlacer,
    WorkerLost,
    lint_runner,
    loop_placer,
    place_tools,
)
from ._stats import WorkerSource, WorkerStat, note_workers, workers_of

__all__ = [
    "LintPlacer",
    "LoopPlacer",
    "RayTarget",
    "Relay",
    "ToolPlacer",
    "WorkerSource",
    "WorkerLost",
    "WorkerStat",
    "executor_providers",
    "executor_tools",
    "lint_runner",
    "loop_placer",
    "note_workers",
    "place_tools",
    "ray_target",
    "workers_of",
]
