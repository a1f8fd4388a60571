"""The Stripe worker on moto: effects on the real ledger and invoices, statuses, ordering, idempotency, bad
messages.

A refund before its payment, a refund list growing by a second refund, and a failed payment followed by a
successful one (and a late copy of the failure): ``test_end_to_end``."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.support.aws import queue_url, receive_all
from tests.support.invoices import Books
from tests.support.queues import receive_batch, run_batch
from tests.support.stripe_events import dispute, event, invoice_paid


def test_invoice_paid_posts_the_payment_and_marks_the_invoice_paid(
    deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    # GIVEN a delivered invoice.paid for our invoice in_ours_1
    paid = invoice_paid(amount=5000)
    deliver(paid)
    # WHEN the worker runs
    process()
    # THEN one payment posting of 5000 USD keyed by the charge, the invoice is paid, the event processed
    assert ports.postings == {
        "stripe:payment:ch_1": {
            "kind": "payment", "invoice_id": "in_ours_1", "customer_id": "acme", "currency": "USD",
            "amount_minor": 5000,
        }
    }  # fmt: skip
    assert ports.status() == "paid"
    record = stored(paid["id"])
    assert record["status"] == "processed" and record["attempts"] == 1
    assert record["invoice_id"] == "in_ours_1" and record["customer_id"] == "acme"
    assert record["history"][0]["trigger"] == "queue"


def test_disputes_opened_and_lost_post_once_even_when_closed_arrives_first(
    deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    # GIVEN a paid invoice, then the dispute's closing (lost) delivered before its opening
    deliver(invoice_paid(charge="ch_1"))
    process()
    closed = dispute("closed", status="lost")
    deliver(closed)
    process()
    assert stored(closed["id"])["status"] == "deferred"
    # WHEN the opening arrives
    deliver(dispute("created"))
    process()
    # THEN both are posted once and the closing is processed
    assert ports.kinds() == ["dispute_created", "dispute_lost", "payment"]
    assert stored(closed["id"])["status"] == "processed"


def test_unknown_types_and_foreign_invoices_are_stored_and_ignored(
    deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    # GIVEN an event type we do not act on, and an invoice.paid for an invoice not issued by us
    unknown = event("customer.created", {"id": "cus_1", "object": "customer"})
    foreign = invoice_paid()
    foreign["data"]["object"]["metadata"] = {}
    deliver(unknown)
    deliver(foreign)
    process()
    # THEN both are kept, marked ignored, and nothing is posted
    assert stored(unknown["id"])["status"] == "ignored"
    assert stored(foreign["id"])["status"] == "ignored"
    assert ports.postings == {}


def test_an_event_with_missing_data_ends_failed_with_its_error(
    deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    # GIVEN an invoice.paid without an amount
    broken = invoice_paid()
    del broken["data"]["object"]["amount_paid"]
    deliver(broken)
    # WHEN processed THEN it is failed with a readable error, and the message is consumed (no loop)
    process()
    record = stored(broken["id"])
    assert record["status"] == "failed" and "amount_paid" in record["error"]
    assert receive_all(boto3.client("sqs"), queue_url("StripeEventsQueue")) == []


def test_a_redelivered_queue_message_posts_nothing_new(
    deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    # GIVEN a processed payment
    paid = invoice_paid()
    deliver(paid)
    process()
    # WHEN SQS delivers the same message again
    boto3.client("sqs").send_message(
        QueueUrl=queue_url("StripeEventsQueue"), MessageBody=json.dumps({"event_id": paid["id"]})
    )
    process()
    # THEN one payment posting, and the settled event is left as it was (its outcome still says applied)
    assert ports.kinds() == ["payment"]
    record = stored(paid["id"])
    assert record["attempts"] == 1 and "already_applied" not in record["outcome"]


def test_transient_failures_are_retried_then_succeed(
    deliver: Any, ports: Books, stored: Any, monkeypatch: Any
) -> None:
    from functions.stripe_worker.app import lambda_handler
    from neruba import bootstrap

    # GIVEN a ledger whose first write fails with an outage
    paid = invoice_paid()
    deliver(paid)
    ledger = bootstrap.stripe_effects().ledger
    real = ledger.post
    calls = {"n": 0}

    def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("ledger unavailable")
        return real(*args, **kw)

    monkeypatch.setattr(ledger, "post", flaky)
    url = queue_url("StripeEventsQueue")
    # WHEN the first attempt runs THEN the message fails and the event is failed with the error
    assert run_batch(lambda_handler, url, receive_batch(url, 10))
    assert stored(paid["id"])["status"] == "failed" and "ledger unavailable" in stored(paid["id"])["error"]
    # WHEN retried THEN it is processed and the error is cleared
    assert run_batch(lambda_handler, url, receive_batch(url, 10)) == set()
    record = stored(paid["id"])
    assert record["status"] == "processed" and "error" not in record and ports.kinds() == ["payment"]


def test_malformed_queue_messages_end_in_the_dlq_never_a_crash_loop(ports: Books) -> None:
    from functions.stripe_worker.app import lambda_handler

    # GIVEN garbage and an unknown event id on the queue
    sqs = boto3.client("sqs")
    url = queue_url("StripeEventsQueue")
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"event_id": "evt_never_stored"}))
    # WHEN the worker keeps failing them (each run reports them as batch item failures)
    for _ in range(6):
        messages = receive_batch(url, 10)
        if messages:
            assert len(run_batch(lambda_handler, url, messages)) == len(messages)
    # THEN after maxReceiveCount receives both wait in the DLQ and the queue is empty
    assert receive_all(sqs, url) == []
    assert len(receive_all(sqs, queue_url("StripeEventsDLQ"))) == 2


def test_payment_webhook_events_land_with_the_invoice_status(
    deliver: Any, process: Any, ports: Books, monkeypatch: Any
) -> None:
    from functions.stripe_worker.app import lambda_handler
    from tests.functional.webhooks.sources import crash_with_outbox, outbox
    from tests.support.stripe_events import payment_failed

    # a failed payment moves the invoice and writes invoice.payment_failed; a late copy writes no second
    deliver(payment_failed())
    process()
    deliver(payment_failed())  # a second Stripe event about the same failure
    process()
    assert ports.status() == "payment_failed"
    (failed,) = outbox("invoice.payment_failed")
    assert (failed["data"]["id"], failed["data"]["status"], failed["customer_id"]) == (
        "in_ours_1", "payment_failed", "acme",
    )  # fmt: skip
    # the payment: a crash at its commit writes neither the payment nor invoice.paid
    paid = invoice_paid(amount=5000)
    deliver(paid)
    url = queue_url("StripeEventsQueue")
    with crash_with_outbox(monkeypatch) as crashes:
        run_batch(lambda_handler, url, receive_batch(url, 10))
    assert crashes == [1] and ports.status() == "payment_failed" and ports.postings == {}
    assert outbox("invoice.paid") == []
    process()
    deliver(invoice_paid(amount=5000))  # another event about the same payment
    process()
    assert ports.status() == "paid"
    (settled,) = outbox("invoice.paid")
    data = settled["data"]
    assert (data["amount_paid_minor"], data["amount_remaining_minor"], data["payment_id"]) == (
        5000,
        0,
        "ch_1",
    )
