"""Percentage pricing on an amount: published worked examples reproduced to the cent, and properties.

A ``percentage`` charge takes ``rate`` percent of the billable amount (the meter's sum less
``free_units``) plus ``fixed_fee`` for each event past ``free_events``; ``graduated_percentage`` fills
tiers of the amount, each with its own rate and flat fee. Rules in docs/pricing.md ("Percentage pricing").
Each example names the page it follows; the numbers are theirs, the wording ours.
"""

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
from neruba.domain.pricing import PricingError, price_charge
from neruba.models.catalog import ChargeIn

LAGO_PERCENTAGE = "https://getlago.com/docs/guide/plans/charges/charge-models/percentage"
LAGO_GRADUATED_PERCENTAGE = "https://getlago.com/docs/guide/plans/charges/charge-models/graduated-percentage"
LAGO_STRIPE_TEMPLATE = "https://getlago.com/docs/templates/per-transaction/stripe"


def _cents(charge: dict[str, Any], amount: str | int, events: int) -> int:
    return to_minor(price_charge(charge, Decimal(amount), events).amount, "USD")


def test_lago_percentage_transaction_of_50_costs_70_cents() -> None:
    """Lago, "Percentage" charge model (LAGO_PERCENTAGE).

    1.2% of the amount plus a $0.10 fixed fee per transaction: once the free allowance is used up, a
    $50 transaction costs 1.2% x $50 + $0.10 = $0.70.
    """
    # GIVEN the page's rate and fixed fee
    charge = {"model": "percentage", "rate": "1.2", "fixed_fee": "0.10"}
    # WHEN one $50 transaction is priced
    priced = price_charge(charge, Decimal(50), 1)
    # THEN $0.70: a rate row on the amount and a fee row on the one event
    assert to_minor(priced.amount, "USD") == 70
    assert [(t.unit, t.quantity, t.amount) for t in priced.tiers] == [
        ("amount", Decimal(50), Decimal("0.600")),
        ("event", Decimal(1), Decimal("0.10")),
    ]


def test_lago_percentage_first_three_events_pay_no_fixed_fee() -> None:
    """Lago, "Percentage" charge model (LAGO_PERCENTAGE): free units per event are events that pay no
    fixed fee. The page's four transactions ($200, $100, $100, $50) with the first 3 events free pay the
    $0.10 fee once; with no rate on the amount that is the whole charge."""
    # GIVEN a fee-only percentage charge with 3 free events
    charge = {"model": "percentage", "rate": "0", "fixed_fee": "0.10", "free_events": 3}
    # WHEN the period's 4 events (450 in all) are priced
    # THEN only the fourth pays its fee
    assert _cents(charge, 450, 4) == 10
    assert _cents(charge, 400, 3) == 0


@pytest.mark.parametrize(("amount", "total_cents"), [(500, 20500), (1050, 51100), (5050, 59100)])
def test_lago_graduated_percentage_running_totals(amount: int, total_cents: int) -> None:
    """Lago, "Graduated percentage" charge model (LAGO_GRADUATED_PERCENTAGE).

    Tiers: up to 1,000 at 1% with a $200 flat fee, up to 10,000 at 2% with $300, above at 3% with $400.
    Transactions of $500, $550 and $4,000 cost $205, $306 and $80 in turn, so the period's amount after
    each prices to 205, 205 + 306 = 511 and 511 + 80 = 591 dollars.
    """
    # GIVEN the page's tiers
    charge = {
        "model": "graduated_percentage",
        "tiers": [
            {"up_to": "1000", "rate": "1", "flat_fee": "200"},
            {"up_to": "10000", "rate": "2", "flat_fee": "300"},
            {"up_to": None, "rate": "3", "flat_fee": "400"},
        ],
    }
    # WHEN the running amount is priced THEN the page's running totals
    assert _cents(charge, amount, 1) == total_cents


def test_lago_stripe_template_card_rates() -> None:
    """Lago, "Clone Stripe pricing" template (LAGO_STRIPE_TEMPLATE): online card payments at 2.9% plus
    $0.30 per transaction, in-person at 2.7% plus $0.05.

    Two online payments of $100 and $20.55 (120.55 in all) cost 2.9% x 120.55 + 2 x 0.30 = 4.09595, so
    $4.10 (rounded once, on the line); three in-person payments totalling $10 cost 0.27 + 0.15 = $0.42.
    """
    online = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}
    in_person = {"model": "percentage", "rate": "2.7", "fixed_fee": "0.05"}
    assert price_charge(online, Decimal("120.55"), 2).amount == Decimal("4.09595")
    assert _cents(online, "120.55", 2) == 410
    assert _cents(in_person, "10", 3) == 42


def test_free_amount_is_free_units_of_the_amount() -> None:
    # GIVEN 1% with the first 500 of the amount free
    charge = {"model": "percentage", "rate": "1", "free_units": "500"}
    # THEN 450 is free, 1,500 pays on 1,000
    assert _cents(charge, 450, 4) == 0
    assert _cents(charge, 1500, 9) == 1000


