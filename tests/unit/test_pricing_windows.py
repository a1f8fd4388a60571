"""Rating rules: free units per model, currencies, sub-cent prices, proration, minimum commitment,
the window rule (advance fee of the next period) and the opening window."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.pricing import price_charge
from neruba.domain.window_rating import rate_opening_window, rate_subscription_window

JAN, FEB, MAR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))
MID_JAN = datetime(2026, 1, 11, tzinfo=UTC)  # 10 of January's 31 days are before it


def version(code: str = "pro", number: int = 1, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "version": number,
        "name": code.title(),
        "currency": currency,
        "charges": [],
        **extra,
    }


def subscription(*phases: tuple[str, int, datetime, datetime | None], **extra: Any) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "customer_id": "acme",
        "currency": extra.pop("currency", "USD"),
        "interval": "month",
        "start_at": phases[0][2].isoformat(),
        "status": "active",
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [
            {
                "plan_code": c,
                "plan_version": v,
                "start_at": s.isoformat(),
                "end_at": e.isoformat() if e else None,
            }
            for c, v, s, e in phases
        ],
        **extra,
    }


def by_id(window: Any) -> dict[str, Any]:
    return {line.line_id: line for line in window.lines}


# ---------------------------------------------------------------- free units with each model
@pytest.mark.parametrize(
    ("charge", "expected"),
    [
        ({"model": "per_unit", "unit_price": "2"}, Decimal(10)),  # 5 billable x 2
        # tiers count billable units: the 5 billable units are the first 5 units of the first tier
        (
            {
                "model": "graduated",
                "tiers": [
                    {"up_to": "3", "unit_price": "2", "flat_fee": "1"},
                    {"up_to": None, "unit_price": "1", "flat_fee": "4"},
                ],
            },
            Decimal(3 * 2 + 1 + 2 * 1 + 4),
        ),
        (
            {
                "model": "volume",
                "tiers": [
                    {"up_to": "3", "unit_price": "2"},
                    {"up_to": None, "unit_price": "1", "flat_fee": "4"},
                ],
            },
            Decimal(5 + 4),
        ),
        ({"model": "package", "package_size": 2, "package_price": "3"}, Decimal(9)),  # ceil(5/2)=3 packages
    ],
)
def test_free_units_are_deducted_before_the_model_applies(charge: dict[str, Any], expected: Decimal) -> None:
    # GIVEN 8 units and 3 free units
    priced = price_charge({**charge, "free_units": "3"}, Decimal(8))
    # THEN the model prices the 5 billable units as if they were the whole usage
    assert priced.billable == 5
    assert priced.amount == expected


@pytest.mark.parametrize("model", ["per_unit", "graduated", "volume", "package"])
def test_usage_within_the_free_units_costs_nothing(model: str) -> None:
    charge = {
        "per_unit": {"unit_price": "2"},
        "graduated": {"tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "5"}]},
        "volume": {"tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "5"}]},
        "package": {"package_size": 10, "package_price": "3"},
    }[model]
    # GIVEN usage below the free allowance  THEN no unit and no flat fee is charged
    priced = price_charge({"model": model, **charge, "free_units": "100"}, Decimal(100))
    assert (priced.billable, priced.amount, priced.tiers) == (0, 0, [])


def test_graduated_flat_fee_is_charged_for_each_tier_reached() -> None:
    charge = {
        "model": "graduated",
        "tiers": [
            {"up_to": "10", "unit_price": "0", "flat_fee": "5"},
            {"up_to": "20", "unit_price": "1", "flat_fee": "7"},
            {"up_to": None, "unit_price": "0.5", "flat_fee": "9"},
        ],
    }
    # 10 units stay in the first tier; 10.5 puts half a unit into the second, which brings its flat fee
    assert price_charge(charge, Decimal(10)).amount == 5
    assert price_charge(charge, Decimal("10.5")).amount == Decimal("12.5")
    assert price_charge(charge, Decimal(0)).amount == 0


# ---------------------------------------------------------------- currencies and sub-cent prices
def _one_line(currency: str, price: str, quantity: str) -> int:
    plan = version(currency=currency, charges=[{"meter_code": "m", "model": "per_unit", "unit_price": price}])
    (line,) = usage_lines(plan, JAN, FEB, {"m": {"": GroupUsage(Decimal(quantity))}})
    return line.amount_minor


def test_sub_cent_unit_prices_round_once_per_line() -> None:
    # 1,234 calls at $0.00025 = $0.3085 -> 31 cents (half-up on the line, not per call)
    assert _one_line("USD", "0.00025", "1234") == 31
    # 2 calls at $0.00025 = $0.0005 -> 0 cents; 20 calls = $0.005 -> 1 cent (half-up)
    assert _one_line("USD", "0.00025", "2") == 0
    assert _one_line("USD", "0.00025", "20") == 1


def test_zero_decimal_currency_jpy() -> None:
    # 3 units at 0.5 yen = 1.5 yen -> 2 yen (no minor unit below the yen)
    assert _one_line("JPY", "0.5", "3") == 2
    assert _one_line("JPY", "120", "7") == 840


def test_three_decimal_currency_kwd() -> None:
    # 7 units at 0.0125 KWD = 0.0875 KWD -> 88 fils (1 KWD = 1000 fils)
    assert _one_line("KWD", "0.0125", "7") == 88
    assert _one_line("BHD", "1.2345", "1") == 1235


# ---------------------------------------------------------------- fixed fees and the window rule
def test_advance_fee_of_the_next_period_is_on_this_window() -> None:
    # GIVEN an advance fee of 30 and a subscription running on
    sub = subscription(("pro", 1, JAN, None))
    plans = {("pro", 1): version(fixed_fee={"amount": "30", "timing": "advance"})}
    # WHEN January is rated
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, {}))
    # THEN it carries February's advance fee, covering February
    fee = lines["fixed_fee:advance:0"]
    assert (fee.amount_minor, fee.period_start, fee.period_end) == (3000, FEB, MAR)


@pytest.mark.parametrize(
    "ending",
    [
        {"cancel_at_period_end": True, "canceled_at": "2026-01-20T00:00:00+00:00"},
        {
            "status": "canceled",
            "ended_at": "2026-02-01T00:00:00+00:00",
            "canceled_at": "2026-01-20T00:00:00+00:00",
        },
    ],
)
def test_no_next_advance_fee_when_the_subscription_ends_with_the_window(ending: dict[str, Any]) -> None:
    sub = subscription(("pro", 1, JAN, None), **ending)
    plans = {("pro", 1): version(fixed_fee={"amount": "30", "timing": "advance"})}
    assert rate_subscription_window(sub, plans, JAN, FEB, {}).lines == []


def test_arrears_fee_is_billed_for_the_window_itself() -> None:
    sub = subscription(("pro", 1, JAN, None))
    plans = {("pro", 1): version(fixed_fee={"amount": "30", "timing": "arrears"})}
    (fee,) = rate_subscription_window(sub, plans, JAN, FEB, {}).lines
    assert (fee.line_id, fee.amount_minor, fee.period_start, fee.period_end) == (
        "fixed_fee:arrears:0",
        3000,
        JAN,
        FEB,
    )


def test_opening_window_bills_the_first_advance_fee() -> None:
    sub = subscription(("pro", 1, JAN, None))
    window = rate_opening_window(sub, {("pro", 1): version(fixed_fee={"amount": "30", "timing": "advance"})})
    assert window.kind == "opening"
    assert [(x.amount_minor, x.period_start, x.period_end) for x in window.lines] == [(3000, JAN, FEB)]
    arrears = rate_opening_window(sub, {("pro", 1): version(fixed_fee={"amount": "30", "timing": "arrears"})})
    assert arrears.lines == [] and arrears.subtotal_minor == 0


# ---------------------------------------------------------------- proration on a plan change
def test_plan_change_mid_period_with_advance_fees_credits_and_charges_by_time() -> None:
    # GIVEN pro at 31.00 in advance, changed to max at 62.00 in advance on 11 January (21 of 31 days left)
    sub = subscription(("pro", 1, JAN, MID_JAN), ("max", 1, MID_JAN, None))
    plans = {
        ("pro", 1): version(fixed_fee={"amount": "31.00", "timing": "advance"}),
        ("max", 1): version("max", fixed_fee={"amount": "62.00", "timing": "advance"}),
    }
    # WHEN January is rated
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, {}))
    # THEN pro's unused 21 days are credited, max's 21 days charged, and February's fee is max's
    credit, charge = lines["proration:credit:0"], lines["proration:charge:1"]
    assert (credit.amount_minor, credit.period_start, credit.period_end) == (-2100, MID_JAN, FEB)
    assert (charge.amount_minor, charge.period_start, charge.period_end) == (4200, MID_JAN, FEB)
    assert (charge.plan_code, credit.plan_code) == ("max", "pro")
    assert lines["fixed_fee:advance:1"].amount_minor == 6200
    assert lines["fixed_fee:advance:1"].plan_code == "max"


def test_proration_uses_exact_seconds_and_rounds_once() -> None:
    # GIVEN a change 1/3 of the way through a 30-day period (10 days): 10.00 in arrears under each version
    start, end = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    at = datetime(2026, 4, 11, tzinfo=UTC)
    sub = subscription(("a", 1, start, at), ("b", 1, at, None))
    plans = {
        ("a", 1): version("a", fixed_fee={"amount": "10", "timing": "arrears"}),
        ("b", 1): version("b", fixed_fee={"amount": "10", "timing": "arrears"}),
    }
    lines = by_id(rate_subscription_window(sub, plans, start, end, {}))
    # THEN 10 x 1/3 = 3.333.. -> 333 and 10 x 2/3 = 6.666.. -> 667 (each line rounded once)
    assert lines["fixed_fee:arrears:0"].amount_minor == 333
    assert lines["fixed_fee:arrears:1"].amount_minor == 667
    assert lines["fixed_fee:arrears:0"].source["seconds"] == 10 * 86400


def test_usage_is_rated_under_each_version_for_its_own_part() -> None:
    # GIVEN usage of 100 calls before the change and 50 after, at different unit prices
    sub = subscription(("pro", 1, JAN, MID_JAN), ("pro", 2, MID_JAN, None))
    plans = {
        ("pro", 1): version(charges=[{"meter_code": "calls", "model": "per_unit", "unit_price": "0.10"}]),
        ("pro", 2): version(
            number=2, charges=[{"meter_code": "calls", "model": "per_unit", "unit_price": "0.20"}]
        ),
    }
    usage = {
        0: {"calls": {"": GroupUsage(Decimal(100), 3, 100)}},
        1: {"calls": {"": GroupUsage(Decimal(50), 2, 50)}},
    }
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, usage))
    # THEN two usage lines, each over its phase's part of the window
    first, second = lines["usage:calls::0"], lines["usage:calls::1"]
    assert (first.amount_minor, first.plan_version, first.period_end) == (1000, 1, MID_JAN)
    assert (second.amount_minor, second.plan_version, second.period_start) == (1000, 2, MID_JAN)
    assert second.source["hours"] == 2 and second.source["events"] == 50


# ---------------------------------------------------------------- minimum commitment and groups
def test_minimum_commitment_tops_up_usage_and_ignores_fixed_fees() -> None:
    sub = subscription(("pro", 1, JAN, None))
    plans = {
        ("pro", 1): version(
            minimum_commitment="100",
            fixed_fee={"amount": "500", "timing": "arrears"},
            charges=[{"meter_code": "calls", "model": "per_unit", "unit_price": "1"}],
        )
    }
    # GIVEN 40 of usage against a minimum of 100 (and a fixed fee that does not count toward it)
    window = rate_subscription_window(sub, plans, JAN, FEB, {0: {"calls": {"": GroupUsage(Decimal(40))}}})
    lines = by_id(window)
    # THEN a top-up of 60 and a subtotal of usage + top-up + fee
    assert lines["minimum_commitment"].amount_minor == 6000
    assert window.subtotal_minor == 4000 + 6000 + 50000
    # AND usage above the minimum gets no top-up
    over = rate_subscription_window(sub, plans, JAN, FEB, {0: {"calls": {"": GroupUsage(Decimal(140))}}})
    assert "minimum_commitment" not in by_id(over)


def test_each_group_is_priced_on_its_own() -> None:
    sub = subscription(("pro", 1, JAN, None))
    charge = {
        "meter_code": "tokens",
        "model": "graduated",
        "free_units": "10",
        "tiers": [{"up_to": "100", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}],
    }
    plans = {("pro", 1): version(charges=[charge])}
    usage = {0: {"tokens": {"model=a": GroupUsage(Decimal(110)), "model=b": GroupUsage(Decimal(20))}}}
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, usage))
    # THEN each group has its own free units and starts the tiers from its first unit
    assert lines["usage:tokens:model=a:0"].amount_minor == 10000
    assert lines["usage:tokens:model=b:0"].amount_minor == 1000
    assert lines["usage:tokens:model=a:0"].group == {"model": "a"}


def test_the_worked_example_of_docs_pricing_md() -> None:
    # GIVEN the plan, change and usage of the worked example in docs/pricing.md
    def tiers(first: str) -> list[dict[str, Any]]:
        return [
            {"up_to": "10000", "unit_price": first},
            {"up_to": None, "unit_price": "0.001", "flat_fee": "5"},
        ]

    def pro(number: int, fee: str, first: str) -> dict[str, Any]:
        charge = {"meter_code": "calls", "model": "graduated", "free_units": "1000", "tiers": tiers(first)}
        return version(
            number=number,
            fixed_fee={"amount": fee, "timing": "advance"},
            minimum_commitment="40",
            charges=[charge],
        )

    sub = subscription(("pro", 1, JAN, MID_JAN), ("pro", 2, MID_JAN, None))
    plans = {("pro", 1): pro(1, "31", "0.002"), ("pro", 2): pro(2, "62", "0.0015")}
    usage = {0: {"calls": {"": GroupUsage(Decimal(12345))}}, 1: {"calls": {"": GroupUsage(Decimal(4321))}}}
    # WHEN January is rated
    window = rate_subscription_window(sub, plans, JAN, FEB, usage)
    # THEN the table of the document, line by line
    assert {line.line_id: line.amount_minor for line in window.lines} == {
        "usage:calls::0": 2635,
        "usage:calls::1": 498,
        "proration:credit:0": -2100,
        "proration:charge:1": 4200,
        "minimum_commitment": 867,
        "fixed_fee:advance:1": 6200,
    }
    assert window.subtotal_minor == 12300
