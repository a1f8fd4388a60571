"""Negative usage values: refused at ingest (API and worker) unless the meter allows them; where allowed,
a net negative quantity rates to zero with a line that says so, in the upcoming invoice and the billing
run alike, and the window (fixed fee included) is always rated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call
from tests.support.aws import queue_url

if TYPE_CHECKING:
    from neruba.dal.usage import StoredEvent

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=3)).replace(minute=0, second=0)


def _post(*events: dict[str, Any]) -> tuple[int, Any]:
    from functions.ingest_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": list(events)}))
    return status, body


def _event(customer: str, tx: str) -> StoredEvent | None:
    from neruba.dal.usage import UsageRepository

    return UsageRepository(get_settings().usage_table).get_event(customer, tx)


@pytest.mark.parametrize(
    ("code", "prop"), [("tokens", "tokens"), ("storage_gb", "gb"), ("plan_level", "level")]
)
def test_a_negative_value_is_refused_by_the_api_for_a_meter_that_does_not_allow_it(
    catalog: Any, code: str, prop: str
) -> None:
    # WHEN a negative value (number or numeric text) is sent to a sum, max or latest meter, beside a valid one
    status, body = _post(
        ev("neg-1", code=code, properties={prop: -10, "model": "a"}),
        ev("neg-2", code=code, properties={prop: "-0.5", "model": "a"}),
        ev("ok-1", code=code, properties={prop: 0, "model": "a"}),
    )
    # THEN each negative event is rejected with its own code naming the property; the valid one is queued
    assert status == 202, body
    rejected = [e for e in body["events"] if e["status"] == "rejected"]
    assert [(e["transaction_id"], e["error"]["code"]) for e in rejected] == [
        ("neg-1", "negative_value"),
        ("neg-2", "negative_value"),
    ]
    assert rejected[0]["error"]["param"] == f"events.0.properties.{prop}"
    assert body["queued"] == 1


def test_the_worker_parks_a_negative_value_that_reached_the_queue(
    catalog: Any, process: Callable[..., int]
) -> None:
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    # GIVEN a message with a negative value on the queue (sent before the meter refused them, or by hand)
    event = UsageEventIn.model_validate(ev("neg-q", code="tokens", properties={"tokens": -10}))
    body = queue_message(event, "req-1", 0, NOW)
    boto3.client("sqs").send_message(QueueUrl=queue_url("IngestQueue"), MessageBody=body)
    # WHEN the worker runs
    process()
    # THEN the event is parked failed with its reason, and the message is consumed (no DLQ)
    stored = _event("acme", "neg-q")
    assert stored is not None and (stored.status, stored.reason) == ("failed", "negative_value")
    assert boto3.client("sqs").receive_message(QueueUrl=queue_url("IngestDLQ")).get("Messages") is None


@pytest.fixture
def netted(catalog: Any, send: Callable[..., Any], process: Callable[..., int]) -> dict[str, Any]:
    """A sum meter that allows negatives, a plan (30.00 advance fee + 2.00 per unit), acme subscribed
    since START, and usage netting to -7 (events -10 and +3)."""
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    catalog.create_meter(
        Meter(code="net_units", name="Net units", aggregation="sum", field="units", allow_negative=True)
    )
    plans = PlansRepository(get_settings().catalog_table)
    version = PlanVersionIn(
        name="Net",
        currency="USD",
        interval="month",
        fixed_fee={"amount": Decimal(30), "timing": "advance"},  # type: ignore[arg-type]
        charges=[{"meter_code": "net_units", "model": "per_unit", "unit_price": Decimal(2)}],  # type: ignore[list-item]
    )
    plans.publish("net", version.model_dump(mode="json"))
    sub = create_subscription(
        plans,
        SubscriptionCreate(customer_id="acme", plan_code="net", plan_version=1, start_at=START),
        None,
        now=NOW,
    )
    at = (START + timedelta(hours=2)).isoformat()
    body = send(
        ev("n-1", code="net_units", timestamp=at, properties={"units": -10}),
        ev("n-2", code="net_units", timestamp=at, properties={"units": 3}),
    )
    assert body["queued"] == 2
    process()
    return {"plans": plans, "sub": sub}


def test_a_net_negative_quantity_rates_to_zero_and_the_invoice_is_still_issued(
    netted: dict[str, Any],
) -> None:
    from functions.read_api.app import lambda_handler
    from neruba import bootstrap

    assert _event("acme", "n-1").status == "accepted"  # type: ignore[union-attr]
    # WHEN the upcoming invoice is read
    path = "/v1/customers/acme/upcoming-invoice"
    status, body, _ = call(lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}))
    # THEN 200: the usage line shows quantity 0 and says the net usage was negative; the fee is billed
    assert status == 200, body
    (window,) = body["windows"]
    lines = {line["line_id"]: line for line in window["lines"]}
    usage = lines["usage:net_units::0"]
    assert (Decimal(str(usage["quantity"])), usage["amount_minor"]) == (0, 0)
    assert "net usage was negative (-7)" in usage["description"]
    assert window["subtotal_minor"] == sum(line["amount_minor"] for line in window["lines"]) > 0
    # AND the billing run rates the same window the same way (it raises nothing)
    end = datetime.fromisoformat(window["period_end"])
    billed = bootstrap.billing().rate_window(netted["sub"], START, end)
    (billed_usage,) = [line for line in billed.lines if line.line_id == "usage:net_units::0"]
    assert (billed_usage.quantity, billed_usage.amount_minor) == (0, 0)
    assert billed_usage.description == usage["description"]


def _percentage_on_net(catalog: Any, code: str, charge: dict[str, Any]) -> None:
    """A sum meter that allows negatives, a plan published through the catalog (which registers any
    per-event rule on the meter), and acme subscribed to it since START."""
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    meter = Meter(code="refunds", name="Payments", aggregation="sum", field="amount", allow_negative=True)
    catalog.create_meter(meter)
    plans = PlansRepository(get_settings().catalog_table)
    body = {"code": code, "name": code, "currency": "USD", "interval": "month",
            "charges": [{"meter_code": "refunds", **charge}]}  # fmt: skip
    create_plan(plans, PlanCreate.model_validate(body))
    subscription = SubscriptionCreate(customer_id="acme", plan_code=code, start_at=START)
    create_subscription(plans, subscription, None, now=NOW)


def _upcoming_usage_line(meter: str) -> dict[str, Any]:
    from functions.read_api.app import lambda_handler

    path = "/v1/customers/acme/upcoming-invoice"
    status, body, _ = call(lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}))
    assert status == 200, body
    (window,) = body["windows"]
    return next(line for line in window["lines"] if line["line_id"] == f"usage:{meter}::0")


def _payments(send: Callable[..., Any], *amounts: str) -> None:
    at = (START + timedelta(hours=2)).isoformat()
    events = [
        ev(f"pay-{i}", code="refunds", timestamp=at, properties={"amount": amount})
        for i, amount in enumerate(amounts)
    ]
    assert send(*events)["queued"] == len(amounts)


def test_bounded_percentage_charges_netting_below_zero_bill_zero_not_a_credit(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN 10% + 1.00 per event, at most 4.00 an event, on a meter that takes refunds
    _percentage_on_net(catalog, "bounded_net", {"model": "percentage", "rate": "10", "fixed_fee": "1",
                                                "per_event_max": "4"})  # fmt: skip
    # WHEN a refund of 100 (-10 + 1 = -9.00) and payments of 50 (capped at 4.00) and 5 (1.50) arrive
    _payments(send, "-100", "50", "5")
    process()
    # THEN the events' charges net to -3.50, and the usage line bills 0: a usage line never credits
    line = _upcoming_usage_line("refunds")
    assert Decimal(line["source"]["per_event_charges"]) == Decimal("-3.5")
    assert line["amount_minor"] == 0, line
    assert "billed as 0" in line["description"]


def test_a_net_negative_line_that_still_bills_fees_does_not_say_it_bills_zero(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN 3% + 0.25 per event past the first, on a meter that takes refunds
    _percentage_on_net(catalog, "fees_net", {"model": "percentage", "rate": "3", "fixed_fee": "0.25",
                                             "free_events": 1})  # fmt: skip
    # WHEN payments of 100 and 20 and a refund of 250 net to -130
    _payments(send, "100", "-250", "20")
    process()
    # THEN the amount is rated as 0 but two events still pay their fee: 0.50, and the line says so truly
    line = _upcoming_usage_line("refunds")
    assert line["amount_minor"] == 50, line
    assert "net usage was negative (-130)" in line["description"]
    assert "billed as 0" not in line["description"], line["description"]
