"""Numbers as people read them: durations, money, counts, percentages."""

from __future__ import annotations

import math

__all__ = ["count", "duration", "money", "percent", "phase_of"]


def phase_of(stage: str) -> str | None:
    """A stage named "phase-1/review" belongs to phase "phase-1"; a plain name to no phase."""
    phase, sep, _ = stage.partition("/")
    return phase if sep and phase else None


def duration(seconds: float | None) -> str:
    """ "42s", "3m05s", "2h07m"; "-" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def money(usd: float | None) -> str:
    if usd is None:
        return "-"
    if usd != 0 and abs(usd) < 0.01:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def count(value: float | None) -> str:
    """12, 12.3k, 4.5M."""
    if value is None:
        return "-"
    if abs(value) < 10_000:
        return f"{value:,.0f}"
    if abs(value) < 1_000_000:
        return _one_decimal(value / 1000) + "k"
    return _one_decimal(value / 1_000_000) + "M"


def _one_decimal(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
