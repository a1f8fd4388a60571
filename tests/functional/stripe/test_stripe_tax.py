"""Tax delegated to Stripe Tax, end to end on the real modules: a customer whose jurisdiction says
``provider: stripe_tax`` is billed without Neruba's tax, its invoices reach the fake Stripe with
``automatic_tax[enabled]=true`` (the customer placed by its jurisdiction), the tax Stripe computes comes
back on ``invoice.finalized`` / ``invoice.paid`` and is recorded once on the invoice and in the ledger;
a customer Stripe cannot place is a failed sync an operator sees; without delegation nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.dal.stripe_events import StripeEventsRepository
from neruba.settings import get_settings
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.stripe.test_end_to_end import (
    CUSTOMER,
    balance,
    invoice,
    ledger,
    paid_event,
    stripe_invoice_of,
    sync_run,
    work_events,
)
from tests.support.api import api_event, call
from tests.support.stripe_events import event

VAT = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": "DE", "reason": "DE VAT"}


def _admin(world: World, method: str, path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    params = {"customer_id": CUSTOMER} if "/customers/" in path else {}
    found = api_event(method, path, body=body, path_parameters=params, headers={"Idempotency-Key": key})
    status, answer, _ = call(lambda_handler, found)
    return status, answer


def _place(world: World, provider: str, country: str = "DE") -> dict[str, Any]:
    body = {"country": country, "provider": provider, "reason": "tax registration"}
    status, answer = _admin(world, "PUT", f"/admin/customers/{CUSTOMER}/tax-jurisdiction", body, "j-1")
    assert status == 200, answer
    return answer


def _bill(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """acme billed for day 0 (100 calls: 1000), finalized, sync messages queued; the usage invoice."""
    world.subscribe(CUSTOMER)
    world.usage(CUSTOMER, START + day(0, 3), 100)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    schedule(world, now + day(0, 2))
    [usage] = [i for i in world.invoices(CUSTOMER) if i["kind"] == "usage"]
    return usage


def _ledger_balanced_and_owed() -> dict[str, int]:
    repo = ledger()
    assert repo.reconcile(CUSTOMER) == []
    found = repo.balances(CUSTOMER)["USD"]
    return {k: int(found.get(k, 0)) for k in ("tax_payable", "receivable", "cash", "revenue")}


def test_delegated_invoices_carry_no_tax_of_ours_and_stripe_tax_is_recorded_once(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Neruba rate for DE that would apply, and acme delegated to Stripe Tax in DE
    assert _admin(world, "POST", "/admin/tax-rates", VAT, "t-1")[0] == 201
    placed = _place(world, "stripe_tax")
    assert (placed["provider"], placed["tax_rates"]) == ("stripe_tax", [])
    # WHEN a day is billed
    usage = _bill(world, monkeypatch)
    # THEN Neruba computed no tax and stored who will
    assert (usage.get("tax_minor", 0), usage["total_minor"], usage["tax_provider"]) == (0, 1000, "stripe_tax")
    assert usage["tax_location"] == {"country": "DE", "state": None}
    assert all("tax" not in line for line in usage["lines"])

    # WHEN it is synced (the answers of the invoice create and of finalize lost once each, then retried)
    fake.fail_after_execute("/v1/invoices", 1)
    fake.fail_after_execute("/v1/invoices/*/finalize", 1)
    while sync_run():
        pass
    # THEN one Stripe invoice, with automatic tax, no tax item of ours; Stripe added 19%
    stripe_invoice = stripe_invoice_of(fake, usage["id"])
    assert stripe_invoice["automatic_tax"] == {"enabled": True, "status": "complete"}
    assert (stripe_invoice["total_excluding_tax"], stripe_invoice["tax"], stripe_invoice["total"]) == (
        1000, 190, 1190)  # fmt: skip
    assert fake.customers[stripe_invoice["customer"]]["address"] == {"country": "DE"}
    assert [i["amount"] for i in fake.items.values() if i["invoice"] == stripe_invoice["id"]] == [1000]
    sync = invoice(usage["id"]).stripe or {}
    assert (sync["status"], sync["tax"]) == ("synced", {"exclusive_minor": 190, "inclusive_minor": 0})
    assert _ledger_balanced_and_owed()["tax_payable"] == 0  # nothing recorded before Stripe says so

    # WHEN invoice.finalized arrives twice (a redelivery) and is processed, then replayed by hand
    finalized = event("invoice.finalized", stripe_invoice)
    assert deliver(finalized)[0] == 200 and deliver(finalized)[0] == 200
    work_events()
    from neruba import bootstrap

    replay = bootstrap.stripe_processor().process(finalized["id"], trigger="replay")
    assert "already_applied" in replay.outcome, replay
    # THEN the tax is recorded once: the invoice amended, one tax posting, the books balanced
    amended = invoice(usage["id"]).document
    assert (amended["tax_minor"], amended["total_minor"], amended["subtotal_minor"]) == (190, 1190, 1000)
    assert amended["stripe_tax"]["exclusive_minor"] == 190
    taxed = [
        p for p in ledger().postings(CUSTOMER, limit=100)[0] if p.idempotency_key.startswith("stripe:tax")
    ]
    assert [(p.idempotency_key, p.reason) for p in taxed] == [(f"stripe:tax:{usage['id']}", "invoice_tax")]
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"]) == (-190, 1190)
    from tests.functional.webhooks.sources import outbox

    [told] = [e["data"] for e in outbox("invoice.updated") if e["data"]["id"] == usage["id"]]
    assert (told["tax_minor"], told["total_minor"], told["previous_attributes"]["total_minor"]) == (
        190, 1190, 1000)  # fmt: skip

    # WHEN Stripe collects and invoice.paid (carrying the same tax) arrives, twice
    paid = paid_event(stripe_invoice, "ch_tax")
    assert deliver(paid)[0] == 200 and deliver(paid)[0] == 200
    work_events()
    # THEN the payment meets the amended total, the tax is not recorded again, nothing is owed
    assert (invoice(usage["id"]).status, invoice(usage["id"]).amount_paid_minor) == ("paid", 1190)
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"], books["cash"]) == (-190, 0, 1190)
    assert balance()["amount_due_minor"] == 0
    assert len([p for p in ledger().postings(CUSTOMER, limit=100)[0] if p.reason == "invoice_tax"]) == 1
    # the invoice answer shows it
    from neruba.logic.billing.invoices import public

    shown = public(invoice(usage["id"]))
    assert (shown["tax_minor"], shown["total_minor"], shown["amount_remaining_minor"]) == (190, 1190, 0)
    assert shown["stripe_tax"]["exclusive_minor"] == 190


def test_invoice_paid_alone_records_the_tax_before_the_payment(
    fake: FakeStripe, world: World, deliver: Any, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice synced, whose invoice.finalized never arrived
    _place(world, "stripe_tax")
    usage = _bill(world, monkeypatch)
    while sync_run():
        pass
    stripe_invoice = stripe_invoice_of(fake, usage["id"])
    # WHEN only invoice.paid arrives
    assert deliver(paid_event(stripe_invoice, "ch_only"))[0] == 200
    work_events()
    # THEN the tax and then the payment of the taxed total are recorded
    ours = invoice(usage["id"])
    assert (ours.status, ours.total_minor, ours.amount_paid_minor) == ("paid", 1190, 1190)
    books = _ledger_balanced_and_owed()
    assert (books["tax_payable"], books["receivable"], books["cash"]) == (-190, 0, 1190)
    # AND an event reporting another tax for it is parked for an operator, nothing changed
    other = event("invoice.finalized", {**stripe_invoice, "tax": 500, "total_taxes": [{"amount": 500}]})
    assert deliver(other)[0] == 200
    work_events()
    parked = stored(other["id"])
    assert parked["status"] == "parked" and parked["error"].startswith("stripe_tax_changed"), parked
    assert (parked.get("invoice_id"), parked.get("customer_id")) == (usage["id"], ours.customer_id)
    assert invoice(usage["id"]).total_minor == 1190 and _ledger_balanced_and_owed()["tax_payable"] == -190


def test_without_delegation_neruba_taxes_and_stripe_is_not_asked(
    fake: FakeStripe, world: World, deliver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the DE rate and acme in DE, taxed by Neruba (the default provider)
    assert _admin(world, "POST", "/admin/tax-rates", VAT, "t-1")[0] == 201
    assert _place(world, "neruba")["provider"] == "neruba"
    usage = _bill(world, monkeypatch)
    assert (usage["tax_minor"], usage["total_minor"]) == (200, 1200) and "tax_provider" not in usage
    while sync_run():
        pass
    # THEN the Stripe invoice has no automatic tax and our tax as an item; Stripe's total is ours
    stripe_invoice = stripe_invoice_of(fake, usage["id"])
    assert stripe_invoice["automatic_tax"]["enabled"] is False and "tax" not in stripe_invoice
    assert sorted(i["amount"] for i in fake.items.values() if i["invoice"] == stripe_invoice["id"]) == [
        200, 1000]  # fmt: skip
    assert fake.customers[stripe_invoice["customer"]]["address"] is None
    # AND a finalized event changes nothing (not delegated)
    assert deliver(event("invoice.finalized", {**stripe_invoice, "tax": 999}))[0] == 200
    work_events()
    assert invoice(usage["id"]).total_minor == 1200 and "stripe_tax" not in invoice(usage["id"]).document
    assert _ledger_balanced_and_owed()["tax_payable"] == -200


def test_stripe_refusing_automatic_tax_is_a_failed_sync_an_operator_sees_and_can_redrive(
    fake: FakeStripe, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN acme delegated, but already known in Stripe as a customer without an address
    _place(world, "stripe_tax")
    import stripe

    client = stripe.StripeClient("sk_test_neruba", base_addresses={"api": fake.url})
    known = client.v1.customers.create(params={"name": "Acme"})["id"]
    from datetime import UTC, datetime

    StripeEventsRepository(get_settings().ops_table).put_stripe_customer(CUSTOMER, known, datetime.now(UTC))
    usage = _bill(world, monkeypatch)
    # WHEN the sync runs
    failed = sync_run()
    # THEN Stripe refused: nothing created, the message failed (retried, then StripeSyncDLQ), and the
    # invoice says why; a stripe_sync.failed webhook event is queued
    assert failed and not [i for i in fake.invoices.values() if i["customer"] == known]
    sync = invoice(usage["id"]).stripe or {}
    assert sync["status"] == "failed" and sync["last_error"].startswith("stripe_tax_location_invalid"), sync
    from tests.functional.webhooks.sources import outbox

    opening = next(i["id"] for i in world.invoices(CUSTOMER) if i["kind"] == "opening")
    assert sorted(e["data"]["invoice_id"] for e in outbox("stripe_sync.failed")) == sorted(
        [usage["id"], opening])  # fmt: skip
    # WHEN the operator gives the customer an address in Stripe and the message is delivered again
    fake.customers[known]["address"] = {"country": "FR"}
    for _ in range(3):  # the failed message is visible again at once here
        if not sync_run():
            break
    # THEN each invoice is synced once (the opening one of 0 too), taxed by Stripe at FR's rate
    created = stripe_invoice_of(fake, usage["id"])
    assert len([i for i in fake.invoices.values() if i["customer"] == known]) == 2
    assert (created["customer"], created["tax"], created["total"]) == (known, 200, 1200)
    assert (invoice(usage["id"]).stripe or {})["status"] == "synced"
