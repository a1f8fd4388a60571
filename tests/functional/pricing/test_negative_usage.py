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
