"""rate_window over really ingested usage for a subscription with a trial ending mid-hour, and for one
canceled immediately mid-hour; the upcoming invoice says which part is a trial."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from neruba.domain.periods import add_interval
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=20)).replace(minute=30, second=0)
END = add_interval(START, "month", 1)
TRIAL_END = START + timedelta(days=10, minutes=15)  # at :45, inside an hour
ENDED = (NOW - timedelta(days=2)).replace(minute=20, second=0)  # immediate cancellation at :20


def _plan(fee: str) -> dict[str, Any]:
    from neruba.models.catalog import PlanVersionIn

    return PlanVersionIn(
        name="Pro",
        currency="USD",
        interval="month",
        fixed_fee={"amount": Decimal(fee), "timing": "advance"},  # type: ignore[arg-type]
        charges=[{"meter_code": "api_calls", "model": "per_unit", "unit_price": Decimal("0.5")}],  # type: ignore[list-item]
    ).model_dump(mode="json")


def _cents(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _fraction(a: datetime, b: datetime) -> Decimal:
    return Decimal((b - a).total_seconds()) / Decimal((END - START).total_seconds())


@pytest.fixture
def world(catalog: Any, send: Callable[..., Any], process: Callable[..., int]) -> dict[str, Any]:
    """acme on a trial to TRIAL_END; globex without trial, canceled at ENDED; usage either side."""
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.catalog.subscriptions import cancel, create_subscription
    from neruba.models.catalog import Cancellation, SubscriptionCreate

    plans = PlansRepository(get_settings().catalog_table)
    plans.publish("pro", _plan("30"))
    trial = create_subscription(
        plans,
        SubscriptionCreate(customer_id="acme", plan_code="pro", start_at=START, trial_end=TRIAL_END),
        None,
        now=NOW,
    )
    ended = create_subscription(
        plans, SubscriptionCreate(customer_id="globex", plan_code="pro", start_at=START), None, now=NOW
    )
    ended = cancel(plans, ended["id"], Cancellation(at_period_end=False), now=ENDED)
    at = lambda t: t.isoformat()  # noqa: E731
    send(
        *[ev(f"t-early-{i}", timestamp=at(START + timedelta(days=2))) for i in range(4)],
        ev("t-same-hour", timestamp=at(TRIAL_END + timedelta(minutes=5))),  # hour began in the trial
        *[ev(f"t-paid-{i}", timestamp=at(TRIAL_END + timedelta(hours=1))) for i in range(3)],
        *[ev(f"c-{i}", customer="globex", timestamp=at(ENDED - timedelta(hours=5))) for i in range(2)],
        ev("c-same-hour", customer="globex", timestamp=at(ENDED - timedelta(minutes=10))),
        # after the end but in the hour that began before it: hourly cells cannot split, so it counts
        ev("c-end-hour", customer="globex", timestamp=at(ENDED + timedelta(minutes=30))),
        ev("c-later", customer="globex", timestamp=at(ENDED + timedelta(hours=3))),
    )
    process()
    return {
        "plans": plans,
        "usage": UsageRepository(get_settings().usage_table),
        "trial": trial,
        "ended": ended,
    }


def test_trial_usage_is_shown_at_zero_and_charging_starts_at_the_trial_end(world: dict[str, Any]) -> None:
    from neruba.logic.pricing.rating import rate_opening, rate_window

    # WHEN the trial subscription's period is rated up to now
    window = rate_window(world["plans"], world["usage"], world["trial"], START, END, as_of=NOW)
    lines = {line.line_id: line for line in window.lines}
    # THEN the 5 calls of hours that began before the trial end are on a zero trial line
    trial = lines["usage:api_calls::0:trial"]
    assert (trial.quantity, trial.amount_minor, trial.source["trial"]) == (5, 0, True)
    assert (trial.period_start, trial.period_end) == (START, TRIAL_END)
    # AND the 3 calls after it are charged at 0.50, over the paid part of the period
    paid = lines["usage:api_calls::0"]
    assert (paid.quantity, paid.amount_minor, paid.period_start) == (3, 150, TRIAL_END)
    # AND the next period's advance fee is whole; no fee line for this period (prepaid by the opening)
    assert lines["fixed_fee:advance:0"].amount_minor == 3000
    assert set(lines) == {"usage:api_calls::0:trial", "usage:api_calls::0", "fixed_fee:advance:0"}
    # AND the opening window billed only the paid part of the first period, by exact seconds
    (opening,) = rate_opening(world["plans"], world["trial"]).lines
    assert (opening.period_start, opening.period_end) == (TRIAL_END, END)
    assert opening.amount_minor == _cents(30 * _fraction(TRIAL_END, END))


def test_immediate_cancellation_stops_usage_and_credits_the_unused_fee(world: dict[str, Any]) -> None:
    from neruba.logic.pricing.rating import rate_window

    # WHEN the canceled subscription's period is rated in full
    window = rate_window(world["plans"], world["usage"], world["ended"], START, END)
    lines = {line.line_id: line for line in window.lines}
    # THEN usage counts the hours that began before the end (4 calls), not the later hour's call
    usage = lines["usage:api_calls::0"]
    assert (usage.quantity, usage.amount_minor, usage.period_end) == (4, 200, ENDED)
    # AND the unused time of the prepaid fee is credited, and no next-period fee is billed
    credit = lines["proration:credit:0"]
    assert (credit.period_start, credit.period_end) == (ENDED, END)
    assert credit.amount_minor == -_cents(30 * _fraction(ENDED, END)) < 0
    assert set(lines) == {"usage:api_calls::0", "proration:credit:0"}
    assert window.subtotal_minor == 200 + credit.amount_minor


def test_upcoming_invoice_says_which_part_is_a_trial(world: dict[str, Any]) -> None:
    from functions.read_api.app import lambda_handler

    path = "/v1/customers/acme/upcoming-invoice"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}, scopes="read")
    )
    assert status == 200, body
    (window,) = body["windows"]
    assert datetime.fromisoformat(window["trial_end"]) == TRIAL_END
    assert datetime.fromisoformat(window["trial_until"]) == TRIAL_END
    assert window["in_trial"] is False
    trial_lines = [line for line in window["lines"] if line["source"].get("trial")]
    assert [(line["line_id"], line["amount_minor"]) for line in trial_lines] == [
        ("usage:api_calls::0:trial", 0)
    ]
