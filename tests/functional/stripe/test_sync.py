"""Sync-out against a local fake Stripe with the real stripe library: one Stripe invoice per invoice,
whatever fails in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from neruba.dal.invoices import Invoice
from neruba_tools.local.fake_stripe import FakeStripe
from tests.support.aws import queue_url, receive_all
from tests.support.invoices import add_customer, invoices, store_invoice
from tests.support.queues import receive_batch, run_batch

INVOICE = {
    "id": "in_0001",
    "number": "NRB-0001",
    "customer_id": "acme",
    "currency": "USD",
    "status": "finalized",
    "lines": [
        {"line_id": "fixed_fee:0", "kind": "fixed_fee", "description": "Platform fee", "amount_minor": 4900},
        {"line_id": "usage:api_calls:-:0", "kind": "usage", "description": "API calls", "amount_minor": 1234},
        {"line_id": "usage:tokens:model=x:0", "kind": "usage", "description": "Tokens", "amount_minor": 0},
    ],
    "subtotal_minor": 6134,
    "credits_applied_minor": 1000,
    "total_minor": 5134,
}


class Killed(BaseException):
    """The Lambda container dies here."""


@pytest.fixture
def fake(stripe_secret: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", server.url)
        yield server


@pytest.fixture
def acme(aws: dict[str, str]) -> None:
    """acme in the catalog, where the real invoice source reads the customer."""
    add_customer("acme", email="billing@acme.test")


@pytest.fixture
def ours(acme: None) -> Invoice:
    """INVOICE stored and finalized in the billing table."""
    return store_invoice(INVOICE, post=False)


def _sync(invoice_id: str = "in_0001") -> dict[str, Any]:
    found = invoices().get(invoice_id)
    assert found is not None
    return dict(found.stripe or {})


def _send(invoice_id: str = "in_0001") -> None:
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"invoice_id": invoice_id})
    )


def _run_once() -> set[str]:
    from functions.stripe_sync.app import lambda_handler

    url = queue_url("StripeSyncQueue")
    return run_batch(lambda_handler, url, receive_batch(url, 5))


def test_a_finalized_invoice_becomes_one_finalized_stripe_invoice_with_its_items(
    fake: FakeStripe, ours: Invoice
) -> None:
    # GIVEN a finalized invoice queued for sync
    _send()
    # WHEN the sync worker runs
    assert _run_once() == set()
    # THEN Stripe has one customer, one open invoice with the non-zero lines and the credits, and our total
    (customer,) = fake.customers.values()
    assert customer["metadata"] == {"neruba_customer_id": "acme"} and customer["email"] == "billing@acme.test"
    (stripe_invoice,) = fake.invoices.values()
    assert stripe_invoice["status"] == "open" and stripe_invoice["total"] == 5134
    assert stripe_invoice["metadata"]["neruba_invoice_id"] == "in_0001"
    assert sorted(i["amount"] for i in fake.items.values()) == [-1000, 1234, 4900]
    # AND the sync record holds every Stripe id and is synced
    sync = _sync()
    assert sync["status"] == "synced" and sync["attempts"] == 1 and sync["last_error"] is None
    assert sync["invoice_id"] == stripe_invoice["id"] and sync["customer_id"] == customer["id"]
    assert set(sync["items"]) == {"fixed_fee:0", "usage:api_calls:-:0", "credits"}
    # AND every create call carried the key derived from our ids
    keys = {k for m, _, k in fake.requests if m == "POST"}
    assert keys == {
        "neruba-customer-acme", "neruba-in_0001-invoice", "neruba-in_0001-item-fixed_fee:0",
        "neruba-in_0001-item-usage:api_calls:-:0", "neruba-in_0001-item-credits", "neruba-in_0001-finalize",
    }  # fmt: skip


def test_a_500_on_finalize_is_retried_and_leaves_exactly_one_stripe_invoice(
    fake: FakeStripe, ours: Invoice
) -> None:
    # GIVEN Stripe answers the next finalize with a 500 (saved under its key, as Stripe does)
    fake.fail_next("/v1/invoices/*/finalize", 1)
    _send()
    # WHEN the first attempt runs THEN the message fails and the failure is visible on the invoice
    assert len(_run_once()) == 1
    sync = _sync()
    assert sync["status"] == "failed" and "APIError" in sync["last_error"]
    assert sync["attempts"] == 1 and sync["retries"] == {"finalize": 1}
    # WHEN SQS delivers it again
    assert _run_once() == set()
    # THEN one Stripe invoice, finalized, and the invoice is synced after two attempts
    (stripe_invoice,) = fake.invoices.values()
    assert stripe_invoice["status"] == "open" and len(fake.items) == 3
    sync = _sync()
    assert sync["status"] == "synced" and sync["attempts"] == 2 and sync["last_error"] is None
    assert receive_all(boto3.client("sqs"), queue_url("StripeSyncQueue")) == []


def test_a_500_after_stripe_created_the_invoice_finds_it_instead_of_creating_another(
    fake: FakeStripe, ours: Invoice
) -> None:
    # GIVEN Stripe creates the invoice but the answer is a 500 (and a retry with that key replays the 500)
    fake.fail_after_execute("/v1/invoices", 1)
    _send()
    assert len(_run_once()) == 1
    assert len(fake.invoices) == 1 and _sync().get("invoice_id") is None
    # WHEN retried
    assert _run_once() == set()
    # THEN the existing Stripe invoice was found by our metadata and completed: still exactly one
    (stripe_invoice,) = fake.invoices.values()
    assert _sync()["invoice_id"] == stripe_invoice["id"]
    assert stripe_invoice["status"] == "open" and stripe_invoice["total"] == 5134


def test_a_retry_after_a_kill_between_steps_resumes_without_duplicates(
    fake: FakeStripe, ours: Invoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the worker dies right after Stripe created the draft invoice, before its id was stored
    from neruba.dal.invoices import InvoicesRepository

    real = InvoicesRepository.set_sync
    writes = {"n": 0}

    def dying(repo: InvoicesRepository, invoice_id: str, sync: dict[str, Any]) -> None:
        writes["n"] += 1
        if writes["n"] == 2:
            raise Killed
        real(repo, invoice_id, sync)

    monkeypatch.setattr(InvoicesRepository, "set_sync", dying)
    _send()
    assert len(_run_once()) == 1
    assert len(fake.invoices) == 1 and "invoice_id" not in _sync()
    # WHEN the message is delivered again
    assert _run_once() == set()
    # THEN the same key got Stripe's first answer back: one invoice, one customer, three items
    assert len(fake.invoices) == 1 and len(fake.customers) == 1 and len(fake.items) == 3
    (stripe_invoice,) = fake.invoices.values()
    assert _sync()["invoice_id"] == stripe_invoice["id"]
    assert [k for m, _, k in fake.requests if k == "neruba-in_0001-invoice"] == ["neruba-in_0001-invoice"] * 2


def test_a_synced_invoice_queued_again_makes_no_stripe_call(fake: FakeStripe, ours: Invoice) -> None:
    _send()
    _run_once()
    calls = len(fake.requests)
    # WHEN the same invoice is queued again THEN nothing is sent to Stripe
    _send()
    assert _run_once() == set()
    assert len(fake.requests) == calls and len(fake.invoices) == 1


def test_the_customer_is_created_once_across_invoices(fake: FakeStripe, ours: Invoice) -> None:
    # GIVEN a second finalized invoice of the same customer
    store_invoice({**INVOICE, "id": "in_0002"}, post=False)
    _send("in_0001")
    _send("in_0002")
    # WHEN both are synced THEN two Stripe invoices share one Stripe customer
    assert _run_once() == set()
    assert len(fake.invoices) == 2 and len(fake.customers) == 1


def test_persistent_failures_end_in_the_dlq_with_the_error_on_the_invoice(
    fake: FakeStripe, ours: Invoice
) -> None:
    # GIVEN Stripe keeps failing invoice creation
    fake.fail_next("/v1/invoices", 100)
    _send()
    # WHEN the message is tried until the queue gives up (maxReceiveCount 8)
    runs = 0
    while _run_once():
        runs += 1
        assert runs <= 10
    # THEN the message waits in StripeSyncDLQ, the invoice shows the attempts and the last error
    assert len(receive_all(boto3.client("sqs"), queue_url("StripeSyncDLQ"))) == 1
    sync = _sync()
    assert runs == 8 and sync["status"] == "failed" and sync["attempts"] == 8 and sync["last_error"]
    assert fake.invoices == {}


def test_a_total_mismatch_is_recorded_and_not_retried(fake: FakeStripe, acme: None) -> None:
    # GIVEN an invoice whose lines do not add up to its total
    store_invoice({**INVOICE, "total_minor": 9999}, post=False)
    _send()
    # WHEN synced THEN the message is consumed and the invoice shows the mismatch
    assert _run_once() == set()
    sync = _sync()
    assert sync["status"] == "mismatch" and "9999" in sync["last_error"]


def test_drafts_are_not_pushed_and_bad_messages_fail(fake: FakeStripe, acme: None) -> None:
    store_invoice(INVOICE, finalize=False, post=False)
    _send()
    assert _run_once() == set()
    assert _sync()["status"] == "skipped" and fake.requests == []
    boto3.client("sqs").send_message(QueueUrl=queue_url("StripeSyncQueue"), MessageBody="{not json")
    assert len(_run_once()) == 1


def test_a_failing_sync_sends_one_webhook_event_with_its_first_failed_attempt(
    fake: FakeStripe, ours: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.functional.webhooks.sources import crash_with_outbox, outbox

    # GIVEN Stripe keeps failing invoice creation
    fake.fail_next("/v1/invoices", 100)
    _send()
    # WHEN the first failed attempt dies at the commit of its record: neither the record nor the event
    with crash_with_outbox(monkeypatch) as crashes:
        assert _run_once()
    assert crashes == [1] and _sync()["status"] == "in_progress" and outbox("stripe_sync.failed") == []
    # THEN the next attempts fail: one stripe_sync.failed event, stored with the first failed record
    assert _run_once() and _run_once()
    (event,) = outbox("stripe_sync.failed")
    assert (event["customer_id"], event["data"]["invoice_id"], event["data"]["attempt"]) == (
        "acme",
        "in_0001",
        2,
    )
    assert event["data"]["error"] and _sync()["attempts"] == 3
