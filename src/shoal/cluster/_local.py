"""A local Ray started by the driver, and what a driver killed with SIGKILL leaves of it.

Ray's head processes share the driver's fate, but the per-node agents it starts (dashboard agent,
runtime-env agent) outlive a SIGKILLed driver. Their process ids and start times are written to
.shoal/ray-local.json; the next run kills those exact processes (same id, same start time) before
starting its own Ray.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

__all__ = ["reap_leftovers", "record_processes"]

_FILENAME = "ray-local.json"


def record_processes(state_dir: Path) -> None:
    """The local Ray's raylet and everything under it, as (pid, start time) pairs."""
    import psutil
    import ray._private.worker as ray_worker

    node: Any = getattr(ray_worker, "_global_node", None)
    found: list[tuple[int, float]] = []
    try:
        raylets = node.all_processes.get("raylet", []) if node is not None else []
        for info in raylets:
            parent = psutil.Process(info.process.pid)
            for process in [parent, *parent.children(recursive=True)]:
                found.append((process.pid, process.create_time()))
    except (AttributeError, psutil.Error):
        return  # private Ray API moved: leftovers are then Ray's own business
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / _FILENAME).write_text(json.dumps(found))


def reap_leftovers(state_dir: Path) -> int:
    """Kill the recorded processes of an earlier local Ray that are still alive; how many."""
    import psutil

    path = state_dir / _FILENAME
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    killed = 0
    for pid, started in recorded:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(pid))
            if abs(process.create_time() - float(started)) < 0.01:  # the same process, not a reused id
                process.kill()
                killed += 1
    path.unlink(missing_ok=True)
    return killed
