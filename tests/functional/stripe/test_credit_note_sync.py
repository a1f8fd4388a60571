"""Credit notes pushed to Stripe (the local fake with the real stripe library): one Stripe credit note per
credit note, with its lines and split; waiting for the invoice's own sync; never created twice."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.support.aws import queue_url
from tests.support.invoices import add_customer, invoices, store_invoice
from tests.support.queues import receive_batch, run_batch

INVOICE = {
    "id": "in_" + "c" * 24,
    "customer_id": "acme",
    "currency": "USD",
    "lines": [
        {
            "line_id": "fixed_fee:0",
            "kind": "fixed_fee",
            "description": "Platform fee",
            "amount_minor": 4900,
            "quantity": "1",
        },
        {
            "line_id": "usage:api_calls:-:0",
            "kind": "usage",
            "description": "API calls",
            "amount_minor": 1234,
            "quantity": "1234",
        },
    ],
    "subtotal_minor": 6134,
    "total_minor": 6134,
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


def _credit(invoice_id: str, key: str, **body: Any) -> dict[str, Any]:
    from neruba import bootstrap
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.models.billing import CreditNoteCreate

    note = CreditNoteCreate.model_validate({"reason": "outage", **body})
    return create_credit_note(bootstrap.billing(), invoice_id, note, "key:t", key)


def test_a_credit_note_becomes_one_stripe_credit_note_after_its_invoice(fake: FakeStripe, ours: str) -> None:
    # GIVEN a credit note issued before the invoice reached Stripe: its message fails (retried later)
    note = _credit(ours, "k1", lines=[{"line_id": "usage:api_calls:-:0", "quantity": "234"}])
    assert note["amount_minor"] == 234
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"invoice_id": ours})
    )
    failed = _run()
    assert len(failed) == 1 and fake.credit_notes == {}

    # WHEN the message comes back after the invoice's sync
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"credit_note_id": note["id"]})
    )
    assert _run() == set()

    # THEN one Stripe credit note on the Stripe invoice, with the line and our ids
    (theirs,) = fake.credit_notes.values()
    stored = invoices().get(ours)
    assert stored is not None and theirs["invoice"] == stored.stripe_invoice_id
    assert (theirs["amount"], theirs["metadata"]["neruba_credit_note_id"]) == (234, note["id"])
    from neruba import bootstrap

    again = bootstrap.billing().billing.credit_notes.get(note["id"])
    assert again is not None and again["stripe"] == {"credit_note_id": theirs["id"], "status": "synced"}
    # AND the same request again, or the message again, makes no second Stripe credit note
    calls = len(fake.requests)
    assert _credit(ours, "k1", lines=[{"line_id": "usage:api_calls:-:0", "quantity": "234"}]) == note
    assert _run() == set()
    assert len(fake.credit_notes) == 1 and len(fake.requests) == calls


TAXED = {
    "id": "in_" + "d" * 24,
    "customer_id": "acme",
    "currency": "USD",
    "lines": [
        {
            "line_id": "fixed_fee:0",
            "kind": "fixed_fee",
            "description": "Platform fee",
            "amount_minor": 4900,
            "quantity": "1",
            "tax": {
                "amount_after_discounts_minor": 4900,
                "net_minor": 4900,
                "inclusive_minor": 0,
                "exclusive_minor": 980,
                "rates": [
                    {
                        "tax_rate_id": "txr_vat",
                        "percentage": "20",
                        "inclusive": False,
                        "taxable_minor": 4900,
                        "amount_minor": 980,
                        "exact_minor": "980",
                    }
                ],
            },
        }
    ],
    "subtotal_minor": 4900,
    "tax_minor": 980,
    "tax_included_minor": 0,
    "total_minor": 5880,
}


def test_a_taxed_credit_note_gives_its_tax_back_in_stripe(fake: FakeStripe, aws: dict[str, str]) -> None:
    # GIVEN a taxed invoice in Stripe (its exclusive tax is an item of its own)
    add_customer("acme", email="billing@acme.test")
    taxed = store_invoice(TAXED).id
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"invoice_id": taxed})
    )
    assert _run() == set()

    # WHEN a credit note takes 1000 of the line (and 200 of its tax)
    note = _credit(taxed, "k1", lines=[{"line_id": "fixed_fee:0", "amount_minor": 1000}])
    assert (note["amount_minor"], note["tax_minor"]) == (1200, 200)
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeSyncQueue"), MessageBody=json.dumps({"credit_note_id": note["id"]})
    )
    assert _run() == set()

    # THEN the Stripe credit note credits the line and its tax, as the invoice carried them
    (theirs,) = fake.credit_notes.values()
    assert theirs["amount"] == 1200
    from neruba.logic.stripe.credit_note_sync import credit_note_params

    lines = credit_note_params(note, "in_S")["lines"]
    assert [(line["description"], line["unit_amount"]) for line in lines] == [
        ("Platform fee", 1000),
        ("Tax", 200),
    ]


def test_a_batch_of_credit_notes_not_ready_is_reported_failed_without_an_invocation_error(
    fake: FakeStripe, ours: str, caplog: pytest.LogCaptureFixture
) -> None:
    from functions.stripe_sync.app import lambda_handler
    from neruba_tools.local.pollers import build_sqs_event
    from tests.support.lambda_context import FakeContext

    # GIVEN a credit note whose invoice is not in Stripe yet, alone in its batch (an expected wait)
    note = _credit(ours, "k1", lines=[{"line_id": "usage:api_calls:-:0", "quantity": "234"}])
    url = queue_url("StripeSyncQueue")
    messages = receive_batch(url, 10)
    assert [json.loads(m["Body"]) for m in messages] == [{"credit_note_id": note["id"]}]

    # WHEN the function runs the batch
    answer = lambda_handler(build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:1:q"), FakeContext())

    # THEN the message is reported failed (SQS retries it, then dead-letters it), the invocation does not
    # fail, and the log says why at WARNING, never an ERROR traceback
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert fake.credit_notes == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    (failure,) = [r for r in caplog.records if r.getMessage().startswith("Record processing exception")]
    assert failure.levelno == logging.WARNING and failure.exc_info, failure  # its traceback kept
