"""Billing periods anchored to a subscription's start, in UTC (end-of-month days clamp, never drift).

A plan's interval is one of ``INTERVALS``. Every boundary is computed from the anchor itself (never from
the previous boundary), after converting the anchor to UTC:

- ``day`` and ``week``: exactly 24 h or 7 x 24 h per period, so a period keeps the anchor's UTC time of
  day (and, weekly, its weekday);
- ``month``, ``quarter`` and ``year``: 1, 3 or 12 calendar months per period, on the anchor's day of the
  month clamped to the month's length, at the anchor's UTC time.

Example:
    >>> from datetime import datetime, UTC
    >>> add_interval(datetime(2026, 1, 31, tzinfo=UTC), "month", 1).date().isoformat()
    '2026-02-28'
    >>> add_interval(datetime(2026, 1, 31, tzinfo=UTC), "month", 2).date().isoformat()
    '2026-03-31'
    >>> add_interval(datetime(2026, 1, 31, tzinfo=UTC), "quarter", 1).date().isoformat()
    '2026-04-30'
    >>> add_interval(datetime(2026, 1, 7, 15, tzinfo=UTC), "week", 2).isoformat()
    '2026-01-21T15:00:00+00:00'
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Literal

Interval = Literal["day", "week", "month", "quarter", "year"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month", "quarter", "year")
_FIXED = {"day": timedelta(days=1), "week": timedelta(days=7)}
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


class PeriodError(ValueError):
    """Naive datetimes or unknown intervals."""


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise PeriodError("periods need timezone-aware datetimes")
    return at.astimezone(UTC)


def add_interval(anchor: datetime, interval: str, n: int) -> datetime:
    """The anchor (in UTC) moved by ``n`` periods of ``interval``, always computed from the anchor itself."""
    anchor = _utc(anchor)
    step = _FIXED.get(interval)
    if step is not None:
        return anchor + n * step
    per = _MONTHS.get(interval)
    if per is None:
        raise PeriodError(f"unknown interval {interval!r}")
    total = anchor.year * 12 + (anchor.month - 1) + n * per
    year, month = divmod(total, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def fits_calendar(anchor: datetime, interval: str) -> bool:
    """Whether the anchor's first period ends by the end of the calendar (year 9999): past it no period
    boundary can be computed."""
    try:
        add_interval(anchor, interval, 1)
    except (OverflowError, ValueError):
        return False
    return True


def _periods_before(anchor: datetime, interval: str, at: datetime) -> int:
    """A number ``n`` of whole periods with ``add_interval(anchor, interval, n) <= at`` (exact for days
    and weeks, at most one short for the calendar intervals); both times in UTC, ``at >= anchor``."""
    step = _FIXED.get(interval)
    if step is not None:
        return (at - anchor) // step
    months = (at.year - anchor.year) * 12 + at.month - anchor.month - 1
    return max(0, months // _MONTHS.get(interval, 1))


def period_containing(anchor: datetime, interval: str, at: datetime) -> tuple[datetime, datetime]:
    """The billing period [start, end) that contains ``at`` (periods before the anchor are not defined)."""
    anchor, at = _utc(anchor), _utc(at)
    if at < anchor:
        raise PeriodError("no billing period before the subscription starts")
    n = _periods_before(anchor, interval, at)
    while add_interval(anchor, interval, n + 1) <= at:
        n += 1
    return add_interval(anchor, interval, n), add_interval(anchor, interval, n + 1)


def period_around(anchor: datetime, interval: str, at: datetime) -> tuple[datetime, datetime]:
    """The period [start, end) of the anchor's phase that contains ``at``, before the anchor as after it:
    the anchor fixes where periods fall (every boundary is ``add_interval(anchor, interval, n)`` for some
    whole ``n``, negative before the anchor), not where the first one begins.

    Example:
        >>> from datetime import datetime, UTC
        >>> anchor, now = datetime(2027, 6, 15, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
        >>> start, end = period_around(anchor, "month", now)
        >>> start.date().isoformat(), end.date().isoformat()
        ('2026-11-15', '2026-12-15')
    """
    anchor, at = _utc(anchor), _utc(at)
    if at >= anchor:
        return period_containing(anchor, interval, at)
    n = -_periods_before(at, interval, anchor) - 1
    while add_interval(anchor, interval, n) > at:
        n -= 1
    while add_interval(anchor, interval, n + 1) <= at:
        n += 1
    return add_interval(anchor, interval, n), add_interval(anchor, interval, n + 1)
