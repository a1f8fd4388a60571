"""The amount of a meter's usage under an amount cap (domain.limit_amounts): for every pricing model a
running total can decide, the amount the decisions leave is the invoice line of the admitted usage, and
the cap is never passed (docs/limits.md, "Caps and alerts in amounts")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.limit_amounts import Period, Price, amount_of, decide, unsupported
from neruba.domain.lines import rate_quantity

CHARGES: dict[str, dict[str, Any]] = {
    "per_unit": {"model": "per_unit", "unit_price": "0.00025", "free_units": "3"},
    "graduated": {
        "model": "graduated",
        "tiers": [
            {"up_to": "10", "unit_price": "1", "flat_fee": "2"},
            {"up_to": None, "unit_price": "0.5", "flat_fee": "1"},
        ],
    },
    "volume": {
        "model": "volume",
        "tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": None, "unit_price": "0.25"}],
    },
    "package": {"model": "package", "package_size": 5, "package_price": "3.33"},
    "percentage": {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30", "free_events": "2"},
    "graduated_percentage": {
        "model": "graduated_percentage",
        "tiers": [{"up_to": "100", "rate": "1"}, {"up_to": None, "rate": "0.5", "flat_fee": "1"}],
    },
    "dynamic": {"model": "dynamic", "multiplier": "1.2"},
    "pricing_unit": {
        "model": "per_unit",
        "unit_price": "1",
        "pricing_unit": {"code": "credits", "conversion_rate": "0.013"},
    },
}

VALUES = st.lists(
    st.decimals(min_value=Decimal("-2"), max_value=Decimal("40"), places=2, allow_nan=False), max_size=25
)


@pytest.mark.parametrize("name", sorted(CHARGES))
@settings(max_examples=60, deadline=None)
@given(values=VALUES, cap=st.integers(min_value=0, max_value=6000))
def test_the_decided_amount_is_the_invoice_line_of_the_admitted_usage(
    name: str, values: list[Decimal], cap: int
) -> None:
    charge = {"meter_code": "m", **CHARGES[name]}
    price = Price(charge, "USD")
    decisions = decide(Period(), None, cap, [(v, price) for v in values])
    admitted = [v for v, d in zip(values, decisions, strict=True) if d.admitted]
    final = decisions[-1].after if decisions else Period()
    quantity = sum(admitted, Decimal(0))
    line = rate_quantity(charge, quantity, "USD", len(admitted)).amount_minor
    assert (final.used, final.events, final.amount) == (quantity, len(admitted), line)
    for decision in decisions:  # every state an admitted event left is within the cap
        assert decision.after.amount <= cap or decision.after == Period()


def test_an_event_on_the_cap_is_admitted_and_the_next_refused_whole() -> None:
    price = Price({"meter_code": "m", "model": "per_unit", "unit_price": "0.10"}, "USD")
    flags = [d.admitted for d in decide(Period(), None, 30, [(Decimal(1), price)] * 4)]
    assert flags == [True, True, True, False]
    # a unit cap and an amount cap: an event must fit both
    both = [d.admitted for d in decide(Period(), Decimal(2), 30, [(Decimal(1), price)] * 3)]
    assert both == [True, True, False]


def test_an_event_without_a_price_adds_units_but_no_amount_and_is_not_refused() -> None:
    price = Price({"meter_code": "m", "model": "per_unit", "unit_price": "1"}, "USD")
    decisions = decide(Period(), None, 250, [(Decimal(2), price), (Decimal(5), None), (Decimal(1), price)])
    assert [(d.admitted, d.after.amount) for d in decisions] == [(True, 200), (True, 200), (False, 200)]


def test_half_a_minor_unit_rounds_up_once_on_the_period() -> None:
    price = Price({"meter_code": "m", "model": "per_unit", "unit_price": "0.005"}, "USD")
    assert [amount_of(price, Decimal(n), n) for n in (1, 2, 3)] == [1, 1, 2]  # 0.5, 1.0, 1.5 cents


@pytest.mark.parametrize(
    ("charge", "group_by", "why"),
    [
        ({"model": "per_unit", "unit_price": "1"}, ["region"], "group_by"),
        ({"model": "per_unit", "unit_price": "1", "filters": [{"values": {"r": ["eu"]}}]}, [], "filters"),
        ({"model": "percentage", "rate": "1", "per_event_max": "5"}, [], "per_event"),
    ],
)
def test_prices_a_running_total_cannot_decide_are_named(
    charge: dict[str, Any], group_by: list[str], why: str
) -> None:
    reason = unsupported(charge, group_by)
    assert reason is not None and why in reason
    assert unsupported({"model": "per_unit", "unit_price": "1"}, []) is None


def test_an_event_lowering_the_usage_fits_above_both_caps() -> None:
    """A negative quantity lowers the usage and the amount: it fits even when the period is above the unit
    cap and the amount cap (both lowered under what was counted); a zero one does not move either and is
    refused above them (docs/limits.md, "Events that lower the usage")."""
    price = Price({"model": "per_unit", "unit_price": "1"}, "USD")
    seen = Period(Decimal(7), 3, 700)
    decisions = decide(seen, Decimal(5), 500, [(Decimal(-1), price), (Decimal(0), price)])
    assert [(d.admitted, d.after.used, d.after.amount) for d in decisions] == [
        (True, Decimal(6), 600),
        (False, Decimal(6), 600),
    ]
    only_amount = decide(seen, None, 500, [(Decimal(-1), price)])
    assert only_amount[0].admitted and only_amount[0].after.amount == 600


def test_the_unit_rule_admits_a_lowering_event_above_the_cap() -> None:
    from neruba.domain.limits import decide as decide_units

    assert decide_units(Decimal(7), Decimal(5), [Decimal(-1), Decimal(0), Decimal(-2), Decimal(1)]) == [
        True,
        False,
        True,
        True,
    ]


def test_a_negative_event_raising_the_amount_by_its_fee_is_refused_above_the_amount_cap() -> None:
    """Under a percentage price with a fixed fee per event, a negative quantity still adds the fee: it does
    not lower the amount, so above (or past) the amount cap it is refused like any raising event."""
    price = Price({"model": "percentage", "rate": "0", "fixed_fee": "0.30"}, "USD")
    seen = Period(Decimal(5), 2, 60)
    (refused,) = decide(seen, None, 60, [(Decimal(-1), price)])
    (admitted,) = decide(seen, None, 90, [(Decimal(-1), price)])
    assert (refused.admitted, refused.after) == (False, seen)
    assert (admitted.admitted, admitted.after.amount) == (True, 90)
