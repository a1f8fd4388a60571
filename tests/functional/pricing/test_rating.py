"""rate_window over aggregates written by the real ingest path, with a plan change mid-period, and the
upcoming-invoice route (200, 404, 403)."""

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
START = (NOW - timedelta(days=20)).replace(minute=30, second=0)  # not on an hour: the first hour is partial
CHANGE = (NOW - timedelta(days=5)).replace(minute=0, second=0)
END = add_interval(START, "month", 1)


def _plan(unit_price: str, token_price: str, fee: str) -> dict[str, Any]:
    from neruba.models.catalog import PlanVersionIn

    body = PlanVersionIn(
        name="Pro",
        currency="USD",
        interval="month",
        fixed_fee={"amount": Decimal(fee), "timing": "advance"},  # type: ignore[arg-type]
        charges=[
            {"meter_code": "api_calls", "model": "per_unit", "unit_price": Decimal(unit_price)},  # type: ignore[list-item]
            {
                "meter_code": "tokens",
                "model": "per_unit",
                "unit_price": Decimal(token_price),
                "free_units": Decimal(10),
            },  # type: ignore[list-item]
        ],
    )
    return body.model_dump(mode="json")


@pytest.fixture
def world(catalog: Any, send: Callable[..., Any], process: Callable[..., int]) -> dict[str, Any]:
    """Plan pro v1 then v2, acme subscribed since START, moved to v2 at CHANGE; usage ingested for real."""
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.catalog.subscriptions import change_plan, create_subscription
    from neruba.models.catalog import PlanChange, SubscriptionCreate

    plans = PlansRepository(get_settings().catalog_table)
    plans.publish("pro", _plan("0.5", "0.01", "30"))
    plans.publish("pro", _plan("1.0", "0.02", "60"))
    sub = create_subscription(
        plans,
        SubscriptionCreate(customer_id="acme", plan_code="pro", plan_version=1, start_at=START),
        None,
        now=NOW,
    )
    sub = change_plan(plans, sub["id"], PlanChange(plan_code="pro", plan_version=2, at=CHANGE), now=NOW)
    at = lambda t: t.isoformat()  # noqa: E731
    send(
        ev("before-start", timestamp=at(START - timedelta(hours=2))),  # before the subscription: never billed
        ev("first-hour", timestamp=at(START + timedelta(minutes=10))),  # the hour the subscription starts in
        *[ev(f"old-{i}", timestamp=at(CHANGE - timedelta(hours=3))) for i in range(3)],
        *[ev(f"new-{i}", timestamp=at(CHANGE + timedelta(minutes=20))) for i in range(2)],
        ev(
            "tok-a1",
            code="tokens",
            timestamp=at(CHANGE - timedelta(hours=2)),
            properties={"tokens": 100, "model": "a"},
        ),
        ev(
            "tok-b1",
            code="tokens",
            timestamp=at(CHANGE - timedelta(hours=2)),
            properties={"tokens": 50, "model": "b"},
        ),
        ev(
            "tok-a2",
            code="tokens",
            timestamp=at(CHANGE + timedelta(hours=1)),
            properties={"tokens": 30, "model": "a"},
        ),
        ev("globex", customer="globex", timestamp=at(CHANGE)),  # another customer's usage
    )
    process()
    return {"plans": plans, "usage": UsageRepository(get_settings().usage_table), "sub": sub}


