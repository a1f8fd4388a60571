"""Trials and immediate cancellation: only paid time is charged, fees prorated by exact seconds, the
unused part of a prepaid fee credited on an immediate cancellation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from neruba.domain.lines import GroupUsage
from neruba.domain.window_rating import rate_opening_window, rate_subscription_window
from tests.unit.test_pricing_windows import FEB, JAN, MAR, MID_JAN, by_id, subscription, version

APR, MAY, JUN = (datetime(2026, m, 1, tzinfo=UTC) for m in (4, 5, 6))
APR_11 = datetime(2026, 4, 11, tzinfo=UTC)  # 10 of April's 30 days are before it
JAN_21 = datetime(2026, 1, 21, tzinfo=UTC)
FEB_15 = datetime(2026, 2, 15, tzinfo=UTC)  # 14 of February's 28 days are before it


def fee(amount: str, timing: str, **extra: Any) -> dict[str, Any]:
    return {"fixed_fee": {"amount": amount, "timing": timing, **extra}}


def canceled(sub: dict[str, Any], at: datetime) -> dict[str, Any]:
    """What logic.catalog.subscriptions.cancel(at_period_end=False) does to the document."""
    sub["status"], sub["canceled_at"], sub["ended_at"] = "canceled", at.isoformat(), at.isoformat()
    sub["phases"][-1]["end_at"] = at.isoformat()
    return sub


CALLS = [{"meter_code": "calls", "model": "per_unit", "unit_price": "1", "free_units": "5"}]


# ---------------------------------------------------------------- trials
def test_trial_ending_mid_period_prorates_the_opening_advance_fee() -> None:
    # GIVEN 30.00 in advance and a trial until 11 April (20 of April's 30 days are paid)
    sub = subscription(("pro", 1, APR, None), trial_end=APR_11.isoformat())
    plans = {("pro", 1): version(**fee("30", "advance"))}
    # WHEN the opening window is rated
    (line,) = rate_opening_window(sub, plans).lines
    # THEN it covers the paid part only: 30 x 20/30 = 20.00, from the trial end
    assert (line.line_id, line.amount_minor) == ("fixed_fee:advance:0", 2000)
    assert (line.period_start, line.period_end) == (APR_11, MAY)
    assert line.source["trial_end"] == APR_11.isoformat()
    assert line.source["seconds"] == 20 * 86400 and str(line.quantity).startswith("0.6666666666")
    # AND April's own window adds no fee line for April, and May's advance fee is whole
    lines = by_id(rate_subscription_window(sub, plans, APR, MAY, {}))
    assert set(lines) == {"fixed_fee:advance:0"}
    assert (lines["fixed_fee:advance:0"].amount_minor, lines["fixed_fee:advance:0"].period_start) == (
        3000,
        MAY,
    )


def test_trial_ending_mid_period_prorates_the_arrears_fee() -> None:
    sub = subscription(("pro", 1, APR, None), trial_end=APR_11.isoformat())
    plans = {("pro", 1): version(**fee("30", "arrears"))}
    # WHEN April is rated  THEN the arrears fee charges from the trial end: 20.00
    (line,) = rate_subscription_window(sub, plans, APR, MAY, {}).lines
    assert (line.line_id, line.amount_minor, line.period_start, line.period_end) == (
        "fixed_fee:arrears:0",
        2000,
        APR_11,
        MAY,
    )
    # AND no opening fee for an arrears plan, and May is a whole period
    assert rate_opening_window(sub, plans).lines == []
    (may,) = rate_subscription_window(sub, plans, MAY, JUN, {}).lines
    assert may.amount_minor == 3000


def test_trial_longer_than_a_period() -> None:
    # GIVEN a trial from 1 January to 15 February, 28.00 in advance (February has 28 days)
    sub = subscription(("pro", 1, JAN, None), trial_end=FEB_15.isoformat())
    plans = {("pro", 1): version(**fee("28", "advance"), minimum_commitment="56", charges=CALLS)}
    # THEN the opening window bills nothing (the first period is all trial)
    assert rate_opening_window(sub, plans).lines == []
    # AND January shows its usage on a zero trial line, with no minimum, and bills February's paid half
    usage = {0: {"calls": {"": GroupUsage(Decimal(900), 20, 900)}}}
    january = rate_subscription_window(sub, plans, JAN, FEB, {}, trial_usage=usage)
    lines = by_id(january)
    assert set(lines) == {"usage:calls::0:trial", "fixed_fee:advance:0"}
    trial = lines["usage:calls::0:trial"]
    assert (trial.amount_minor, trial.quantity, trial.source["trial"], trial.period_end) == (
        0,
        900,
        True,
        FEB,
    )
    advance = lines["fixed_fee:advance:0"]
    assert (advance.amount_minor, advance.period_start, advance.period_end) == (1400, FEB_15, MAR)
    assert january.subtotal_minor == 1400
    # AND February's minimum is prorated to its paid half: 56 x 14/28 = 28.00
    february = by_id(rate_subscription_window(sub, plans, FEB, MAR, {}))
    assert february["minimum_commitment"].amount_minor == 2800
    assert february["usage:calls::0"].period_start == FEB_15
    assert february["fixed_fee:advance:0"].amount_minor == 2800  # March in full


def test_usage_before_the_trial_end_is_shown_at_zero_and_after_it_is_priced() -> None:
    # GIVEN usage of 40 calls in trial hours and 12 after the trial end (5 free units)
    sub = subscription(("pro", 1, APR, None), trial_end=APR_11.isoformat())
    plans = {("pro", 1): version(charges=CALLS, minimum_commitment="30")}
    paid = {0: {"calls": {"": GroupUsage(Decimal(12), 4, 12)}}}
    trial = {0: {"calls": {"": GroupUsage(Decimal(40), 9, 40)}}}
    lines = by_id(rate_subscription_window(sub, plans, APR, MAY, paid, trial_usage=trial))
    # THEN the trial usage costs nothing and uses none of the free units
    assert lines["usage:calls::0:trial"].amount_minor == 0
    assert (lines["usage:calls::0:trial"].period_start, lines["usage:calls::0:trial"].period_end) == (
        APR,
        APR_11,
    )
    usage = lines["usage:calls::0"]
    assert (usage.amount_minor, usage.period_start, usage.source["billable_quantity"]) == (700, APR_11, 7)
    # AND the minimum is prorated to the paid 20 days: 30 x 20/30 = 20.00, topped up from 7.00
    assert lines["minimum_commitment"].amount_minor == 2000 - 700


def test_plan_change_during_the_trial_prorates_from_the_trial_end() -> None:
    # GIVEN a trial to 21 January, a change pro (31.00) -> max (62.00) on 11 January, both in advance
    sub = subscription(("pro", 1, JAN, MID_JAN), ("max", 1, MID_JAN, None), trial_end=JAN_21.isoformat())
    plans = {
        ("pro", 1): version(**fee("31", "advance")),
        ("max", 1): version("max", **fee("62", "advance")),
    }
    # THEN the opening window prepaid pro for 21 Jan - 1 Feb (11 days), which January credits back,
    # and max is charged for the same paid 11 days
    (opening,) = rate_opening_window(sub, plans).lines
    assert opening.amount_minor == 1100
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, {}))
    assert (lines["proration:credit:0"].amount_minor, lines["proration:credit:0"].period_start) == (
        -1100,
        JAN_21,
    )
    assert (lines["proration:charge:1"].amount_minor, lines["proration:charge:1"].period_start) == (
        2200,
        JAN_21,
    )


# ---------------------------------------------------------------- immediate cancellation
def test_immediate_cancel_credits_the_unused_advance_fee_and_bills_no_next_fee() -> None:
    # GIVEN 31.00 in advance (January prepaid) and an immediate cancellation on 11 January
    sub = canceled(subscription(("pro", 1, JAN, None)), MID_JAN)
    plans = {("pro", 1): version(**fee("31", "advance"))}
    # WHEN January is rated
    window = rate_subscription_window(sub, plans, JAN, FEB, {})
    # THEN the unused 21 days are credited and February's fee is not billed
    (credit,) = window.lines
    assert (credit.line_id, credit.kind, credit.amount_minor) == ("proration:credit:0", "proration", -2100)
    assert (credit.period_start, credit.period_end) == (MID_JAN, FEB)
    assert "cancellation" in credit.description
    assert window.subtotal_minor == -2100


def test_a_plan_can_opt_out_of_the_cancellation_credit() -> None:
    sub = canceled(subscription(("pro", 1, JAN, None)), MID_JAN)
    plans = {("pro", 1): version(**fee("31", "advance", credit_on_cancel=False))}
    assert rate_subscription_window(sub, plans, JAN, FEB, {}).lines == []


def test_immediate_cancel_prorates_the_arrears_fee_and_usage_to_the_end() -> None:
    sub = canceled(subscription(("pro", 1, JAN, None)), MID_JAN)
    plans = {("pro", 1): version(**fee("31", "arrears"), minimum_commitment="62", charges=CALLS)}
    usage = {0: {"calls": {"": GroupUsage(Decimal(15), 3, 15)}}}
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, usage))
    # THEN the fee covers 10 of 31 days, usage and minimum stop at the cancellation, nothing in advance
    assert (lines["fixed_fee:arrears:0"].amount_minor, lines["fixed_fee:arrears:0"].period_end) == (
        1000,
        MID_JAN,
    )
    assert (lines["usage:calls::0"].amount_minor, lines["usage:calls::0"].period_end) == (1000, MID_JAN)
    assert lines["minimum_commitment"].amount_minor == 2000 - 1000  # 62 x 10/31 = 20.00
    assert set(lines) == {"fixed_fee:arrears:0", "usage:calls::0", "minimum_commitment"}


def test_cancel_during_the_trial_credits_only_what_was_prepaid() -> None:
    # GIVEN a trial to 21 January: the opening window billed 21 Jan - 1 Feb (11.00); canceled 11 January
    sub = canceled(subscription(("pro", 1, JAN, None), trial_end=JAN_21.isoformat()), MID_JAN)
    plans = {("pro", 1): version(**fee("31", "advance"))}
    assert rate_opening_window(sub, plans).lines[0].amount_minor == 1100
    # THEN January credits exactly those 11.00
    (credit,) = rate_subscription_window(sub, plans, JAN, FEB, {}).lines
    assert (credit.amount_minor, credit.period_start, credit.period_end) == (-1100, JAN_21, FEB)


def test_plan_change_then_cancel_in_one_period_nets_to_the_time_used() -> None:
    # GIVEN pro 31.00 -> max 62.00 (advance) on 11 January, canceled on 21 January
    sub = canceled(subscription(("pro", 1, JAN, MID_JAN), ("max", 1, MID_JAN, None)), JAN_21)
    plans = {
        ("pro", 1): version(**fee("31", "advance")),
        ("max", 1): version("max", **fee("62", "advance")),
    }
    lines = by_id(rate_subscription_window(sub, plans, JAN, FEB, {}))
    # THEN pro's 21 unused days are credited and max is charged only its 10 days
    assert {k: v.amount_minor for k, v in lines.items()} == {
        "proration:credit:0": -2100,
        "proration:charge:1": 2000,
    }
    # so January cost 31 x 10/31 (pro) + 62 x 10/31 (max) = 10.00 + 20.00, of which 31.00 was prepaid
    assert 3100 + sum(v.amount_minor for v in lines.values()) == 1000 + 2000
