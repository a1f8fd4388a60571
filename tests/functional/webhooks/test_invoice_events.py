"""invoice.finalized is written in the transaction that finalizes the invoice."""

from __future__ import annotations

import json
from typing import Any

import boto3

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, world  # noqa: F401 - the billing fixture
from tests.functional.billing.helpers import day, schedule, work


def webhook_events() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    return [json.loads(i["doc"]["S"]) for i in items if i["pk"]["S"].startswith("WHOUT#")]


def test_each_finalized_invoice_has_one_event_and_a_refused_finalization_none(
    world: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 3)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    assert [e for e in webhook_events() if e["type"] == "invoice.finalized"] == []  # drafts only
    schedule(world, now + day(0, 2))
    finalized = [i for i in world.invoices("acme") if i["status"] == "finalized"]
    events = [e for e in webhook_events() if e["type"] == "invoice.finalized"]
    assert finalized and sorted(e["data"]["id"] for e in events) == sorted(i["id"] for i in finalized)
    for event in events:
        invoice = next(i for i in finalized if i["id"] == event["data"]["id"])
        assert event["customer_id"] == "acme"
        assert event["data"]["total_minor"] == invoice["total_minor"]
        assert event["data"]["status"] == "finalized"
    # a later run finalizes nothing and writes no event
    schedule(world, now + day(0, 3))
    assert len([e for e in webhook_events() if e["type"] == "invoice.finalized"]) == len(events)
