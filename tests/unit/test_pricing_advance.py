"""Pay-in-advance pricing (``domain.advance``): each event at its marginal price under the charge's model,
prorated to the part of the period left, what a removal gives back, and one rounding per line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.advance import Position, event_delta, period_of, price_change, terms_of
from neruba.domain.periods import add_interval
from neruba.domain.pricing import PricingError

APRIL = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
SEAT = {"model": "per_unit", "unit_price": "30", "pay_in_advance": True, "prorate": True}


def _run(charge: dict[str, object], deltas: list[int], at: datetime = APRIL[0]) -> list[int]:
    """The minor amounts of a sequence of changes, each at ``at``, the position carried along."""
    position, amounts = Position(), []
    for delta in deltas:
        change = price_change(charge, position, Decimal(delta), at, APRIL, "USD")
        amounts.append(change.amount_minor)
        position = change.after
    return amounts


def test_a_seat_added_mid_period_pays_the_fraction_left() -> None:
    # GIVEN 30.00 a seat a month, prorated; WHEN a seat is added on 16 April 00:00 (15 of 30 days left)
    change = price_change(SEAT, Position(), Decimal(1), datetime(2026, 4, 16, tzinfo=UTC), APRIL, "USD")
    # THEN it pays half the month, exactly
    assert (change.fraction, change.seconds, change.period_seconds) == (Decimal("0.5"), 1296000, 2592000)
    assert (change.amount, change.amount_minor) == (Decimal("15.0"), 1500)


def test_the_fraction_is_of_the_real_calendar_length_and_rounds_once_half_up() -> None:
    # 10.00 a seat, added 1 February 2026 16:00 UTC: 27 days 8 hours of 28 days left = 656/672
    feb = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    charge = {**SEAT, "unit_price": "10"}
    change = price_change(charge, Position(), Decimal(1), datetime(2026, 2, 1, 16, tzinfo=UTC), feb, "USD")
    # 10 x 656/672 = 9.7619047... -> 976 cents (one rounding of the exact amount)
    assert change.amount_minor == 976
    assert abs(Fraction(change.amount) - Fraction(6560, 672)) < Fraction(1, 10**40)


def test_without_proration_the_whole_price_is_billed_at_any_time() -> None:
    setup = {"model": "per_unit", "unit_price": "99.99", "pay_in_advance": True}
    change = price_change(setup, Position(), Decimal(1), datetime(2026, 4, 30, tzinfo=UTC), APRIL, "USD")
    assert (change.fraction, change.amount_minor) == (Decimal(1), 9999)


def test_graduated_and_free_units_count_from_the_periods_first_event() -> None:
    # 1 free unit, then 2 at 10.00, then 5.00 each: events of +1 cost 0, 10, 10, 5, 5
    charge = {
        "model": "graduated",
        "free_units": "1",
        "pay_in_advance": True,
        "tiers": [{"up_to": "2", "unit_price": "10"}, {"up_to": None, "unit_price": "5"}],
    }
    assert _run(charge, [1, 1, 1, 1, 1]) == [0, 1000, 1000, 500, 500]


def test_volume_bills_the_difference_of_the_whole_price() -> None:
    # volume: up to 2 at 10.00, above at 8.00: 1 -> 10, 2 -> 20, 3 -> 24 (all at 8), 4 -> 32
    charge = {
        "model": "volume",
        "pay_in_advance": True,
        "tiers": [{"up_to": "2", "unit_price": "10"}, {"up_to": None, "unit_price": "8"}],
    }
    assert _run(charge, [1, 1, 1, 1]) == [1000, 1000, 400, 800]


def test_a_started_package_is_billed_once() -> None:
    charge = {"model": "package", "package_size": 5, "package_price": "20", "pay_in_advance": True}
    assert _run(charge, [1, 1, 1, 1, 1, 1]) == [2000, 0, 0, 0, 0, 2000]


def test_removal_with_none_keeps_what_was_paid_and_a_re_add_is_not_billed_again() -> None:
    charge = {"model": "per_unit", "unit_price": "30", "pay_in_advance": True}
    assert _run(charge, [2, -1, 1, 1]) == [6000, 0, 0, 3000]


@pytest.mark.parametrize("on_removal", ["credit", "refund"])
def test_removal_with_credit_gives_back_the_rest_of_the_period(on_removal: str) -> None:
    charge = {**SEAT, "on_removal": on_removal}
    added = price_change(charge, Position(), Decimal(1), APRIL[0], APRIL, "USD")
    removed = price_change(charge, added.after, Decimal(-1), datetime(2026, 4, 16, tzinfo=UTC), APRIL, "USD")
    assert (added.amount_minor, removed.amount_minor) == (3000, -1500)
    assert removed.after == Position(Decimal(0), Decimal(0))
    assert terms_of(charge) is not None and terms_of(charge).on_removal == on_removal  # type: ignore[union-attr]


def test_a_removal_below_zero_gives_back_only_what_was_paid() -> None:
    charge = {"model": "per_unit", "unit_price": "30", "pay_in_advance": True, "on_removal": "credit"}
    # level 1, then -2 (paid 0: only the one paid unit is given back), 0 (nothing paid), 1 (paid again)
    assert _run(charge, [1, -3, 2, 1]) == [3000, -3000, 0, 3000]


def test_zero_decimal_currency_rounds_to_the_yen() -> None:
    charge = {"model": "per_unit", "unit_price": "1000", "pay_in_advance": True, "prorate": True}
    at = datetime(2026, 4, 21, tzinfo=UTC)  # 10 of 30 days left: 333.33... -> 333 yen
    assert price_change(charge, Position(), Decimal(1), at, APRIL, "JPY").amount_minor == 333


def test_an_event_outside_its_period_or_a_meter_that_cannot_be_billed_in_advance_is_refused() -> None:
    with pytest.raises(PricingError):
        price_change(SEAT, Position(), Decimal(1), APRIL[1], APRIL, "USD")
    with pytest.raises(PricingError):
        event_delta("max", "3")
    assert event_delta("unique_count", "u", new_value=False) == 0


def test_period_of_an_event_follows_the_billing_calendar() -> None:
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    assert period_of(anchor, "month", datetime(2026, 3, 1, tzinfo=UTC), add_interval) == (
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 31, tzinfo=UTC),
    )


@settings(max_examples=200, deadline=None)
@given(
    price=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4),
    units=st.integers(min_value=1, max_value=1000),
    split=st.integers(min_value=1, max_value=30 * 86400 * 1000 - 1),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_prorated_parts_of_a_split_period_sum_to_the_whole(
    price: Decimal, units: int, split: int, currency: str
) -> None:
    # GIVEN units added at the period's start and removed (credit) at a split instant, and the same units
    # added again at that instant: the two parts cover the period once
    charge = {**SEAT, "unit_price": str(price), "on_removal": "credit"}
    at = APRIL[0] + timedelta(milliseconds=split)
    whole = price_change(charge, Position(), Decimal(units), APRIL[0], APRIL, currency)
    credit = price_change(charge, whole.after, Decimal(-units), at, APRIL, currency)
    again = price_change(charge, credit.after, Decimal(units), at, APRIL, currency)
    # THEN the exact amounts of [start, split) and [split, end) add up to the whole period's
    kept = whole.amount + credit.amount
    assert abs(kept + again.amount - whole.amount) < Decimal("1e-30")
    # AND the rounded lines differ from the rounded whole by at most one minor unit (one rounding each)
    assert abs(whole.amount_minor + credit.amount_minor + again.amount_minor - whole.amount_minor) <= 1
    assert credit.amount_minor == -again.amount_minor  # the credit is the exact mirror of the re-add


@pytest.mark.parametrize("delta", ["1E+17", "-1E+17"])
def test_an_advance_change_over_the_line_limit_bills_0_and_says_why(delta: str) -> None:
    seat = {**SEAT, "on_removal": "refund"}
    before = Position(Decimal("1E+17"), Decimal("1E+17")) if delta.startswith("-") else Position()
    change = price_change(seat, before, Decimal(delta), datetime(2026, 4, 1, tzinfo=UTC), APRIL, "USD")
    assert change.amount_minor == 0
    assert change.unbillable == "amount_too_large"
    assert change.after.level == before.level + Decimal(delta)  # the position still follows the usage


def test_an_advance_change_at_the_line_limit_is_billed() -> None:
    seat = {"model": "per_unit", "unit_price": "1", "pay_in_advance": True}
    change = price_change(seat, Position(), Decimal(10**16), datetime(2026, 4, 1, tzinfo=UTC), APRIL, "USD")
    assert (change.amount_minor, change.unbillable) == (10**18, None)
