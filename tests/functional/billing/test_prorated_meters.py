"""Prorated recurring meters through the real billing (daily windows): seats reported as changes on a
weighted_sum meter, billed by the time each seat was active, per unit and graduated; the invoice line,
explain's level intervals, the next period's carried level, the upcoming invoice and an operator rerun
all agree (docs/pricing.md, "Prorated recurring meters")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import boto3
import pytest

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event


def _seats(at: datetime, change: int) -> None:
    """A change of the seat count at ``at``, added to its hour's aggregate item (what ingest maintains)."""
    from neruba.dal.contributions import cell_item
    from neruba.dal.dynamo import from_item, to_item
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.usage import CellUsage

    key = {"pk": "AGG#acme#seat_changes", "sk": f"{hour_bucket(at)}#"}
    table = get_settings().usage_table
    stored = boto3.client("dynamodb").get_item(TableName=table, Key=to_item(key)).get("Item")
    old = from_item(stored) if stored else {"n": 0, "s": Decimal(0), "tw": Decimal(0)}
    into = int((at - at.replace(minute=0, second=0, microsecond=0)).total_seconds())
    cell = CellUsage(
        int(old["n"]) + 1,
        total=Decimal(old["s"]) + change,
        weighted=Decimal(old["tw"]) + change * into,
        aggregation="weighted_sum",
    )
    boto3.client("dynamodb").put_item(TableName=table, Item=to_item({**key, **cell_item(cell)}))


def _about(value: Any) -> Fraction:
    return Fraction(Decimal(str(value))).limit_denominator(10**6)


@pytest.fixture
def seats(real: World) -> dict[str, Any]:
    """A seat meter, a plan at 24.00 per seat-day (per unit) and acme subscribed from START."""
    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    bootstrap.install(billing=real.ctx)
    real.plans.create_meter(
        Meter(code="seat_changes", name="Seats", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    charge = {"meter_code": "seat_changes", "model": "per_unit", "unit_price": "24"}
    plan = {"code": "team", "name": "Team", "currency": "USD", "interval": "month", "charges": [charge]}
    create_plan(real.plans, PlanCreate.model_validate(plan))
    body = SubscriptionCreate(customer_id="acme", plan_code="team", start_at=START)
    return create_subscription(real.plans, body, "sub-acme-team", now=START)


def _usage_line(real: World, n: int) -> dict[str, Any]:
    invoices = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    line: dict[str, Any] = next(x for x in invoices[n]["lines"] if x["line_id"] == "usage:seat_changes::0")
    return line


def _get(path: str, handler_module: str, **params: str) -> Any:
    from importlib import import_module

    from tests.support.lambda_context import FakeContext

    handler = import_module(f"functions.{handler_module}.app").lambda_handler
    response = handler(api_event("GET", path, path_parameters=params, scopes="read"), FakeContext())
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])


def test_seats_bill_by_the_time_they_were_active_and_explain_shows_each_interval(
    real: World, seats: dict[str, Any], monkeypatch: Any
) -> None:
    # GIVEN 3 seats from 00:00 on day 0 and a fourth from 18:00; nothing on day 1
    _seats(START, 3)
    _seats(START + timedelta(hours=18), 1)
    # WHEN days 0 and 1 are billed
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    # THEN day 0 bills 3 seats for 18 hours and 4 for 6: 3.25 seat-days at 24.00 = 78.00
    day0 = _usage_line(real, 0)
    assert (Decimal(day0["quantity"]), day0["amount_minor"]) == (Decimal("3.25"), 7800)
    assert "time-weighted" in day0["description"]
    # AND day 1 bills the 4 seats carried over, all day
    day1 = _usage_line(real, 1)
    assert (Decimal(day1["quantity"]), day1["amount_minor"]) == (Decimal(4), 9600)
    # AND explain shows each interval with its fraction of the period, adding up to the quantity
    invoice_id = next(i["id"] for i in real.invoices("acme") if i["kind"] == "usage")
    explained = _get(f"/v1/invoices/{invoice_id}/explain", "billing_api", invoice_id=invoice_id)
    (line,) = [x for x in explained["lines"] if x["kind"] == "usage"]
    assert line["aggregate"]["aggregation"] == "weighted_sum"
    rows = [
        (r["from"][11:16], r["to"][11:16], r["level"], r["change"], _about(r["fraction"]))
        for r in line["intervals"]
    ]
    assert rows == [
        ("00:00", "01:00", 3, 3, Fraction(1, 24)),
        ("01:00", "18:00", 3, None, Fraction(17, 24)),
        ("18:00", "19:00", 4, 1, Fraction(1, 24)),
        ("19:00", "00:00", 4, None, Fraction(5, 24)),
    ]
    assert sum(_about(r["quantity"]) for r in line["intervals"]) == Fraction(13, 4)


def test_the_upcoming_invoice_and_a_rerun_price_the_same_level(
    real: World, seats: dict[str, Any], monkeypatch: Any
) -> None:
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.logic.billing.upcoming import upcoming_invoice
    from neruba.models.billing import RerunRequest

    # GIVEN 2 seats from 00:00 on day 0, day 0 billed and finalized
    _seats(START, 2)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    (day0,) = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    assert day0["status"] == "finalized"
    # WHEN the upcoming invoice is read at 06:00 on day 1 (a monthly period from START, usage to now)
    preview = upcoming_invoice(real.plans, real.ctx.usage, "acme", now=START + day(1, 6))
    (window,) = preview["windows"]
    (line,) = [x for x in window["lines"] if x["line_id"] == "usage:seat_changes::0"]
    # THEN it prices the 2 seats as held to the period's end (as if nothing changes), shown as one interval
    # from the change to the end of March
    assert _about(line["quantity"]) == 2
    (change, held) = line["source"]["intervals"]
    assert (_about(held["level"]), held["to"][:10], _about(change["change"])) == (2, "2026-04-01", 2)
    # WHEN a seat removed at 12:00 on day 0 arrives late and an operator reruns day 0
    _seats(START + timedelta(hours=12), -1)
    result = rerun_invoice(real.ctx, day0["id"], RerunRequest(reason="late seat removal"), "key:test", "r1",
                           now=START + day(1, 4))  # fmt: skip
    # THEN the correction takes back 1 seat for half a day: -0.5 seat-days, -12.00
    assert result["action"] == "adjustment_pending"
    (delta,) = result["correction"]["lines"]
    assert (Decimal(delta["quantity"]), delta["amount_minor"]) == (Decimal("-0.5"), -1200)
    # AND the rerun stored the new closing level, so day 1 bills the 1 seat left
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    assert (Decimal(_usage_line(real, 1)["quantity"]), _usage_line(real, 1)["amount_minor"]) == (
        Decimal(1),
        2400,
    )
