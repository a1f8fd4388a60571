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


def test_invoice_created_and_updated_land_with_the_draft(world: World, monkeypatch: Any) -> None:  # noqa: F811
    from tests.functional.billing.helpers import worker
    from tests.functional.webhooks.sources import crash_with_outbox, outbox
    from tests.support.queues import receive_batch, run_batch

    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 3)
    now = START + day(1, 1)
    schedule(world, now)
    # a crash at the commit of the drafts writes neither a draft nor invoice.created
    with crash_with_outbox(monkeypatch) as crashes:
        run_batch(
            worker(world, now, monkeypatch), world.billing_queue, receive_batch(world.billing_queue, 10)
        )
    assert crashes[0] >= 1 and world.invoices("acme") == [] and outbox("invoice.created") == []
    work(world, now, monkeypatch)
    schedule(world, now, trigger="manual")  # a rerun bills nothing again
    work(world, now, monkeypatch)
    drafts = world.invoices("acme")
    created = outbox("invoice.created")
    assert sorted(e["data"]["id"] for e in created) == sorted(i["id"] for i in drafts)
    assert {e["data"]["status"] for e in created} == {"draft"}
    # late usage re-rates the usage draft at finalization: invoice.updated with the amounts before
    usage = next(i for i in drafts if i["kind"] == "usage")
    world.usage("acme", START + day(0, 5), 2)
    schedule(world, now + day(0, 2))
    (updated,) = outbox("invoice.updated")
    assert updated["data"]["id"] == usage["id"]
    assert updated["data"]["previous_attributes"]["subtotal_minor"] == usage["subtotal_minor"]
    assert updated["data"]["subtotal_minor"] > usage["subtotal_minor"]
    finalized = next(e for e in outbox("invoice.finalized") if e["data"]["id"] == usage["id"])
    assert finalized["data"]["subtotal_minor"] == updated["data"]["subtotal_minor"]
