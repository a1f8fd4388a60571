"""Billing periods anchored to a subscription's start (end-of-month days clamp, never drift).

Example:
    >>> from datetime import datetime, UTC
    >>> add_interval(datetime(2026, 1, 31, tzinfo=UTC), "month", 1).date().isoformat()
    '2026-02-28'
    >>> add_interval(datetime(2026, 1, 31, tzinfo=UTC), "month", 2).date().isoformat()
    '2026-03-31'
"""

from __future__ import annotations

import calendar
from datetime import datetime


class PeriodError(ValueError):
    """Naive datetimes or unknown intervals."""


def add_interval(anchor: datetime, interval: str, n: int) -> datetime:
    """The anchor moved by ``n`` months or years, always computed from the anchor itself."""
    if anchor.tzinfo is None:
        raise PeriodError("periods need timezone-aware datetimes")
    months = {"month": n, "year": 12 * n}.get(interval)
    if months is None:
        raise PeriodError(f"unknown interval {interval!r}")
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(total, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def period_containing(anchor: datetime, interval: str, at: datetime) -> tuple[datetime, datetime]:
    """The billing period [start, end) that contains ``at`` (periods before the anchor are not defined)."""
    if at < anchor:
        raise PeriodError("no billing period before the subscription starts")
    per_year = 12 if interval == "month" else 1
    n = max(
        0, (at.year - anchor.year) * per_year + ((at.month - anchor.month) if interval == "month" else 0) - 1
    )
    while add_interval(anchor, interval, n + 1) <= at:
        n += 1
    return add_interval(anchor, interval, n), add_interval(anchor, interval, n + 1)
