"""The usage of a meter's cells and how cells combine over any span of hours (no AWS).

A cell is one (customer, meter, hour, group); its usage (:class:`CellUsage`) is what the events counted in
it add up to, kept per aggregation. Storage keeps a cell in parts (an aggregate and batch contributions):
:func:`merge_cells` makes one cell of its parts, :func:`combine` the meter's quantity of several cells.

Example:
    >>> from decimal import Decimal
    >>> combine("sum", [CellUsage(2, total=Decimal("1.5")), CellUsage(1, total=Decimal("2"))])
    Decimal('3.5')
    >>> combine("unique_count", [CellUsage(2, uniques=frozenset("ab")), CellUsage(1, uniques=frozenset("b"))])
    Decimal('2')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TYPE_CHECKING

from neruba.domain.numbers import EXACT, exact_sum
from neruba.domain.phases import seconds

if TYPE_CHECKING:
    from neruba.domain.ingest import GroupTotals


@dataclass(frozen=True, slots=True)
class CellUsage:
    """What the events counted in a cell (or in one part of it) add up to.

    ``count`` events, of which ``late_count`` arrived after their period was invoiced; per aggregation:
    ``total`` (sum; None when no part carried one), ``maximum`` (max), ``latest`` at ``latest_at``
    (latest), ``uniques`` (unique_count). ``aggregation`` is the meter's when the parts agree on one.
    """

    count: int = 0
    total: Decimal | None = None
    maximum: Decimal | None = None
    minimum: Decimal | None = None
    weighted: Decimal | None = None  # weighted_sum: sum of change x seconds from the hour's start
    latest_at: str | None = None
    latest: Decimal | None = None
    uniques: frozenset[str] = frozenset()
    late_count: int = 0
    aggregation: str | None = None
    event_sums: Mapping[str, Decimal] = field(default_factory=dict)
    event_counts: Mapping[str, int] = field(default_factory=dict)


def usage_of(aggregation: str, totals: GroupTotals) -> CellUsage:
    """The usage a set of events adds to a cell of a meter of ``aggregation`` (only that aggregation's
    figure is kept, and for a sum the per-event rules' sums and counts)."""
    count = totals.count
    if aggregation == "sum":
        return CellUsage(
            count,
            total=totals.total,
            aggregation=aggregation,
            event_sums=dict(totals.event_sums),
            event_counts=dict(totals.event_counts),
        )
    if aggregation == "average":
        return CellUsage(count, total=totals.total, aggregation=aggregation)
    if aggregation == "weighted_sum":
        return CellUsage(count, total=totals.total, weighted=totals.weighted, aggregation=aggregation)
    if aggregation == "max" and totals.maximum is not None:
        return CellUsage(count, maximum=totals.maximum, aggregation=aggregation)
    if aggregation == "min" and totals.minimum is not None:
        return CellUsage(count, minimum=totals.minimum, aggregation=aggregation)
    if aggregation == "latest" and totals.latest_at is not None:
        return CellUsage(count, latest_at=totals.latest_at, latest=totals.latest, aggregation=aggregation)
    if aggregation == "unique_count" and totals.uniques:
        return CellUsage(count, uniques=frozenset(totals.uniques), aggregation=aggregation)
    return CellUsage(count, aggregation=aggregation)


def combine(aggregation: str, cells: Iterable[CellUsage]) -> Decimal:
    """The meter's quantity over several cells (hours and/or groups)."""
    cells = list(cells)
    if aggregation == "count":
        return Decimal(sum(c.count for c in cells))
    if aggregation == "sum":
        return exact_sum(c.total if c.total is not None else Decimal(0) for c in cells)
    if aggregation == "max":
        values = [c.maximum for c in cells if c.maximum is not None]
        return max(values) if values else Decimal(0)
    if aggregation == "min":
        values = [c.minimum for c in cells if c.minimum is not None]
        return min(values) if values else Decimal(0)
    if aggregation == "average":
        return average(exact_sum(c.total for c in cells if c.total is not None), sum(c.count for c in cells))
    if aggregation == "weighted_sum":  # over hours alone: the net change (rating weighs it by time)
        return exact_sum(c.total for c in cells if c.total is not None)
    if aggregation == "unique_count":
        return Decimal(len(frozenset().union(*(c.uniques for c in cells))))
    if aggregation == "latest":
        dated = [(c.latest_at, c.latest) for c in cells if c.latest_at is not None and c.latest is not None]
        return max(dated)[1] if dated else Decimal(0)
    raise ValueError(f"unknown aggregation {aggregation!r}")


AVERAGE = Context(prec=100, rounding=ROUND_HALF_EVEN)
"""The one division of an average: 100 significant digits. A quotient that is a terminating decimal
within them is exact; any other is farther from every half minor unit and every tier bound than the
100-digit error (stored numbers have at most 38 digits, prices 30: docs/pricing.md, "Aggregations"), so
pricing and the line's half-up rounding come out as with exact fractions."""


def weighted_level(
    cells: Iterable[tuple[datetime, CellUsage]],
    start: datetime,
    end: datetime,
    opening: Decimal,
    period_seconds: Decimal,
) -> Decimal:
    """A weighted_sum meter's quantity over the part [start, end) of a period: the integral of the level
    (``opening`` at ``start``, then each change from its instant on) divided by the period's length.

    ``cells`` are the part's cells with their hour's start; a change in an hour that began before
    ``start`` counts from ``start``. Exact but for the one division (``AVERAGE``, 100 digits).

    Example:
        >>> from datetime import UTC
        >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 2, tzinfo=UTC)
        >>> cell = CellUsage(1, total=Decimal(10), weighted=Decimal(10 * 1800))  # +10 at 01:30
        >>> weighted_level([(datetime(2026, 1, 1, 1, tzinfo=UTC), cell)], t0, t1, Decimal(4), Decimal(7200))
        Decimal('6.500000')
    """
    integral = opening * seconds(start, end)
    with localcontext(EXACT):
        for hour, cell in cells:
            change = cell.total or Decimal(0)
            if hour < start:
                integral += change * seconds(start, end)
            else:
                integral += change * seconds(hour, end) - (cell.weighted or Decimal(0))
    if period_seconds <= 0:
        return Decimal(0)
    with localcontext(AVERAGE):
        return integral / period_seconds


def average(total: Decimal, count: int) -> Decimal:
    """The mean of ``count`` values summing to ``total`` (0 for no value).

    Example:
        >>> average(Decimal(10), 4), average(Decimal(5), 0), len(str(average(Decimal(1), 3)))
        (Decimal('2.5'), Decimal('0'), 102)
    """
    if count <= 0:
        return Decimal(0)
    with localcontext(AVERAGE):
        return total / count


def merge_cells(parts: Iterable[CellUsage]) -> CellUsage:
    """Several stored parts of one cell (an aggregate and batch contributions) as one cell.

    Example:
        >>> parts = [CellUsage(2, total=Decimal("1.5")), CellUsage(1, total=Decimal("2"), late_count=1)]
        >>> cell = merge_cells(parts)
        >>> cell.count, cell.total, cell.late_count
        (3, Decimal('3.5'), 1)
    """
    parts = list(parts)
    totals = [p.total for p in parts if p.total is not None]
    maxima = [p.maximum for p in parts if p.maximum is not None]
    minima = [p.minimum for p in parts if p.minimum is not None]
    weights = [p.weighted for p in parts if p.weighted is not None]
    dated = [(p.latest_at, p.latest) for p in parts if p.latest_at is not None and p.latest is not None]
    latest_at, latest = max(dated) if dated else (None, None)
    aggregations = {p.aggregation for p in parts if p.aggregation}
    return CellUsage(
        count=sum(p.count for p in parts),
        total=exact_sum(totals) if totals else None,
        maximum=max(maxima) if maxima else None,
        minimum=min(minima) if minima else None,
        weighted=exact_sum(weights) if weights else None,
        latest_at=latest_at,
        latest=latest,
        uniques=frozenset().union(*(p.uniques for p in parts)),
        late_count=sum(p.late_count for p in parts),
        aggregation=aggregations.pop() if len(aggregations) == 1 else None,
        event_sums=_add_maps(p.event_sums for p in parts),
        event_counts={k: int(v) for k, v in _add_maps(p.event_counts for p in parts).items()},
    )


def _add_maps(maps: Iterable[Mapping[str, Decimal] | Mapping[str, int]]) -> dict[str, Decimal]:
    """Per key, the exact sum of the values the maps hold for it."""
    values: dict[str, list[Decimal | int]] = {}
    for mapping in maps:
        for key, value in mapping.items():
            values.setdefault(key, []).append(value)
    return {key: exact_sum(parts) for key, parts in values.items()}


def rule_usage(cells: Iterable[CellUsage]) -> tuple[dict[str, Decimal], dict[str, int]]:
    """The per-event rules' sums and counts over several cells (hours and/or groups)."""
    cells = list(cells)
    counts = _add_maps(c.event_counts for c in cells)
    return _add_maps(c.event_sums for c in cells), {k: int(v) for k, v in counts.items()}


def bucket_of(hour: str, granularity: str) -> str:
    """The bucket an hour (``YYYY-MM-DDTHH``) belongs to: itself, its day, or 'total'."""
    if granularity == "hour":
        return hour
    if granularity == "day":
        return hour[:10]
    return "total"
