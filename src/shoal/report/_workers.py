"""The report's section on Ray workers: what each did and how long it was busy, per run."""

from __future__ import annotations

from ..view._format import count
from ._data import ReportData
from ._model import Section, Table

__all__ = ["workers_section"]


def workers_section(data: ReportData) -> Section | None:
    """None when no run of the job used the Ray executor."""
    runs = [e for e in data.events if e.kind == "workers"]
    if not runs:
        return None
    section = Section("Ray workers")
    section.paragraphs.append(
        "What each worker finished and how long it was busy: for requests, tools and lint checks, "
        "their time summed (over those it ran at once); for agents' loops, its process's CPU time. "
        "A lost worker died mid-run; its work in flight was dispatched again to another."
    )
    rows = [
        [
            str(event.run_id),
            str(worker["name"]),
            str(worker["node"]),
            f"{count(int(worker['done']))} {worker.get('unit', 'requests')}",
            f"{float(worker['busy_s']):.1f}s",
            "lost" if worker.get("lost") else "",
        ]
        for event in runs
        for worker in event.detail.get("workers", [])
    ]
    section.tables.append(
        Table(["run", "worker", "node", "done", "busy", ""], rows, numeric=frozenset({0, 3, 4}))
    )
    return section
