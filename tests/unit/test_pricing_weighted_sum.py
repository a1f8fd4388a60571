"""The weighted_sum aggregation: events report changes of a level, the quantity is the level's integral
over the period part divided by the period's length. Each cell keeps two exact sums, so batches and
hours merge in any order. Published example reproduced, and properties against exact fractions. Rules in
docs/pricing.md ("Aggregations")."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.ingest import GroupTotals, hour_bucket, hour_start
from neruba.domain.money import to_minor
from neruba.domain.pricing import price_charge
from neruba.domain.usage import CellUsage, merge_cells, usage_of, weighted_level

LAGO_WEIGHTED_SUM = "https://docs.getlago.com/guide/billable-metrics/aggregation-types/weighted-sum"
JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
MONTH = Decimal(2_678_400)


def _cells(changes: list[tuple[datetime, Decimal]], batches: int = 1) -> list[tuple[datetime, CellUsage]]:
    """The cells ingest stores for ``changes``: per hour, one part per batch, merged as rating reads them."""
    parts: dict[tuple[str, int], GroupTotals] = {}
    for n, (at, change) in enumerate(changes):
        totals = parts.setdefault((hour_bucket(at), n % batches), GroupTotals())
        totals.add(f"t{n}", "weighted_sum", at.isoformat(), change)
    hours = sorted({hour for hour, _ in parts})
    return [
        (
            hour_start(hour),
            merge_cells(usage_of("weighted_sum", t) for (h, _), t in parts.items() if h == hour),
        )
        for hour in hours
    ]


def test_lago_20_gb_for_a_day_then_30_gb_for_15_days() -> None:
    """Lago, weighted sum (LAGO_WEIGHTED_SUM): in a month of 2,678,400 seconds, 20 GB held for a day
    (86,400 s) then 30 GB (20 + 10) for 15 days (1,296,000 s) to the month's end weigh
    20 x 86,400 / 2,678,400 + 30 x 1,296,000 / 2,678,400 = 15.1612903226..."""
    changes = [(JAN + timedelta(days=15), Decimal(20)), (JAN + timedelta(days=16), Decimal(10))]
    quantity = weighted_level(_cells(changes), JAN, FEB, Decimal(0), MONTH)
    assert str(quantity).startswith("15.1612903225806451612903225806")
    assert Fraction(quantity).limit_denominator(1000) == Fraction(470, 31)
    # priced at 1.00 per GB-month: 15.16
    assert to_minor(price_charge({"model": "per_unit", "unit_price": "1"}, quantity).amount, "USD") == 1516


def test_a_removal_and_an_opening_level() -> None:
    # GIVEN 4 seats held from the part's start, +2 at mid-month, -3 ten days before the end
    changes = [(JAN + timedelta(days=15, hours=12), Decimal(2)), (FEB - timedelta(days=10), Decimal(-3))]
    quantity = weighted_level(_cells(changes), JAN, FEB, Decimal(4), MONTH)
    # THEN (4 x 31 + 2 x 15.5 - 3 x 10) / 31 = 125 / 31 seat-months
    assert Fraction(quantity).limit_denominator(1000) == Fraction(125, 31)


changes = st.lists(
    st.tuples(
        st.integers(0, 2_678_399_999_999),  # microseconds into January
        st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(changes, st.integers(1, 4), st.integers(0, 2**32))
def test_any_batching_and_order_gives_the_exact_integral(
    raw: list[tuple[int, Decimal]], batches: int, seed: int
) -> None:
    events = [(JAN + timedelta(microseconds=us), change) for us, change in raw]
    random.Random(seed).shuffle(events)  # arrival order does not matter
    quantity = weighted_level(_cells(events, batches), JAN, FEB, Decimal(0), MONTH)
    exact = sum(
        (
            Fraction(change) * Fraction((FEB - at) // timedelta(microseconds=1), 10**6)
            for at, change in events
        ),
        Fraction(0),
    ) / Fraction(MONTH)
    # exact to 100 significant digits, so cents come out as with fractions
    assert abs(Fraction(quantity) - exact) <= abs(exact) * Fraction(1, 10**98) + Fraction(1, 10**120)
    price = Fraction(37, 100)
    billed = max(exact, Fraction(0)) * price * 100
    whole, rest = divmod(billed.numerator, billed.denominator)
    expected = whole + (1 if 2 * rest >= billed.denominator else 0)
    got = to_minor(
        price_charge({"model": "per_unit", "unit_price": "0.37"}, max(quantity, Decimal(0))).amount, "USD"
    )
    assert got == expected
