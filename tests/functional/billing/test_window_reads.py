"""The reads of a window invoice: a customer who uses none of the optional features (one-off charges,
advance items, discounts, tax rates) pays no read for them, and each feature, once used, is read and
applied again (``dal.features``, ``logic.billing.features``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event, call

READS = ("GetItem", "Query", "BatchGetItem", "Scan")


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _post(api: Any, path: str, body: dict[str, Any], key: str, params: dict[str, str] | None = None) -> Any:
    event = api_event("POST", path, body=body, path_parameters=params or {}, headers={"Idempotency-Key": key})
    status, answer = call(api, event)[:2]
    assert status == 201, (answer, answer.get("error", {}).get("details"))
    return answer


@contextmanager
def _requests() -> Iterator[list[tuple[str, str]]]:
    """Every DynamoDB request sent meanwhile, as (operation, partition or table)."""
    from neruba.dal.clients import client

    sent: list[tuple[str, str]] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues") or {}
        key = (params.get("Key") or {}).get("pk") or values.get(":pk") or values.get(":p") or {}
        sent.append((model.name, str(key.get("S", "")) or ",".join(params.get("RequestItems") or ())))

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", note, unique_id="window-reads")
    try:
        yield sent
    finally:
        events.unregister("provide-client-params.dynamodb", unique_id="window-reads")


def _bill_day(world: World, monkeypatch: Any, n: int) -> list[tuple[str, str]]:
    """Schedule and work day ``n``'s window (3 calls the day before): the worker's requests."""
    world.usage("acme", START + day(n - 1, 2), 3)
    schedule(world, START + day(n, 1))
    with _requests() as sent:
        work(world, START + day(n, 1), monkeypatch)
    return sent


def _partitions(sent: list[tuple[str, str]]) -> list[str]:
    return [pk.split("#")[0] for op, pk in sent if op in READS]


def _last_usage(world: World) -> dict[str, Any]:
    return [i for i in world.invoices("acme") if i["kind"] == "usage"][-1]


def test_a_plain_customers_window_reads_nothing_for_features_it_does_not_use(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN a customer with a subscription and usage only, its opening and first day billed
    world.subscribe("acme")
    _bill_day(world, monkeypatch, 0)
    _bill_day(world, monkeypatch, 1)
    # WHEN its second day is billed
    sent = _bill_day(world, monkeypatch, 2)
    # THEN the window reads its state, subscription and adjustments, the invoices of its look-back (one
    # batch), re-rates the earlier finalized window (plan, meter, pending shard's watermark and items,
    # usage), rates its own the same way, then reads the features' flags (one batch) and the grants: 15
    # reads, where it read 20 before the flags (one-off charges, advance items, the customer's and the
    # plan's discounts, tax rates) and the look-back's batch (one GetItem per invoice)
    rating = ["PLN", "MTR", "PND", "PND", "AGG"]
    batch = "test-BillingTable"
    assert _partitions(sent) == ["BST", "SUB", "ADJ", batch, *rating, *rating, batch, "GRT"]
    assert [op for op, _ in sent if op not in READS] == ["TransactWriteItems"]
    assert _last_usage(world)["total_minor"] == 30


def test_a_one_off_charge_is_read_and_carried_once_its_flag_is_set(
    world: World, api: Any, monkeypatch: Any
) -> None:
    world.subscribe("acme")
    _bill_day(world, monkeypatch, 0)
    _bill_day(world, monkeypatch, 1)
    # GIVEN a one-off charge for the next invoice, once windows trust the flags
    fee = {
        "description": "Setup",
        "amount_minor": 500,
        "currency": "USD",
        "reason": "onboarding",
        "mode": "next_invoice",
    }
    path = "/admin/customers/acme/one-off-charges"
    _post(api, path, fee, "o-1", {"customer_id": "acme"})
    # WHEN the next window is billed THEN it reads the charges and carries the fee; the window after
    # still reads them (a flag is never removed) and carries nothing more
    assert "OOC" in _partitions(_bill_day(world, monkeypatch, 2))
    assert _last_usage(world)["subtotal_minor"] == 530
    assert "OOC" in _partitions(_bill_day(world, monkeypatch, 3))
    assert _last_usage(world)["subtotal_minor"] == 30


def test_customer_and_plan_discounts_and_tax_rates_are_read_and_applied_once_flagged(
    world: World, api: Any, monkeypatch: Any
) -> None:
    world.subscribe("acme")
    _bill_day(world, monkeypatch, 0)
    _bill_day(world, monkeypatch, 1)
    # GIVEN a 10% discount on the customer, 0.05 USD off plan basic v1 and a 20% rate on that plan
    ten = {"name": "Ten", "percent_off": "10", "duration": "forever", "reason": "deal"}
    five = {
        "name": "Five",
        "amount_off_minor": 5,
        "currency": "USD",
        "duration": "forever",
        "reason": "promo",
    }
    first = _post(api, "/admin/coupons", ten, "c-1")
    second = _post(api, "/admin/coupons", five, "c-2")
    _post(api, "/admin/discounts", {"coupon_id": first["id"], "customer_id": "acme", "reason": "deal"}, "d-1")
    on_plan = {"coupon_id": second["id"], "plan_code": "basic", "plan_version": 1, "reason": "deal"}
    _post(api, "/admin/discounts", on_plan, "d-2")
    rate = {
        "display_name": "Tax",
        "percentage": "20",
        "inclusive": False,
        "plan_code": "basic",
        "reason": "tax",
    }
    _post(api, "/admin/tax-rates", rate, "t-1")
    # WHEN the next window is billed
    reads = _partitions(_bill_day(world, monkeypatch, 2))
    # THEN it reads each (the customer's and the plan's discounts, the rates) and applies them: 30 less
    # 3 (10%) less 5 is 22, taxed 20% on top (4.4, rounded to 4)
    assert reads.count("DSC") == 2 and "TXR" in reads
    usage = _last_usage(world)
    assert (usage["discounts_minor"], usage["subtotal_minor"], usage["tax_minor"]) == (8, 22, 4)


def test_features_stored_before_their_flags_are_read_until_the_backfill_flags_them(
    world: World, monkeypatch: Any
) -> None:
    from neruba.dal.transaction import Transaction, commit

    # GIVEN a one-off charge stored without its flag (as before the flags existed), and no backfill yet
    world.subscribe("acme")
    charge = {"id": "ooc_old", "customer_id": "acme", "status": "pending", "currency": "USD",
              "amount_minor": 700, "description": "Old fee", "created_at": START.isoformat(),
              "metadata": {}, "reason": "legacy", "ticket": None, "invoice_id": None}  # fmt: skip
    commit(Transaction([world.ctx.billing.one_offs.put_item(charge)]))
    # AND a discount on globex, one on plan basic v1 and a tax rate, stored the same way (no longer in
    # force: the backfill flags what is stored, whatever its status; the reads decide what applies)
    store = world.ctx.billing.discounts
    for partition, item_id in (("DSC#globex", "di_g"), ("DSC#plan#basic#1", "di_p"), ("TXR", "txr_1")):
        doc = {"id": item_id, "status": "archived" if partition == "TXR" else "removed"}
        actions = [store.put_item(partition, doc)]
        if item_id.startswith("di_"):
            actions.append(
                store.put_item("DSCX", {"id": item_id, "status": "active", "partition": partition})
            )
        commit(Transaction(actions))
    # WHEN windows are billed before the backfill's marker exists THEN every feature is read
    assert world.ctx.billing.marker("billing-features-backfill") is None
    assert world.ctx.features("acme").uses("one_off")
    # AND the scheduler's first run flags the stored charge before it marks the backfill done,
    # so the window that trusts the flags still reads the charges and carries it (the opening, here)
    assert "OOC" in _partitions(_bill_day(world, monkeypatch, 0))
    assert world.ctx.billing.marker("billing-features-backfill") is not None
    assert world.ctx.features_trusted
    assert world.invoices("acme")[0]["subtotal_minor"] == 700
    flags = world.ctx.features("globex")
    assert (flags.uses("one_off"), flags.uses("discount"), flags.uses("tax_rate")) == (False, True, True)
    assert flags.plan_discounts("basic", 1) and not flags.plan_discounts("basic", 2)
    assert world.ctx.features("acme").uses("discount") is False


def test_a_delegation_to_stripe_tax_is_read_once_flagged_and_applies_no_rate(
    world: World, api: Any, monkeypatch: Any
) -> None:
    world.subscribe("acme")
    _bill_day(world, monkeypatch, 0)
    _bill_day(world, monkeypatch, 1)
    assert "TXJ" not in _partitions(_bill_day(world, monkeypatch, 2))  # nothing flagged: not read
    # GIVEN acme's tax delegated to Stripe Tax (no tax rate in the deployment)
    place = {"country": "FR", "provider": "stripe_tax", "reason": "Stripe Tax"}
    event = api_event(
        "PUT", "/admin/customers/acme/tax-jurisdiction", body=place,
        path_parameters={"customer_id": "acme"}, headers={"Idempotency-Key": "j-1"},
    )  # fmt: skip
    status, answer = call(api, event)[:2]
    assert status == 200 and answer["provider"] == "stripe_tax", answer
    # WHEN the next window is billed THEN it reads the jurisdiction and stores who taxes it
    assert "TXJ" in _partitions(_bill_day(world, monkeypatch, 3))
    usage = _last_usage(world)
    assert (usage["tax_provider"], usage["tax_location"]) == ("stripe_tax", {"country": "FR", "state": None})
    assert (usage.get("tax_minor", 0), usage["total_minor"]) == (0, 30)
