"""The level intervals behind a time-weighted quantity (a weighted_sum meter's line), for explain.

A part [start, end) of a period starts at an opening level; each hour with changes moves it. The part's
quantity is the level's integral divided by the period's length (``domain.usage.weighted_level``). This
module splits that integral into rows a reader can check: a stretch with no change holds one level for its
seconds; an hour with changes (only its sums are stored, not each instant) shows its net change, the
level after it and the unit-seconds it held. Every row's ``quantity`` is its unit-seconds / the period's
seconds, so the rows add up to the line's quantity (each carried to 100 significant digits, like it).
Every row is a real one (its own level and change); a line shows the first ``MAX_INTERVALS`` and one
summary of the rest (``shown``), never a merged row whose level would stand for several.

Example:
    >>> from datetime import UTC
    >>> from neruba.domain.usage import CellUsage
    >>> t0, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 2, tzinfo=UTC)
    >>> cell = CellUsage(1, total=Decimal(10), weighted=Decimal(18000))  # +10 at 00:30
    >>> rows = level_intervals([(t0, cell)], t0, t2, Decimal(4), Decimal(7200))
    >>> from neruba.domain.numbers import canonical_text as text
    >>> [(text(r.level), r.change and text(r.change), text(r.unit_seconds), text(r.quantity)) for r in rows]
    [('14', '10', '32400', '4.5'), ('14', None, '50400', '7')]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from neruba.domain.numbers import EXACT
from neruba.domain.phases import seconds
from neruba.domain.usage import AVERAGE, CellUsage
from neruba.timefmt import iso

HOUR = timedelta(hours=1)
MAX_INTERVALS = 48
"""Rows one line shows at most, so an invoice line stays small: the rows after them (a part with changes
in many hours) are summed into one ``intervals_more`` summary (``shown``), never merged into a row."""


@dataclass(frozen=True, slots=True)
class LevelInterval:
    """One row: [start, end), the level at its end, the net ``change`` in it (None: the level was held
    all along), the unit-seconds it held, its share of the period (``fraction``) and of the quantity."""

    start: datetime
    end: datetime
    level: Decimal
    change: Decimal | None
    unit_seconds: Decimal
    fraction: Decimal
    quantity: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "level": self.level,
            "change": self.change,
            "seconds": seconds(self.start, self.end),
            "unit_seconds": self.unit_seconds,
            "fraction": self.fraction,
            "quantity": self.quantity,
        }


def level_intervals(
    cells: Iterable[tuple[datetime, CellUsage]],
    start: datetime,
    end: datetime,
    opening: Decimal,
    period_seconds: Decimal,
) -> list[LevelInterval]:
    """The rows of the part [start, end): ``cells`` are the part's cells with their hour's start (an hour
    that began before ``start`` counts from ``start``, as in ``weighted_level``), ``opening`` the level
    at ``start``. No row has zero length."""
    level, cursor = opening, start
    raw: list[tuple[datetime, datetime, Decimal, Decimal | None, Decimal]] = []
    with localcontext(EXACT):
        for hour, cell in sorted(cells, key=lambda pair: pair[0]):
            change = cell.total or Decimal(0)
            if hour < start:
                level += change
                continue
            if hour > cursor:
                raw.append((cursor, hour, level, None, level * seconds(cursor, hour)))
            to = min(hour + HOUR, end)
            held = (level + change) * seconds(hour, to) - (cell.weighted or Decimal(0))
            level += change
            raw.append((hour, to, level, change, held))
            cursor = max(cursor, to)
        if cursor < end:
            raw.append((cursor, end, level, None, level * seconds(cursor, end)))
    return [_row(*row, period_seconds) for row in raw if row[0] < row[1] or row[4]]


def shown(
    rows: list[LevelInterval], most: int = MAX_INTERVALS
) -> tuple[list[LevelInterval], dict[str, Any] | None]:
    """The rows a line shows (the first ``most``) and, when there are more, what the rest adds up to:
    ``{rows, from, to, seconds, unit_seconds, fraction, quantity}`` (sums of the rows left out, exact
    but for the 100 digits each row's fraction and quantity carry). None when every row is shown."""
    if len(rows) <= most:
        return rows, None
    rest = rows[most:]
    with localcontext(EXACT):
        more = {
            "rows": len(rest),
            "from": iso(rest[0].start),
            "to": iso(rest[-1].end),
            "seconds": seconds(rest[0].start, rest[-1].end),
            "unit_seconds": sum((r.unit_seconds for r in rest), Decimal(0)),
            "fraction": sum((r.fraction for r in rest), Decimal(0)),
            "quantity": sum((r.quantity for r in rest), Decimal(0)),
        }
    return rows[:most], more


def part_changes(
    own: Iterable[tuple[datetime, CellUsage]],
    earlier: Iterable[tuple[datetime, CellUsage]],
    part: tuple[datetime, datetime],
    window: tuple[datetime, datetime],
) -> tuple[Decimal, list[tuple[datetime, CellUsage]]]:
    """The opening level and the timed changes a part [start, end) of a window is weighed from.

    ``own`` are the part's cells with their hour's start, ``earlier`` the cells before it with their
    (effective) start. An hour belongs wholly to the part its start falls in (docs/pricing.md, "A plan
    change inside an hour"), so at a boundary inside the window (a plan change, a trial's end) that falls
    inside an hour, the part owning the hour keeps the changes' whole integral up to the hour's end, and
    the next part counts them from the hour's end on: the level is weighed once, never negative.

    Example:
        >>> from datetime import UTC
        >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
        >>> t2, window = datetime(2026, 1, 1, 2, tzinfo=UTC), (t0, datetime(2026, 1, 2, tzinfo=UTC))
        >>> cell = CellUsage(1, total=Decimal(1), weighted=Decimal(2400))  # +1 at 00:40
        >>> _, mine = part_changes([(t0, cell)], [], (t0, t1), window)
        >>> opening, theirs = part_changes([], [(t0, cell)], (t1, t2), window)
        >>> mine[0][1].weighted, opening, theirs[0][0].hour
        (Decimal('600.000000'), Decimal('0'), 1)
    """
    start, end = part
    opening, changes = Decimal(0), []
    with localcontext(EXACT):
        for at, cell in earlier:
            if at >= start:
                continue
            change = cell.total or Decimal(0)
            hour_end = at.replace(minute=0, second=0, microsecond=0) + HOUR
            if start > window[0] and hour_end > start:
                if hour_end < end:  # counted here from the hour's end
                    changes.append((hour_end, CellUsage(total=change, weighted=Decimal(0))))
                continue
            opening += change
        for hour, cell in own:
            hour_end = hour + HOUR
            if end < window[1] and hour < end < hour_end:  # the rest of the hour is held here
                change = cell.total or Decimal(0)
                cell = replace(cell, weighted=(cell.weighted or Decimal(0)) - change * seconds(end, hour_end))
            changes.append((hour, cell))
    return opening, changes


def _row(
    start: datetime,
    end: datetime,
    level: Decimal,
    change: Decimal | None,
    held: Decimal,
    period_seconds: Decimal,
) -> LevelInterval:
    if period_seconds <= 0:
        return LevelInterval(start, end, level, change, held, Decimal(0), Decimal(0))
    with localcontext(AVERAGE):
        fraction = seconds(start, end) / period_seconds
        quantity = held / period_seconds
    return LevelInterval(start, end, level, change, held, fraction, quantity)
