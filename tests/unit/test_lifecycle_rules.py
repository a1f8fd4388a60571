"""Lifecycle rules of the pricing domain: the final window of a canceled subscription is rated over its
whole period, the advance fee follows the phases known when it is billed, phases stay well-formed, and
a subscription canceled at period end reads ended after it. Expected amounts are computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neruba.domain.phases import check_phases, end_phases, prepaid_phase, rating_period, state_at
from neruba.domain.pricing import PricingError
from neruba.domain.window_rating import rate_opening_window, rate_subscription_window
from tests.unit.test_pricing_windows import FEB, JAN, MAR, by_id, subscription, version

PERIOD = (JAN, FEB)
JANUARY = Decimal(31 * 86_400)
PRO = version("pro", fixed_fee={"amount": "31", "timing": "advance"})
MAX = version("max", fixed_fee={"amount": "62", "timing": "advance"})
VERSIONS = {("pro", 1): PRO, ("max", 1): MAX}


def cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def canceled(at: datetime, **extra: Any) -> dict[str, Any]:
    return subscription(("pro", 1, JAN, at), status="canceled", ended_at=at.isoformat(), **extra)


# ---------------------------------------------------------------- the final window's period
def test_the_final_window_is_rated_over_its_whole_period() -> None:
    ended = datetime(2026, 1, 11, tzinfo=UTC)  # 10 of 31 days used
    sub = canceled(ended)
    assert rating_period(sub, JAN, ended) == (JAN, FEB)
    assert rating_period(sub, JAN, FEB) == (JAN, FEB)  # a whole window stays itself
    assert rating_period(canceled(FEB), JAN, FEB) == (JAN, FEB)  # ended on a boundary: nothing to widen
    # the clipped window credits 31 x 21/31 = 21.00 and bills no February fee
    lines = by_id(rate_subscription_window(sub, VERSIONS, JAN, ended, {}))
    assert {k: v.amount_minor for k, v in lines.items()} == {"proration:credit:0": -2100}
    assert (lines["proration:credit:0"].period_start, lines["proration:credit:0"].period_end) == (ended, FEB)


@given(st.integers(min_value=1, max_value=31 * 86_400 - 1))
def test_an_advance_fee_minus_its_credit_is_the_time_used(second: int) -> None:
    # GIVEN pro (31.00 in advance) canceled at any second of January
    ended = JAN + timedelta(seconds=second)
    sub = canceled(ended)
    opening = rate_opening_window(sub, VERSIONS).subtotal_minor
    final = rate_subscription_window(sub, VERSIONS, JAN, ended, {}).subtotal_minor
    # THEN opening + final = 31.00 x used / January, within the two roundings (one cent)
    assert opening == 3100
    assert abs(opening + final - cents(Decimal(31) * second / JANUARY)) <= 1


@given(st.integers(min_value=1, max_value=31 * 86_400 - 1))
def test_arrears_fee_and_minimum_are_prorated_to_the_end(second: int) -> None:
    ended = JAN + timedelta(seconds=second)
    plan = version("pro", fixed_fee={"amount": "20", "timing": "arrears"}, minimum_commitment="50")
    lines = by_id(rate_subscription_window(canceled(ended), {("pro", 1): plan}, JAN, ended, {}))
    used = Decimal(second) / JANUARY
    assert lines["fixed_fee:arrears:0"].amount_minor == cents(20 * used)
    if cents(50 * used) > 0:
        assert lines["minimum_commitment"].amount_minor == cents(50 * used)
    assert not any(k.startswith("fixed_fee:advance") for k in lines)


def test_cancel_inside_a_trial_credits_what_was_prepaid() -> None:
    trial, ended = datetime(2026, 1, 21, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
    sub = canceled(ended, trial_end=trial.isoformat())
    opening = rate_opening_window(sub, VERSIONS).subtotal_minor
    final = by_id(rate_subscription_window(sub, VERSIONS, JAN, ended, {}))
    assert opening == 1100  # 31 x 11/31: the paid part [21 Jan, 1 Feb)
    assert {k: v.amount_minor for k, v in final.items()} == {"proration:credit:0": -1100}


# ---------------------------------------------------------------- what was prepaid
def _changed_at(at: datetime, recorded: datetime | None) -> dict[str, Any]:
    sub = subscription(("pro", 1, JAN, at), ("max", 1, at, None))
    if recorded is not None:
        sub["phases"][1]["created_at"] = recorded.isoformat()
    return sub


def test_a_change_at_a_period_start_recorded_later_is_prorated_on_that_period() -> None:
    # GIVEN pro, moved to max at 1 Feb by a change made on 3 Feb (January's window billed February's fee)
    sub = _changed_at(FEB, datetime(2026, 2, 3, tzinfo=UTC))
    assert prepaid_phase(sub, FEB) == 0 and prepaid_phase(sub, MAR) == 1
    # THEN January's window (whenever it runs) bills February under pro, as it did
    january = by_id(rate_subscription_window(sub, VERSIONS, JAN, FEB, {}))
    assert {k: v.amount_minor for k, v in january.items()} == {"fixed_fee:advance:0": 3100}
    # AND February's window swaps pro's 31.00 for max's 62.00 and bills March under max
    february = by_id(rate_subscription_window(sub, VERSIONS, FEB, MAR, {}))
    assert {k: v.amount_minor for k, v in february.items()} == {
        "proration:credit:0": -3100,
        "proration:charge:1": 6200,
        "fixed_fee:advance:1": 6200,
    }


def test_a_change_at_a_period_start_recorded_before_it_is_billed_in_advance() -> None:
    for recorded in (datetime(2026, 1, 20, tzinfo=UTC), None):  # None: a phase stored before created_at
        sub = _changed_at(FEB, recorded)
        assert prepaid_phase(sub, FEB) == 1
        january = by_id(rate_subscription_window(sub, VERSIONS, JAN, FEB, {}))
        assert {k: v.amount_minor for k, v in january.items()} == {"fixed_fee:advance:1": 6200}
        february = by_id(rate_subscription_window(sub, VERSIONS, FEB, MAR, {}))
        assert {k: v.amount_minor for k, v in february.items()} == {"fixed_fee:advance:1": 6200}


def test_a_change_at_the_subscription_start_made_later_credits_the_opening_fee() -> None:
    # pro from 1 Jan, replaced by max at 1 Jan by a change made on 5 Jan: the opening billed pro
    sub = _changed_at(JAN, datetime(2026, 1, 5, tzinfo=UTC))
    assert {line.line_id: line.amount_minor for line in rate_opening_window(sub, VERSIONS).lines} == {
        "fixed_fee:advance:0": 3100
    }
    january = by_id(rate_subscription_window(sub, VERSIONS, JAN, FEB, {}))
    assert {k: v.amount_minor for k, v in january.items()} == {
        "proration:credit:0": -3100,
        "proration:charge:1": 6200,
        "fixed_fee:advance:1": 6200,
    }


# ---------------------------------------------------------------- well-formed phases
def test_check_phases_refuses_reversed_and_gapped_phases() -> None:
    good = subscription(("pro", 1, JAN, FEB), ("max", 1, FEB, None))["phases"]
    check_phases(good)
    with pytest.raises(PricingError, match="ends before it starts"):
        check_phases(subscription(("pro", 1, FEB, JAN))["phases"])
    with pytest.raises(PricingError, match="does not end where"):
        check_phases(subscription(("pro", 1, JAN, FEB), ("max", 1, MAR, None))["phases"])


@given(
    st.lists(st.integers(min_value=0, max_value=40 * 86_400), min_size=0, max_size=4, unique=True),
    st.integers(min_value=-86_400, max_value=45 * 86_400),
)
def test_ending_phases_at_any_instant_keeps_them_well_formed(changes: list[int], end: int) -> None:
    # GIVEN pro from 1 Jan with plan changes at any later instants, ended at any instant (even before 1 Jan)
    starts = [JAN, *(JAN + timedelta(seconds=s) for s in sorted(changes) if s > 0)]
    phases = [
        {"plan_code": "pro", "plan_version": 1, "start_at": s.isoformat(), "end_at": None} for s in starts
    ]
    for before, after in pairwise(phases):
        before["end_at"] = after["start_at"]
    at = JAN + timedelta(seconds=end)
    ended = end_phases(phases, at)
    # THEN they stay well-formed, none starts after the end, and the last ends at it (or its own start)
    check_phases(ended)
    assert all(datetime.fromisoformat(p["start_at"]) < at for p in ended[1:])
    assert datetime.fromisoformat(ended[-1]["end_at"]) == max(
        at, datetime.fromisoformat(ended[-1]["start_at"])
    )


# ---------------------------------------------------------------- state after the end
def test_cancel_at_period_end_reads_canceled_once_the_period_has_ended() -> None:
    sub = subscription(
        ("pro", 1, JAN, None),
        cancel_at_period_end=True,
        canceled_at=datetime(2026, 1, 9, tzinfo=UTC).isoformat(),
    )
    assert state_at(sub, FEB - timedelta(microseconds=1))["status"] == "active"
    after = state_at(sub, FEB)
    assert (after["status"], after["ended_at"]) == ("canceled", FEB.isoformat())
    assert sub["status"] == "active"  # the stored document is not touched
