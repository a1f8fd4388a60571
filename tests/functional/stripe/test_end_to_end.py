"""Stripe end to end on the real modules: billing finalizes invoices (real pricing, ledger postings and
credits), sync-out pushes them to a fake Stripe through the real stripe library, signed webhooks come back
and the worker posts to the real ledger and moves the real invoices. The plan is the billing tests' "basic"
(0.10 per API call, no fee) on daily windows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from neruba.dal.invoices import Invoice, InvoicesRepository
from neruba.dal.ledger import LedgerRepository
from neruba.settings import get_settings
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event, call
from tests.support.aws import queue_url, receive_all
from tests.support.queues import drain, receive_batch, run_batch
from tests.support.stripe_events import event

CUSTOMER = "acme"


@pytest.fixture
def finalized(world: World, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """acme billed for day 0 (100 calls: 1000) and day 1 (25 calls: 250), finalized; sync messages queued.

    Returns the two usage invoices; the opening invoice (the basic plan has no fee: total 0) is finalized
    and synced as well."""
    world.subscribe(CUSTOMER)
    world.usage(CUSTOMER, START + day(0, 3), 100)
    world.usage(CUSTOMER, START + day(1, 3), 25)
    now = START + day(2, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    schedule(world, now + day(0, 2))
    opening, *usage = world.invoices(CUSTOMER)
    assert (opening["status"], opening["total_minor"]) == ("finalized", 0)
    assert [(i["status"], i["total_minor"]) for i in usage] == [("finalized", 1000), ("finalized", 250)]
    return usage


def sync_run() -> set[str]:
    from functions.stripe_sync.app import lambda_handler

    url = queue_url("StripeSyncQueue")
    return run_batch(lambda_handler, url, receive_batch(url, 10))


def work_events() -> int:
    from functions.stripe_worker.app import lambda_handler

    return drain(lambda_handler, queue_url("StripeEventsQueue"), batch_size=10)


def invoice(invoice_id: str) -> Invoice:
    found = InvoicesRepository(get_settings().billing_table).get(invoice_id)
    assert found is not None
    return found


def ledger() -> LedgerRepository:
    return LedgerRepository(get_settings().ledger_table)


def postings(reason: str | None = None) -> list[Any]:
    found, _ = ledger().postings(CUSTOMER, limit=100)
    return [p for p in found if reason is None or p.reason == reason]


def balance() -> dict[str, Any]:
    from neruba.logic.ledger.reads import balance as read_balance

    return read_balance(CUSTOMER)


def stripe_invoice_of(fake: FakeStripe, invoice_id: str) -> dict[str, Any]:
    (found,) = [i for i in fake.invoices.values() if i["metadata"].get("neruba_invoice_id") == invoice_id]
    return found


def paid_event(stripe_invoice: dict[str, Any], charge: str) -> dict[str, Any]:
    """Stripe's invoice.paid for an invoice the sync created (its metadata as the sync wrote it)."""
    obj = {
        **stripe_invoice,
        "status": "paid",
        "amount_paid": stripe_invoice["total"],
        "amount_due": stripe_invoice["total"],
        "charge": charge,
        "payment_intent": f"pi_{charge}",
    }
    return event("invoice.paid", obj)


def refund_event(charge: str, refunds: list[tuple[str, int]]) -> dict[str, Any]:
    listed = [{"id": r, "amount": a, "status": "succeeded"} for r, a in refunds]
    obj = {
        "id": charge,
        "object": "charge",
        "payment_intent": f"pi_{charge}",
        "amount_refunded": sum(a for _, a in refunds),
        "refunds": {"object": "list", "data": listed},
    }
    return event("charge.refunded", obj)


def dispute_event(kind: str, dispute_id: str, charge: str, amount: int, status: str) -> dict[str, Any]:
    obj = {"id": dispute_id, "object": "dispute", "charge": charge, "amount": amount, "status": status}
    return event(kind, obj)


def synced_and_paid(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Callable[..., tuple[int, Any]]
) -> list[dict[str, Any]]:
    """Sync both invoices, then deliver and process invoice.paid for each (charges ch_0, ch_1)."""
    while sync_run():
        pass
    events = [paid_event(stripe_invoice_of(fake, inv["id"]), f"ch_{n}") for n, inv in enumerate(finalized)]
    for paid in events:
        assert deliver(paid)[0] == 200
    work_events()
    return events


