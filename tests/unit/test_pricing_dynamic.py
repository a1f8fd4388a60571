"""Event-priced (dynamic) charges: each event carries its own amount, the meter sums it, the charge bills
the sum times an optional multiplier. Published examples reproduced to the cent, and properties. Rules in
docs/pricing.md ("Event-priced charges")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.money import to_minor
from neruba.domain.numbers import exact_sum
from neruba.domain.pricing import PricingError, price_charge
from neruba.models.catalog import ChargeIn

LAGO_DYNAMIC = "https://getlago.com/docs/guide/plans/charges/charge-models/dynamic"
T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def _line(charge: dict[str, Any], amounts: list[str], currency: str = "USD") -> Any:
    plan = {"code": "p", "version": 1, "currency": currency, "charges": [{"meter_code": "ai", **charge}]}
    total = exact_sum(Decimal(a) for a in amounts)
    (line,) = usage_lines(plan, T0, T1, {"ai": {"": GroupUsage(total, 1, len(amounts))}})
    return line


def test_lago_dynamic_amounts_in_cents_sum_to_3_45() -> None:
    """Lago, "Dynamic" charge model (LAGO_DYNAMIC): three dedicated-instance events carrying total
    amounts of 70, 55 and 220 cents (0.70, 0.55 and 2.20 dollars) bill one fee of $3.45. The events carry
    cents there, so the charge multiplies the summed amount by 0.01."""
    line = _line({"model": "dynamic", "multiplier": "0.01", "free_units": "0"}, ["70", "55", "220"])
    assert line.amount_minor == 345
    assert line.description == "ai (dynamic): the events' amounts, 345, x 0.01"
    assert (line.tiers[0].unit, line.tiers[0].quantity, line.tiers[0].amount) == (
        "amount",
        Decimal(345),
        Decimal("3.45"),
    )


def test_lago_dynamic_amounts_in_dollars_without_multiplier() -> None:
    """Lago, "Dynamic" (LAGO_DYNAMIC): the same events carrying dollars (0.70, 0.55, 2.20) and no
    multiplier: $3.45, whatever units (7, 5 and 10 instances there) each event stands for."""
    line = _line({"model": "dynamic", "multiplier": None, "free_units": "0"}, ["0.70", "0.55", "2.20"])
    assert (line.amount_minor, line.source["multiplier"]) == (345, Decimal(1))


def test_sub_cent_amounts_are_rounded_once_on_the_line() -> None:
    # GIVEN 1,000 events of 0.0004 (a token-priced model call) with a 1.2 markup
    line = _line({"model": "dynamic", "multiplier": "1.2", "free_units": "0"}, ["0.0004"] * 1000)
    # THEN 0.4 x 1.2 = 0.48 -> 48 cents, where rounding each event would bill 0
    assert line.amount_minor == 48


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)),
    st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False),
)
def test_dynamic_is_the_exact_sum_times_the_multiplier(amounts: list[Decimal], multiplier: Decimal) -> None:
    total = exact_sum(amounts)
    priced = price_charge({"model": "dynamic", "multiplier": multiplier}, total, len(amounts))
    assert priced.amount == total * multiplier
    # splitting the events never changes the bill (the sum is exact, rounding is per line)
    half = len(amounts) // 2
    parts = exact_sum(amounts[:half]) + exact_sum(amounts[half:])
    assert to_minor(price_charge({"model": "dynamic", "multiplier": multiplier}, parts).amount, "USD") == (
        to_minor(priced.amount, "USD")
    )


def test_bad_multipliers_are_refused() -> None:
    with pytest.raises(PricingError):
        price_charge({"model": "dynamic", "multiplier": 1.5}, Decimal(1))
    with pytest.raises(PricingError):
        price_charge({"model": "dynamic", "multiplier": "-1"}, Decimal(1))
    with pytest.raises(ValidationError):
        ChargeIn.model_validate({"meter_code": "ai", "model": "dynamic", "multiplier": "-1"})
    with pytest.raises(ValidationError, match=r"a dynamic charge takes exactly \[\]"):
        ChargeIn.model_validate({"meter_code": "ai", "model": "dynamic", "unit_price": "1"})
    ChargeIn.model_validate({"meter_code": "ai", "model": "dynamic"})
