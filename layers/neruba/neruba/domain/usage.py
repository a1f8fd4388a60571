"""Combining stored hourly aggregates into the quantity of a meter over any span of hours (no AWS).

Example:
    >>> from decimal import Context, Decimal, localcontext
    >>> combine("sum", [{"n": 2, "s": Decimal("1.5")}, {"n": 1, "s": Decimal("2")}])
    Decimal('3.5')
    >>> combine("unique_count", [{"n": 2, "u": {"a", "b"}}, {"n": 1, "u": {"b"}}])
    Decimal('2')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Context, Decimal, localcontext
from typing import Any


def combine(aggregation: str, cells: Iterable[Mapping[str, Any]]) -> Decimal:
    """The meter's quantity over several aggregate cells (hours and/or groups)."""
    cells = list(cells)
    if aggregation == "count":
        return Decimal(sum(int(c.get("n", 0)) for c in cells))
    if aggregation == "sum":
        with localcontext(Context(prec=100)):  # exact: event numbers carry up to 38 digits each
            return sum((Decimal(c.get("s", 0)) for c in cells), Decimal(0))
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


def bucket_of(hour: str, granularity: str) -> str:
    """The bucket an hour (``YYYY-MM-DDTHH``) belongs to: itself, its day, or 'total'."""
    if granularity == "hour":
        return hour
    if granularity == "day":
        return hour[:10]
    return "total"