# ------------------------------------------------------------------------------------------------ (a)
def test_a_finalized_invoice_is_synced_once_and_paid_through_a_signed_webhook(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Any, world: World
) -> None:
    # GIVEN the finalized invoices (the opening one of 0 too) queued for sync, and Stripe failing the
    # first finalize with a 500
    every = world.invoices(CUSTOMER)
    total = sum(i["total_minor"] for i in finalized)
    assert balance()["amount_due_minor"] == total
    fake.fail_next("/v1/invoices/*/finalize", 1)
    # WHEN the sync worker runs, and again after the failure (the message is retried)
    assert len(sync_run()) == 1
    failed = next(i for i in every if invoice(i["id"]).stripe["status"] == "failed")
    assert invoice(failed["id"]).stripe["retries"] == {"finalize": 1}
    assert sync_run() == set()
    # THEN each invoice is exactly one finalized Stripe invoice with our total and our metadata
    assert len(fake.invoices) == len(every) == 3 and len(fake.customers) == 1
    for ours in every:
        theirs = stripe_invoice_of(fake, ours["id"])
        assert theirs["status"] == "open" and theirs["total"] == ours["total_minor"]
        assert theirs["metadata"]["neruba_customer_id"] == CUSTOMER
        sync = invoice(ours["id"]).stripe
        assert (sync["status"], sync["invoice_id"]) == ("synced", theirs["id"])
    (customer,) = fake.customers.values()
    assert customer["email"] == "billing@acme.test" and customer["name"] == "Acme"

    # WHEN Stripe collects and sends a signed invoice.paid for each
    events = [paid_event(stripe_invoice_of(fake, i["id"]), f"ch_{n}") for n, i in enumerate(finalized)]
    for paid in events:
        assert deliver(paid)[0] == 200
    work_events()

    # THEN the invoices are paid, one payment posting each (keyed by the charge), the ledger reconciles
    assert [invoice(i["id"]).status for i in finalized] == ["paid", "paid"]
    payments = postings("payment")
    assert sorted((p.idempotency_key, p.source_id) for p in payments) == [
        ("stripe:payment:ch_0", "ch_0"),
        ("stripe:payment:ch_1", "ch_1"),
    ]
    assert ledger().reconcile(CUSTOMER) == []
    view = balance()
    assert view["amount_due_minor"] == 0 and view["paid_to_date_minor"] == total == 1250
    # AND a redelivered sync message makes no Stripe call and no second invoice
    calls = len(fake.requests)
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"invoice_id": finalized[0]["id"]})
    )
    assert sync_run() == set() and len(fake.requests) == calls and len(fake.invoices) == 3


# ------------------------------------------------------------------------------------------------ (b)
def test_a_refund_delivered_before_the_payment_posts_once_after_it(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Any, stored: Any
) -> None:
    # GIVEN the invoices synced; the 250 invoice will be paid by charge ch_1
    while sync_run():
        pass
    usage = finalized[1]
    refund = refund_event("ch_1", [("re_1", 100)])
    # WHEN the refund arrives (and is processed) before invoice.paid, then invoice.paid arrives
    deliver(refund)
    work_events()
    assert stored(refund["id"])["status"] == "deferred" and postings("refund") == []
    paid = paid_event(stripe_invoice_of(fake, usage["id"]), "ch_1")
    deliver(paid)
    work_events()
    # AND the same refund is described again by a later charge.refunded (a second refund re_2 added)
    again = refund_event("ch_1", [("re_1", 100), ("re_2", 50)])
    deliver(again)
    work_events()
    # THEN the payment (the invoice's 250) posted once, each refund once and nothing else, every event
    # processed; the first refund was deferred until the payment woke it
    assert [(p.idempotency_key, p.total_minor) for p in postings("payment")] == [("stripe:payment:ch_1", 250)]
    assert sorted((p.idempotency_key, p.source_id) for p in postings("refund")) == [
        ("stripe:refund:re_1", "re_1"),
        ("stripe:refund:re_2", "re_2"),
    ]
    assert sorted(p.reason for p in postings() if p.source == "stripe") == ["payment", "refund", "refund"]
    assert {stored(e["id"])["status"] for e in (refund, paid, again)} == {"processed"}
    assert [h["status"] for h in stored(refund["id"])["history"]] == ["deferred", "processed"]
    assert invoice(usage["id"]).status == "paid"
    # AND the balances: day 0's invoice (1000) still due, cash 250 - 150 refunded, refunds 150
    assert ledger().reconcile(CUSTOMER) == []
    view = balance()
    assert (view["amount_due_minor"], view["paid_to_date_minor"]) == (1000, 100)
    assert ledger().balances(CUSTOMER)["USD"]["refunds"] == 150


