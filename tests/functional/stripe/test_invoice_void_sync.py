"""A void reaches Stripe (the local fake with the real stripe library): the voided invoice's Stripe invoice
is voided (open), deleted (still a draft) or, when Stripe already has it paid, given back by a Stripe
credit note to the customer's balance; never twice, through lost answers and 5xx errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.support.aws import queue_url
from tests.support.invoices import add_customer, invoices, store_invoice
from tests.support.queues import receive_batch, run_batch

INVOICE = {
    "id": "in_" + "e" * 24,
    "customer_id": "acme",
    "currency": "USD",
    "kind": "one_off",
    "lines": [
        {
            "line_id": "one_off:0",
            "kind": "one_off",
            "description": "Setup",
            "amount_minor": 5000,
            "quantity": "1",
        }
    ],
    "subtotal_minor": 5000,
    "total_minor": 5000,
}


@pytest.fixture
def fake(stripe_secret: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", server.url)
        yield server


@pytest.fixture
def ours(aws: dict[str, str]) -> str:
    add_customer("acme", email="billing@acme.test")
    return store_invoice(INVOICE).id


def _run() -> set[str]:
    from functions.stripe_sync.app import lambda_handler

    url = queue_url("StripeSyncQueue")
    return run_batch(lambda_handler, url, receive_batch(url, 10))


def _send(body: dict[str, Any]) -> None:
    boto3.client("sqs").send_message(QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps(body))


def _void(invoice_id: str, key: str = "v1") -> dict[str, Any]:
    from neruba import bootstrap
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    return void_invoice(bootstrap.billing(), invoice_id, InvoiceVoid(reason="wrong customer"), "key:t", key)


def _stripe_id(invoice_id: str) -> str:
    stored = invoices().get(invoice_id)
    assert stored is not None and stored.stripe_invoice_id
    return str(stored.stripe_invoice_id)


def _void_state(invoice_id: str) -> dict[str, Any]:
    stored = invoices().get(invoice_id)
    assert stored is not None
    return dict((stored.stripe or {}).get("void") or {})


def _calls(fake: FakeStripe, method: str, suffix: str) -> int:
    return sum(1 for m, path, _ in fake.requests if m == method and path.endswith(suffix))


def test_a_void_of_a_synced_invoice_voids_it_in_stripe_once(fake: FakeStripe, ours: str) -> None:
    _send({"invoice_id": ours})
    assert _run() == set()
    theirs = _stripe_id(ours)
    assert fake.invoices[theirs]["status"] == "open"

    done = _void(ours)
    assert _run() == set()  # the void message (and the replacement's own sync)

    assert fake.invoices[theirs]["status"] == "void"
    assert _void_state(ours)["status"] == "voided"
    replacement = done["replacement"]["id"]
    assert fake.invoices[_stripe_id(replacement)]["status"] == "open"
    # the same request again, and the message again, void nothing twice
    assert _void(ours)["replacement"]["id"] == replacement
    _send({"void_invoice_id": ours})
    assert _run() == set()
    assert _calls(fake, "POST", f"/invoices/{theirs}/void") == 1


def test_a_5xx_on_the_void_is_retried_and_voids_once(fake: FakeStripe, ours: str) -> None:
    _send({"invoice_id": ours})
    assert _run() == set()
    theirs = _stripe_id(ours)
    fake.fail_next(f"*/invoices/{theirs}/void")

    _void(ours)
    failed = _run()
    assert len(failed) == 1 and fake.invoices[theirs]["status"] == "open"
    _send({"void_invoice_id": ours})  # the queue's redelivery
    assert _run() == set()
    assert fake.invoices[theirs]["status"] == "void" and _void_state(ours)["status"] == "voided"


def test_a_lost_answer_of_the_void_is_found_void_on_the_retry(fake: FakeStripe, ours: str) -> None:
    _send({"invoice_id": ours})
    assert _run() == set()
    theirs = _stripe_id(ours)
    fake.fail_after_execute(f"*/invoices/{theirs}/void")

    _void(ours)
    assert len(_run()) == 1
    _send({"void_invoice_id": ours})
    assert _run() == set()
    assert _void_state(ours)["status"] == "voided"
    assert _calls(fake, "POST", f"/invoices/{theirs}/void") == 1


def test_an_invoice_stripe_has_paid_gets_a_stripe_credit_note_instead(fake: FakeStripe, ours: str) -> None:
    _send({"invoice_id": ours})
    assert _run() == set()
    theirs = _stripe_id(ours)
    fake.handle("POST", f"/v1/invoices/{theirs}/pay", {}, None)  # paid in Stripe; the webhook not seen yet

    _void(ours)
    assert _run() == set()

    (note,) = fake.credit_notes.values()
    assert (note["invoice"], note["amount"], note["credit_amount"]) == (theirs, 5000, 5000)
    state = _void_state(ours)
    assert (state["status"], state["credit_note_id"]) == ("credited", note["id"])
    _send({"void_invoice_id": ours})
    assert _run() == set() and len(fake.credit_notes) == 1


def test_a_draft_left_in_stripe_is_deleted_and_one_never_sent_is_left_alone(
    fake: FakeStripe, ours: str
) -> None:
    fake.fail_next("*/invoices/*/finalize")  # the sync stops after creating the draft
    _send({"invoice_id": ours})
    assert len(_run()) == 1
    stored = invoices().get(ours)
    assert stored is not None
    draft = str((stored.stripe or {})["invoice_id"])

    _void(ours)
    assert _run() == set()
    assert draft not in fake.invoices and _void_state(ours)["status"] == "deleted"

    # an invoice that never reached Stripe: nothing to call
    never = store_invoice({**INVOICE, "id": "in_" + "f" * 24}).id
    calls = len(fake.requests)
    _void(never, key="v2")
    _run()
    assert _void_state(never)["status"] == "not_in_stripe"
    assert not any(path.startswith("/v1/invoices") and m != "POST" for m, path, _ in fake.requests[calls:])


def test_a_void_committed_while_the_sync_runs_is_taken_out_after_it(
    fake: FakeStripe, ours: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.stripe.sync import InvoiceSync

    draft = InvoiceSync._draft

    def voided_meanwhile(self: InvoiceSync, invoice: Any, sync: dict[str, Any]) -> str:
        monkeypatch.setattr(InvoiceSync, "_draft", draft)
        _void(ours)  # commits, and its message is handled, before this sync creates the Stripe invoice
        assert _run() == set()
        assert _void_state(ours)["status"] == "not_in_stripe"
        return draft(self, invoice, sync)

    monkeypatch.setattr(InvoiceSync, "_draft", voided_meanwhile)
    _send({"invoice_id": ours})
    assert _run() == set()
    theirs = _stripe_id(ours)
    assert fake.invoices[theirs]["status"] == "void" and _void_state(ours)["status"] == "voided"
    assert _calls(fake, "POST", f"/invoices/{theirs}/void") == 1