def _cents(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_rate_window_splits_usage_by_phase_and_prorates_the_fee(world: dict[str, Any]) -> None:
    from neruba.logic.pricing.rating import rate_window

    # WHEN the current period is rated up to now
    window = rate_window(world["plans"], world["usage"], world["sub"], START, END, as_of=NOW)
    lines = {line.line_id: line for line in window.lines}
    # THEN api calls: 1 (first, partial hour) + 3 under v1 at 0.50, 2 under v2 at 1.00
    old, new = lines["usage:api_calls::0"], lines["usage:api_calls::1"]
    assert (old.quantity, old.amount_minor, old.plan_version, old.source["events"]) == (4, 200, 1, 4)
    assert old.source["hours"] == 2 and (old.period_start, old.period_end) == (START, CHANGE)
    assert (new.quantity, new.amount_minor, new.plan_version, new.period_start) == (2, 200, 2, CHANGE)
    # AND tokens per group and phase, each with its own 10 free units
    assert lines["usage:tokens:model=a:0"].amount_minor == 90  # (100 - 10) x 0.01
    assert lines["usage:tokens:model=b:0"].amount_minor == 40  # (50 - 10) x 0.01
    assert lines["usage:tokens:model=a:1"].amount_minor == 40  # (30 - 10) x 0.02
    assert lines["usage:tokens:model=a:1"].group == {"model": "a"}
    # AND the advance fee is prorated by exact seconds: credit v1's unused time, charge v2's
    left = Decimal((END - CHANGE).total_seconds()) / Decimal((END - START).total_seconds())
    assert lines["proration:credit:0"].amount_minor == -_cents(30 * left)
    assert lines["proration:charge:1"].amount_minor == _cents(60 * left)
    # AND next period's advance fee under v2
    assert lines["fixed_fee:advance:1"].amount_minor == 6000
    assert (lines["fixed_fee:advance:1"].period_start, lines["fixed_fee:advance:1"].period_end) == (
        END,
        add_interval(START, "month", 2),
    )
    assert window.subtotal_minor == sum(line.amount_minor for line in window.lines)


def test_as_of_cuts_usage_at_the_hour_it_falls_in(world: dict[str, Any]) -> None:
    from neruba.logic.pricing.rating import rate_window

    # WHEN rated as of the plan change
    window = rate_window(world["plans"], world["usage"], world["sub"], START, END, as_of=CHANGE)
    lines = {line.line_id: line for line in window.lines}
    # THEN usage after the change is not read yet (a zero line keeps the charge visible)
    assert lines["usage:api_calls::0"].quantity == 4
    assert lines["usage:api_calls::1"].quantity == 0
    assert "usage:tokens:model=a:1" not in lines


def test_opening_window_of_the_subscription(world: dict[str, Any]) -> None:
    from neruba.logic.pricing.rating import rate_opening

    window = rate_opening(world["plans"], world["sub"])
    (fee,) = window.lines
    assert (fee.amount_minor, fee.plan_version, fee.period_start, fee.period_end) == (3000, 1, START, END)


def _upcoming(customer_id: str, scopes: str = "read") -> tuple[int, Any]:
    from functions.read_api.app import lambda_handler

    path = f"/v1/customers/{customer_id}/upcoming-invoice"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"customer_id": customer_id}, scopes=scopes)
    )
    return status, body


def test_upcoming_invoice_route(world: dict[str, Any]) -> None:
    # WHEN acme's upcoming invoice is read
    status, body = _upcoming("acme")
    # THEN one window: the current period, lines with their periods, subtotal, no credits applied
    assert status == 200, body
    assert body["credits_applied"] is False
    (window,) = body["windows"]
    assert window["currency"] == "USD" and window["credits_applied"] is False
    assert datetime.fromisoformat(window["period_start"]) == START
    assert datetime.fromisoformat(window["period_end"]) == END
    assert window["subtotal_minor"] == sum(line["amount_minor"] for line in window["lines"])
    ids = {line["line_id"] for line in window["lines"]}
    assert {"usage:api_calls::0", "usage:api_calls::1", "proration:credit:0", "fixed_fee:advance:1"} <= ids


def test_upcoming_invoice_without_subscription_unknown_customer_and_scope(world: dict[str, Any]) -> None:
    # a customer without subscriptions: 200 and no windows
    status, body = _upcoming("globex")
    assert (status, body["windows"]) == (200, [])
    # an unknown customer: 404 customer_not_found
    status, body = _upcoming("nobody")
    assert (status, body["error"]["code"]) == (404, "customer_not_found")
    # a key without the read scope: 403
    status, body = _upcoming("acme", scopes="ingest")
    assert status == 403