def test_refunds_without_their_list_post_only_the_increase_of_the_refunded_total(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Any, stored: Any
) -> None:
    # GIVEN the 250 invoice paid by ch_1, and charge.refunded payloads without a refund list (as Stripe
    # sends them since API version 2022-11-15): amount_refunded is the charge's cumulative total
    synced_and_paid(fake, finalized, deliver)

    def refunded(total: int) -> dict[str, Any]:
        obj = {"id": "ch_1", "object": "charge", "payment_intent": "pi_ch_1", "amount_refunded": total}
        return event("charge.refunded", obj)

    # WHEN a first partial refund (100), the same total again (another event), then a second (total 160)
    first, same, second = refunded(100), refunded(100), refunded(160)
    for delivered in (first, same, second):
        deliver(delivered)
        work_events()
    # AND the first event is processed again (a redelivery)
    deliver(first)
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeEventsQueue"), MessageBody=json.dumps({"event_id": first["id"]})
    )
    work_events()
    # THEN 100 and 60 were posted, once each: refunds total the charge's refunded total
    assert sorted(p.idempotency_key for p in postings("refund")) == [
        "stripe:refund:ch_1:upto:100",
        "stripe:refund:ch_1:upto:160",
    ]
    assert ledger().balances(CUSTOMER)["USD"]["refunds"] == 160
    assert "already_applied" in stored(same["id"])["outcome"]
    assert ledger().reconcile(CUSTOMER) == []


# ------------------------------------------------------------------------------------------------ (c)
# Replaying a processed payment (nothing posted, one audit record, the same Idempotency-Key writes nothing):
# test_admin.test_replaying_a_processed_payment_posts_nothing_and_is_audited.


# ------------------------------------------------------------------------------------------------ (d)
@pytest.mark.parametrize(
    ("result", "cash", "account", "held"),
    [("lost", 1000, "dispute_losses", 250), ("won", 1250, "cash", 250)],
)
def test_a_dispute_opened_then_closed_gives_the_documented_postings(
    fake: FakeStripe,
    finalized: list[dict[str, Any]],
    deliver: Any,
    result: str,
    cash: int,
    account: str,
    held: int,
) -> None:
    # GIVEN both invoices paid (cash 1250)
    synced_and_paid(fake, finalized, deliver)
    # WHEN the 250 payment (ch_1) is disputed, the event delivered twice, and the dispute closes
    opened = dispute_event("charge.dispute.created", "dp_1", "ch_1", 250, "needs_response")
    deliver(opened)
    deliver(event("charge.dispute.created", opened["data"]["object"]))  # another event, same dispute
    work_events()
    mid = ledger().balances(CUSTOMER)["USD"]
    closed = dispute_event("charge.dispute.closed", "dp_1", "ch_1", 250, result)
    deliver(closed)
    work_events()
    # THEN opening held the funds once (Dr disputes, Cr cash), closing posted per docs/ledger.md
    assert (mid["disputes"], mid["cash"]) == (held, 1000)
    keys = sorted(p.idempotency_key for p in postings() if p.reason.startswith("dispute"))
    assert keys == ["stripe:dispute:dp_1:created", f"stripe:dispute:dp_1:{result}"]
    after = ledger().balances(CUSTOMER)["USD"]
    assert after["disputes"] == 0 and after["cash"] == cash
    if result == "lost":
        assert after["dispute_losses"] == 250
    assert ledger().reconcile(CUSTOMER) == []
    assert balance()["paid_to_date_minor"] == cash and balance()["amount_due_minor"] == 0


