"""The min and average aggregations: how a cell keeps them, how cells merge and combine over a span, and
what a charge bills on them. Published examples reproduced, and properties (exactness of the average's
one division against exact fractions). Rules in docs/pricing.md ("Aggregations: min and average")."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.ingest import GroupTotals
from neruba.domain.money import to_minor
from neruba.domain.pricing import price_charge
from neruba.domain.usage import CellUsage, combine, merge_cells, usage_of

FLEXPRICE_AVERAGE = "https://docs.flexprice.io/docs/product-catalogue/features/aggregation/average"


def _cells(aggregation: str, batches: list[list[str]]) -> list[CellUsage]:
    """One stored part per batch, as ingest writes them."""
    parts = []
    for n, batch in enumerate(batches):
        totals = GroupTotals()
        for i, value in enumerate(batch):
            totals.add(f"t{n}-{i}", aggregation, "2026-01-01T00:00:00", Decimal(value))
        parts.append(usage_of(aggregation, totals))
    return parts


def test_flexprice_average_of_six_response_times_is_16_5() -> None:
    """Flexprice, AVERAGE aggregation (FLEXPRICE_AVERAGE): response times of 10, 20, 30, 40, -1 and 0 ms
    average to 99 / 6 = 16.5 ms (a negative value counts, on a meter that allows negative values)."""
    # GIVEN the six events counted by two batches in two hours
    hour_one = merge_cells(_cells("average", [["10", "20"], ["30"]]))
    hour_two = merge_cells(_cells("average", [["40", "-1", "0"]]))
    # THEN the period's average is over all six events, not an average of the hours' averages
    assert combine("average", [hour_one, hour_two]) == Decimal("16.5")
    # AND priced at 0.10 per ms of average response time: 1.65
    assert (
        to_minor(price_charge({"model": "per_unit", "unit_price": "0.10"}, Decimal("16.5")).amount, "USD")
        == 165
    )


def test_min_is_the_smallest_value_over_all_parts_and_hours() -> None:
    hour_one = merge_cells(_cells("min", [["7", "3.5"], ["9"]]))
    hour_two = merge_cells(_cells("min", [["4"]]))
    assert hour_one.minimum == Decimal("3.5")
    assert combine("min", [hour_one, hour_two]) == Decimal("3.5")
    assert combine("min", []) == 0 and combine("average", []) == 0


values = st.lists(
    st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(values, st.integers(1, 4), st.decimals(min_value=0, max_value=100, places=5, allow_nan=False))
def test_average_prices_as_exact_fractions_would(amounts: list[Decimal], parts: int, price: Decimal) -> None:
    batches = [[str(v) for v in amounts[i::parts]] for i in range(parts)]
    merged = merge_cells(_cells("average", [b for b in batches if b]))
    quantity = combine("average", [merged])
    # the exact mean as a fraction, priced and rounded half-up to cents with fractions only
    exact = sum((Fraction(v) for v in amounts), Fraction(0)) / len(amounts)
    billed = max(exact, Fraction(0)) * Fraction(price) * 100
    whole, rest = divmod(billed.numerator, billed.denominator)
    expected = whole + (1 if 2 * rest >= billed.denominator else 0)
    got = to_minor(
        price_charge({"model": "per_unit", "unit_price": price}, max(quantity, Decimal(0))).amount, "USD"
    )
    assert got == expected, quantity
    # min and max agree with Python's over the same parts
    assert combine("min", [merge_cells(_cells("min", [b for b in batches if b]))]) == min(amounts)
