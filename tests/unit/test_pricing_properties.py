"""Property tests of the pricing engine (hypothesis): monotonic graduated totals, model agreement,
package arithmetic, subtotals, and no float anywhere on the path."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.pricing import PricingError, RatedWindow, exact, price_charge
from neruba.domain.window_rating import rate_subscription_window

prices = st.decimals(min_value=0, max_value=1000, places=5, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw: Any) -> list[dict[str, Any]]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), min_size=0, max_size=5)))
    rows = [{"up_to": str(b), "unit_price": str(draw(prices)), "flat_fee": str(draw(prices))} for b in bounds]
    return [*rows, {"up_to": None, "unit_price": str(draw(prices)), "flat_fee": str(draw(prices))}]


@settings(max_examples=200, deadline=None)
@given(tiers=tier_lists(), a=quantities, b=quantities)
def test_graduated_totals_never_decrease_with_quantity(
    tiers: list[dict[str, Any]], a: Decimal, b: Decimal
) -> None:
    # GIVEN a graduated charge and two quantities lo <= hi
    lo, hi = sorted((a, b))
    charge = {"model": "graduated", "tiers": tiers}
    # WHEN both are priced
    # THEN the larger quantity never costs less
    assert price_charge(charge, lo).amount <= price_charge(charge, hi).amount


@settings(max_examples=200, deadline=None)
@given(price=prices, flat=prices, quantity=quantities, free=quantities)
def test_volume_and_graduated_agree_on_a_single_tier(
    price: Decimal, flat: Decimal, quantity: Decimal, free: Decimal
) -> None:
    # GIVEN one open tier, priced both ways, with free units
    tiers = [{"up_to": None, "unit_price": str(price), "flat_fee": str(flat)}]
    # THEN the two models give the same exact amount
    graduated = price_charge({"model": "graduated", "tiers": tiers, "free_units": str(free)}, quantity)
    volume = price_charge({"model": "volume", "tiers": tiers, "free_units": str(free)}, quantity)
    assert graduated.amount == volume.amount


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 10**6), price=prices, quantity=quantities)
def test_package_is_ceil_of_quantity_over_size_times_price(
    size: int, price: Decimal, quantity: Decimal
) -> None:
    # GIVEN a package charge
    priced = price_charge({"model": "package", "package_size": size, "package_price": str(price)}, quantity)
    # THEN the amount is ceil(quantity / size) packages at the package price
    packages = math.ceil(quantity / size) if quantity else 0
    assert priced.amount == packages * price


@settings(max_examples=100, deadline=None)
@given(
    tiers=tier_lists(),
    unit_price=prices,
    fee=prices,
    groups=st.dictionaries(st.sampled_from(["", "m=a", "m=b", "m=c"]), quantities, max_size=4),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_lines_are_exact_and_add_up_to_the_subtotal(
    tiers: list[dict[str, Any]], unit_price: Decimal, fee: Decimal, groups: dict[str, Decimal], currency: str
) -> None:
    # GIVEN a plan with a graduated and a per-unit charge and an arrears fixed fee
    version = {
        "code": "p",
        "version": 1,
        "currency": currency,
        "fixed_fee": {"amount": str(fee), "timing": "arrears"},
        "minimum_commitment": "50",
        "charges": [
            {"meter_code": "a", "model": "graduated", "tiers": tiers, "free_units": "10"},
            {"meter_code": "b", "model": "per_unit", "unit_price": str(unit_price)},
        ],
    }
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    sub = {
        "id": "sub_x",
        "customer_id": "acme",
        "currency": currency,
        "interval": "month",
        "start_at": start.isoformat(),
        "phases": [{"plan_code": "p", "plan_version": 1, "start_at": start.isoformat(), "end_at": None}],
    }
    usage = {0: {"a": {k: GroupUsage(q) for k, q in groups.items()}, "b": {"": GroupUsage(Decimal(7))}}}
    # WHEN the window is rated
    window = rate_subscription_window(sub, {("p", 1): version}, start, end, usage)
    # THEN every amount is an int, every price and quantity a Decimal, and the lines sum to the subtotal
    assert window.subtotal_minor == sum(line.amount_minor for line in window.lines)
    for line in window.lines:
        assert type(line.amount_minor) is int
        assert isinstance(line.quantity, Decimal)
        assert line.unit_price is None or isinstance(line.unit_price, Decimal)
        for tier in line.tiers:
            assert all(
                isinstance(v, Decimal) for v in (tier.quantity, tier.unit_price, tier.flat_fee, tier.amount)
            )
    _assert_no_float(window.to_dict())


def _assert_no_float(value: Any) -> None:
    assert not isinstance(value, float)
    if isinstance(value, dict):
        for item in value.values():
            _assert_no_float(item)
    elif isinstance(value, list):
        for item in value:
            _assert_no_float(item)


@pytest.mark.parametrize(
    "charge",
    [
        {"model": "per_unit", "unit_price": 0.1},
        {"model": "per_unit", "unit_price": "1", "free_units": 2.5},
        {"model": "graduated", "tiers": [{"up_to": None, "unit_price": 0.5}]},
        {"model": "package", "package_size": 10, "package_price": 1.5},
    ],
)
def test_a_float_price_is_refused(charge: dict[str, Any]) -> None:
    # GIVEN a charge carrying a float  WHEN priced  THEN it is refused, not rounded through binary floats
    with pytest.raises(PricingError, match="float"):
        price_charge(charge, Decimal(3))


def test_a_float_quantity_is_refused() -> None:
    with pytest.raises(PricingError):
        price_charge({"model": "per_unit", "unit_price": "1"}, 3.0)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match="float"):
        exact(1.5)


def test_a_window_whose_subtotal_disagrees_with_its_lines_cannot_be_built() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    lines = usage_lines(
        {
            "code": "p",
            "version": 1,
            "currency": "USD",
            "charges": [{"meter_code": "a", "model": "per_unit", "unit_price": "1"}],
        },
        start,
        end,
        {"a": {"": GroupUsage(Decimal(3))}},
    )
    assert RatedWindow.of("USD", lines, start, end).subtotal_minor == 300
    with pytest.raises(PricingError):
        RatedWindow("USD", lines, 301, start, end)
