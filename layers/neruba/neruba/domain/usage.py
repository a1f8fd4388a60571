"""Combining stored hourly aggregates into the quantity of a meter over any span of hours (no AWS).

Example:
    >>> from decimal import Decimal
    >>> combine("sum", [{"n": 2, "s": Decimal("1.5")}, {"n": 1, "s": Decimal("2")}])
    Decimal('3.5')
    >>> combine("unique_count", [{"n": 2, "u": {"a", "b"}}, {"n": 1, "u": {"b"}}])
    Decimal('2')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from neruba.domain.numbers import exact_sum


def combine(aggregation: str, cells: Iterable[Mapping[str, Any]]) -> Decimal:
    """The meter's quantity over several aggregate cells (hours and/or groups)."""
    cells = list(cells)
    if aggregation == "count":
        return Decimal(sum(int(c.get("n", 0)) for c in cells))
    if aggregation == "sum":
        return exact_sum(Decimal(c.get("s", 0)) for c in cells)
    if aggregation == "max":
        values = [Decimal(c["mx"]) for c in cells if c.get("mx") is not None]
        return max(values) if values else Decimal(0)
    if aggregation == "unique_count":
        seen: set[str] = set()
        for c in cells:
            seen.update(str(v) for v in c.get("u") or ())
        return Decimal(len(seen))
    if aggregation == "latest":
        dated = [(str(c["lt"]), Decimal(c["lv"])) for c in cells if c.get("lt") is not None]
        return max(dated)[1] if dated else Decimal(0)
    raise ValueError(f"unknown aggregation {aggregation!r}")


def merge_cells(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several stored parts of one cell (an aggregate and batch contributions) as one cell.

    Example:
        >>> merge_cells([{"n": 2, "s": Decimal("1.5")}, {"n": 1, "s": Decimal("2"), "late_n": 1}])
        {'n': 3, 'late_n': 1, 's': Decimal('3.5')}
    """
    items = list(items)
    merged: dict[str, Any] = {"n": sum(int(i.get("n", 0)) for i in items)}
    late = sum(int(i.get("late_n", 0)) for i in items)
    if late:
        merged["late_n"] = late
    if any(i.get("s") is not None for i in items):
        merged["s"] = exact_sum(Decimal(i["s"]) for i in items if i.get("s") is not None)
    maxima = [Decimal(i["mx"]) for i in items if i.get("mx") is not None]
    if maxima:
        merged["mx"] = max(maxima)
    dated = [(str(i["lt"]), Decimal(i["lv"])) for i in items if i.get("lt") is not None]
    if dated:
        merged["lt"], merged["lv"] = max(dated)
    uniques = {str(v) for i in items for v in i.get("u") or ()}
    if uniques:
        merged["u"] = uniques
    aggregations = {str(i["agg"]) for i in items if i.get("agg")}
    if len(aggregations) == 1:
        merged["agg"] = aggregations.pop()
    return merged


def bucket_of(hour: str, granularity: str) -> str:
    """The bucket an hour (``YYYY-MM-DDTHH``) belongs to: itself, its day, or 'total'."""
    if granularity == "hour":
        return hour
    if granularity == "day":
        return hour[:10]
    return "total"
