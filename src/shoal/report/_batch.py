"""What batch APIs saved: from the journal's batch_collected events."""

from __future__ import annotations

from ..view._format import money
from ._data import ReportData

__all__ = ["batch_saving"]


def batch_saving(data: ReportData) -> str | None:
    """One sentence on the batches of the job, or None when it used none."""
    collected = [e for e in data.events if e.kind == "batch_collected"]
    if not collected:
        return None
    paid = sum(float(e.detail.get("cost_usd", 0.0)) for e in collected)
    online = sum(float(e.detail.get("online_usd", 0.0)) for e in collected)
    answered = sum(int(e.detail.get("succeeded", 0)) for e in collected)
    return (
        f"Through provider batch APIs: {len(collected)} batch(es), {answered} answered requests, "
        f"{money(paid)}; the same tokens online would have cost {money(online)}: "
        f"saved {money(online - paid)}."
    )
