"""Rating is total: whatever quantity an aggregate yields (negative, zero, tiny, huge, many decimals,
the sum of far-apart magnitudes), every pricing model rates it to a line without raising; a net
negative quantity rates to zero with a line saying so; an amount too large to bill is flagged, never
raised."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neruba.domain.lines import MAX_LINE_MINOR, GroupUsage, usage_lines
from neruba.domain.usage import CellUsage, combine

T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
TIERS = [
    {"up_to": "100", "unit_price": "0.5", "flat_fee": "1"},
    {"up_to": "1000.5", "unit_price": "0.25", "flat_fee": "0"},
    {"up_to": None, "unit_price": "0.000000000001", "flat_fee": "0"},
]
CHARGES = {
    "per_unit": {
        "model": "per_unit",
        "unit_price": "123456789012345678.123456789012",
        "free_units": "0.000001",
    },
    "graduated": {"model": "graduated", "tiers": TIERS, "free_units": "10"},
    "volume": {"model": "volume", "tiers": TIERS, "free_units": "0"},
    "package": {"model": "package", "package_size": 7, "package_price": "3.3", "free_units": "0.5"},
}
EDGES = [
    "-10", "-1E+125", "-0.000001", "0", "0E-30", "1E-130", "0.000000000000000000000000000001",
    "99999999999999999999999999999999999999", "1E+125", "9.999999999999999999999999999999999999E+125",
    "12345678901234567890.123456789012345678",
]  # fmt: skip
NUMBERS = st.one_of(
    st.sampled_from(EDGES).map(Decimal),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9),
)


def _cells(values: list[Decimal]) -> list[CellUsage]:
    return [
        CellUsage(1, total=v, maximum=v, latest_at=f"2026-01-01T00:00:{i:02d}", latest=v)
        for i, v in enumerate(values)
    ]


def plan(model: str) -> dict[str, object]:
    return {"code": "p", "version": 1, "currency": "USD", "charges": [{"meter_code": "m", **CHARGES[model]}]}


@given(
    model=st.sampled_from(sorted(CHARGES)),
    aggregation=st.sampled_from(["sum", "max", "latest", "count", "unique_count"]),
    values=st.lists(NUMBERS, min_size=1, max_size=6),
)
def test_every_model_rates_every_aggregate_without_raising(
    model: str, aggregation: str, values: list[Decimal]
) -> None:
    cells = _cells(values)
    if aggregation == "unique_count":
        cells = [CellUsage(1, uniques=frozenset({str(v)})) for v in values]
    quantity = combine(aggregation, cells)
    (line,) = usage_lines(plan(model), T0, T1, {"m": {"": GroupUsage(quantity, 1, len(values))}})
    assert isinstance(line.amount_minor, int) and 0 <= line.amount_minor <= MAX_LINE_MINOR
    assert line.quantity >= 0
    if quantity < 0:
        assert line.quantity == 0 and line.amount_minor == 0
        assert "negative" in line.description and line.source["net_quantity"] == quantity


@pytest.mark.parametrize("model", sorted(CHARGES))
def test_a_net_negative_quantity_rates_to_zero_with_a_line_that_says_so(model: str) -> None:
    (line,) = usage_lines(plan(model), T0, T1, {"m": {"": GroupUsage(Decimal("-7"), 2, 3)}})
    assert (line.quantity, line.amount_minor) == (0, 0)
    assert "net usage was negative (-7)" in line.description
    assert line.source["net_quantity"] == Decimal(-7) and line.source["billable_quantity"] == 0


def test_an_amount_too_large_to_bill_is_flagged_not_raised() -> None:
    with localcontext(Context(prec=200)):
        huge = Decimal("9.999999999999999999999999999999999999E+125") * 3
    (line,) = usage_lines(plan("per_unit"), T0, T1, {"m": {"": GroupUsage(huge, 3, 3)}})
    assert line.amount_minor == 0 and line.source["unbillable"] == "amount_too_large"
    assert "too large" in line.description
