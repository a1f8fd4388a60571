"""A prorated seat line on its way to Stripe: billing (real pricing, daily windows) bills seats by the
time they were active, finalization keeps the line, and sync-out pushes it as one invoice item with the
line's exact amount and its description saying the quantity is time-weighted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from neruba.settings import get_settings
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.aws import queue_url
from tests.support.queues import receive_batch, run_batch


def _seat_change(hour: int, change: int) -> None:
    """One change of acme's seats at ``hour`` o'clock on day 0 (its hour's aggregate item)."""
    from neruba.dal.contributions import cell_item
    from neruba.dal.dynamo import to_item
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.usage import CellUsage

    at = START + timedelta(hours=hour)
    cell = CellUsage(1, total=Decimal(change), weighted=Decimal(0), aggregation="weighted_sum")
    item = {"pk": "AGG#acme#seat_changes", "sk": f"{hour_bucket(at)}#", **cell_item(cell)}
    boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item=to_item(item))


def test_a_prorated_seat_line_reaches_stripe_as_billed(
    world: World, fake: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.stripe_sync.app import lambda_handler
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    # GIVEN seats at 7.00 a seat-day, graduated (first 2 seats at 7.00, then 5.00): 2 seats from 00:00 on
    # day 0 and 2 more from 16:00, so 2 + 2 x 8/24 = 2.666... seat-days: 2 x 7 + 0.666... x 5 = 17.33
    world.plans.create_meter(
        Meter(code="seat_changes", name="Seats", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    tiers = [{"up_to": "2", "unit_price": "7"}, {"up_to": None, "unit_price": "5"}]
    charge: dict[str, Any] = {"meter_code": "seat_changes", "model": "graduated", "tiers": tiers}
    plan = {"code": "team", "name": "Team", "currency": "USD", "interval": "month", "charges": [charge]}
    create_plan(world.plans, PlanCreate.model_validate(plan))
    body = SubscriptionCreate(customer_id="acme", plan_code="team", start_at=START)
    create_subscription(world.plans, body, "sub-acme-team", now=START)
    _seat_change(0, 2)
    _seat_change(16, 2)
    # WHEN day 0 is billed and finalized, and sync-out runs
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)
    schedule(world, START + day(1, 3))
    url = queue_url("StripeSyncQueue")
    for _ in range(3):
        run_batch(lambda_handler, url, receive_batch(url, 10))
    # THEN the invoice bills 17.33 on its time-weighted line
    (usage,) = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    (line,) = [x for x in usage["lines"] if x["line_id"] == "usage:seat_changes::0"]
    assert (usage["status"], line["amount_minor"]) == ("finalized", 1733)
    # AND Stripe holds one item for it, with that amount and the line's description
    items = [i for i in fake.items.values() if i["metadata"]["neruba_line_id"] == "usage:seat_changes::0"]
    assert [(int(i["amount"]), i["description"]) for i in items] == [(1733, line["description"])]
    assert "time-weighted" in items[0]["description"]