def test_the_line_explains_rate_and_fees() -> None:
    # GIVEN a plan with a percentage charge and a period of 4 events totalling 450
    plan = {
        "code": "pay",
        "version": 1,
        "currency": "USD",
        "charges": [
            {
                "meter_code": "volume",
                "model": "percentage",
                "rate": "1.2",
                "fixed_fee": "0.10",
                "free_events": 3,
                "free_units": "0",
            }
        ],
    }
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    (line,) = usage_lines(plan, t0, t1, {"volume": {"": GroupUsage(Decimal(450), 2, 4)}})
    # THEN 1.2% x 450 + 0.10 x 1 = 5.50, and the line says so
    assert line.amount_minor == 550
    assert line.description == "volume (percentage): 1.2% of 450 + 0.1 x 1 of 4 events (3 free)"
    assert (line.source["rate"], line.source["billable_events"], line.source["events"]) == (
        Decimal("1.2"),
        1,
        4,
    )


amounts = st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False)
fees = st.decimals(min_value=0, max_value=10, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(amounts, st.integers(0, 10**6), rates, fees, st.integers(0, 100), amounts)
def test_percentage_is_rate_on_billable_amount_plus_fees_on_billed_events(
    amount: Decimal, events: int, rate: Decimal, fee: Decimal, free_events: int, free_amount: Decimal
) -> None:
    charge = {
        "model": "percentage",
        "rate": rate,
        "fixed_fee": fee,
        "free_events": free_events,
        "free_units": free_amount,
    }
    priced = price_charge(charge, amount, events)
    # exact, as the formula says (no rounding before the line's)
    expected = max(Decimal(0), amount - free_amount) * rate / 100 + max(0, events - free_events) * fee
    assert priced.amount == expected
    assert priced.amount == sum((t.amount for t in priced.tiers), Decimal(0))
    # more amount or more events never costs less
    assert price_charge(charge, amount + 1, events).amount >= priced.amount
    assert price_charge(charge, amount, events + 1).amount >= priced.amount


@settings(max_examples=100, deadline=None)
@given(amounts, st.lists(rates, min_size=1, max_size=4), st.integers(1, 10**6))
def test_graduated_percentage_equals_graduated_at_rate_over_100(
    amount: Decimal, tier_rates: list[Decimal], step: int
) -> None:
    bounds: list[str | None] = [str(step * (i + 1)) for i in range(len(tier_rates) - 1)] + [None]
    by_rate = [{"up_to": b, "rate": r, "flat_fee": "1"} for b, r in zip(bounds, tier_rates, strict=True)]
    by_price = [
        {"up_to": b, "unit_price": r / 100, "flat_fee": "1"} for b, r in zip(bounds, tier_rates, strict=True)
    ]
    graduated_percentage = price_charge({"model": "graduated_percentage", "tiers": by_rate}, amount)
    graduated = price_charge({"model": "graduated", "tiers": by_price}, amount)
    assert graduated_percentage.amount == graduated.amount


def test_bad_percentage_inputs_are_refused() -> None:
    with pytest.raises(PricingError):
        price_charge({"model": "percentage", "rate": 1.2}, Decimal(1), 1)  # a float rate
    with pytest.raises(PricingError):
        price_charge({"model": "percentage", "rate": "-1"}, Decimal(1), 1)
    with pytest.raises(PricingError):
        price_charge({"model": "percentage", "rate": "1"}, Decimal(1), -1)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"model": "percentage"}, "takes exactly ['rate']"),
        ({"model": "percentage", "rate": "1", "unit_price": "1"}, "takes exactly ['rate']"),
        ({"model": "per_unit", "unit_price": "1", "fixed_fee": "1"}, "takes exactly ['unit_price']"),
        ({"model": "percentage", "rate": "1001"}, None),
        ({"model": "percentage", "rate": "1", "free_events": -1}, None),
        (
            {"model": "graduated_percentage", "tiers": [{"up_to": None, "unit_price": "1"}]},
            "has a rate and no unit_price",
        ),
        (
            {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "1", "rate": "1"}]},
            "has a unit_price and no rate",
        ),
    ],
)
def test_charge_bodies_that_break_a_percentage_rule_are_refused(
    body: dict[str, Any], rule: str | None
) -> None:
    with pytest.raises(ValidationError) as caught:
        ChargeIn.model_validate({"meter_code": "volume", **body})
    if rule:
        assert rule in str(caught.value)


def test_percentage_charge_bodies_are_accepted() -> None:
    ChargeIn.model_validate(
        {"meter_code": "v", "model": "percentage", "rate": "2.9", "fixed_fee": "0.3", "free_events": 3}
    )
    ChargeIn.model_validate(
        {"meter_code": "v", "model": "graduated_percentage", "tiers": [{"up_to": None, "rate": "1"}]}
    )