# ------------------------------------------------------------------------------------------------ (e)
def test_a_failed_payment_is_visible_on_the_invoice_and_the_event_then_a_payment_clears_it(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Any, stored: Any
) -> None:
    from functions.billing_api.app import lambda_handler as billing_api

    # GIVEN the invoices synced
    while sync_run():
        pass
    usage = finalized[1]
    theirs = stripe_invoice_of(fake, usage["id"])
    # WHEN Stripe reports the payment failed
    failed = event(
        "invoice.payment_failed",
        {**theirs, "status": "open", "amount_paid": 0, "failure_reason": "card_declined"},
    )
    deliver(failed)
    work_events()
    # THEN GET /v1/invoices/{id} shows payment_failed and the event's outcome names it
    status, body, _ = call(
        billing_api,
        api_event("GET", f"/v1/invoices/{usage['id']}", path_parameters={"invoice_id": usage["id"]}),
    )
    assert status == 200 and body["status"] == "payment_failed"
    record = stored(failed["id"])
    assert record["status"] == "processed" and "payment_failed (card_declined): applied" in record["outcome"]
    assert postings("payment") == []
    # WHEN a later retry succeeds THEN the invoice is paid and the payment posted
    deliver(paid_event(theirs, "ch_9"))
    work_events()
    assert invoice(usage["id"]).status == "paid"
    assert [p.source_id for p in postings("payment")] == ["ch_9"]
    # WHEN the old failure is delivered again late (a new event id) THEN the invoice stays paid
    deliver(event("invoice.payment_failed", failed["data"]["object"]))
    work_events()
    assert invoice(usage["id"]).status == "paid"


# ------------------------------------------------------------------------------------------------ local
def test_without_an_api_key_the_sync_fails_visibly_then_dead_letters(
    stripe_secret: Any, finalized: list[dict[str, Any]], world: World
) -> None:
    # GIVEN the Stripe parameter as the local stack seeds it: a webhook secret, no API key
    stripe_secret(["whsec_local"], api_key="")
    # WHEN the sync messages are tried until the queue gives up (maxReceiveCount 8)
    runs = 0
    while sync_run():
        runs += 1
        assert runs <= 10
    # THEN every invoice (the opening one of 0 too) shows the failure and its message waits in StripeSyncDLQ
    assert runs == 8
    every = world.invoices(CUSTOMER)
    for ours in every:
        sync = invoice(ours["id"]).stripe
        assert (sync["status"], sync["last_error"], sync["attempts"]) == (
            "failed",
            "stripe_not_configured",
            8,
        )
    assert len(receive_all(boto3.client("sqs"), queue_url("StripeSyncDLQ"))) == len(every) == 3


# ------------------------------------------------------------------------------------------------ view
def test_every_invoice_shows_what_it_received_and_what_is_left_before_any_payment(
    fake: FakeStripe, finalized: list[dict[str, Any]], deliver: Any
) -> None:
    """docs/stripe.md, "Partial payments": ``amount_paid_minor`` and ``amount_remaining_minor`` are shown by
    GET /v1/invoices/{id}; an invoice nothing was paid on yet has received 0 and owes its total (the
    oracle found both fields missing until a first payment)."""
    from functions.billing_api.app import lambda_handler as billing_api

    def view(invoice_id: str) -> dict[str, Any]:
        status, body, _ = call(
            billing_api,
            api_event("GET", f"/v1/invoices/{invoice_id}", path_parameters={"invoice_id": invoice_id}),
        )
        assert status == 200, body
        return dict(body)

    def listed() -> dict[str, dict[str, Any]]:
        status, body, _ = call(billing_api, api_event("GET", "/v1/invoices", query={"customer_id": CUSTOMER}))
        assert status == 200, body
        return {i["id"]: i for i in body["data"]}

    # GIVEN two finalized invoices, nothing paid
    first, usage = finalized
    # THEN each shows 0 received and its total left, alone and in the list
    for doc in (view(first["id"]), listed()[first["id"]]):
        assert (doc["amount_paid_minor"], doc["amount_remaining_minor"]) == (0, 1000)
    # WHEN the usage invoice is paid THEN it shows all received and nothing left
    synced_and_paid(fake, [usage], deliver)
    doc = view(usage["id"])
    assert (doc["status"], doc["amount_paid_minor"], doc["amount_remaining_minor"]) == ("paid", 250, 0)
