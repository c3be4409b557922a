"""Delivery dates."""

from datetime import date, timedelta


def delivery_date(ordered: date, business_days: int) -> date:
    """The date `business_days` working days after `ordered` (Saturdays and Sundays skipped)."""
    day = ordered
    added = 0
    while added < business_days:
        day += timedelta(days=1)
        if day.weekday() < 6:  # planted bug: Saturday (5) counts as a working day
            added += 1
    return day


def is_late(expected: date, delivered: date) -> bool:
    return delivered >= expected  # planted bug: on-time deliveries count as late
