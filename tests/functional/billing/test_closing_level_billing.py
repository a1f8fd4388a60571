"""Closing levels through the real scheduler and worker (daily windows): billing a window re-rates the
earlier windows of its late-event look-back first, oldest first, so a late change to an earlier window
reaches the level of the window being billed on its own invoice, not one invoice later."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work


def _gb(at: datetime, change: int) -> None:
    """A change of the GB level at ``at`` as its hour's aggregate item (what ingest maintains)."""
    from neruba.dal.contributions import cell_item
    from neruba.dal.dynamo import to_item
    from neruba.domain.ingest import hour_bucket
    from neruba.domain.usage import CellUsage

    seconds = int((at - at.replace(minute=0, second=0, microsecond=0)).total_seconds())
    cell = CellUsage(1, total=Decimal(change), weighted=Decimal(change * seconds), aggregation="weighted_sum")
    item = {"pk": "AGG#acme#gb", "sk": f"{hour_bucket(at)}#", **cell_item(cell)}
    boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item=to_item(item))


def _bill(real: World, n: int, monkeypatch: Any, *, finalize: bool = True) -> None:
    """Bill day n - 1 and (unless told not to) finalize it (its grace passes)."""
    schedule(real, START + day(n, 1))
    work(real, START + day(n, 1), monkeypatch)
    if finalize:
        schedule(real, START + day(n, 3))


def test_a_late_change_reaches_the_window_being_billed(real: World, monkeypatch: Any) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    # GIVEN a GB level priced at 1.00 per GB-day: +10 GB at 00:00 on day 0; days 0 and 1 billed
    real.plans.create_meter(
        Meter(code="gb", name="GB", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    plan = {"code": "storage", "name": "Storage", "currency": "USD", "interval": "month"}
    plan["charges"] = [{"meter_code": "gb", "model": "per_unit", "unit_price": "1"}]
    create_plan(real.plans, PlanCreate.model_validate(plan))
    body = SubscriptionCreate(customer_id="acme", plan_code="storage", start_at=START)
    create_subscription(real.plans, body, "sub-acme-gb", now=START)
    _gb(START, 10)
    _bill(real, 1, monkeypatch)
    _bill(real, 2, monkeypatch)
    # WHEN +4 GB of 12:00 on day 0 arrive late, and day 2 is billed
    _gb(START + timedelta(hours=12), 4)
    _bill(real, 3, monkeypatch, finalize=False)
    # THEN day 2's own line (as billed, before its finalization re-rates it) bills the 14 GB level, and
    # the adjustments bring days 0 and 1 up to it
    invoices = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    assert [i["period_start"][:10] for i in invoices] == [
        (START + day(n, 0)).date().isoformat() for n in range(3)
    ]
    lines = {line["line_id"]: line for line in invoices[2]["lines"]}
    assert (lines["usage:gb::0"]["quantity"], lines["usage:gb::0"]["amount_minor"]) == (Decimal(14), 1400)
    adjustments = sorted(
        (line["references"]["invoice_id"], line["amount_minor"])
        for line in lines.values()
        if line["kind"] == "adjustment"
    )
    assert sorted(amount for _, amount in adjustments) == [200, 400]  # 4 GB for half of day 0, all of day 1
    assert {ref for ref, _ in adjustments} == {invoices[0]["id"], invoices[1]["id"]}
