"""Faults with the REAL pricing engine and ledger: however the worker dies, a window leaves exactly one
invoice and one invoice posting, the ledger reconciles, and the receivable is the invoices' total."""

from __future__ import annotations

from typing import Any

import boto3

from neruba.dal.billing import BillingRun
from neruba.logic.billing import worker as billing_worker
from neruba.settings import get_settings
from tests.functional.billing.conftest import (
    START,
    World,
    assert_books_agree,
    invoice_postings,
    subscribe_real,
)
from tests.functional.billing.helpers import Killed, billing_state, day, queued, schedule, work, worker
from tests.support.queues import receive_batch, run_batch


def _due(world: World) -> Any:
    """acme subscribed at START with 12 calls on day 0; the opening and day 0 are due, and enqueued."""
    subscribe_real(world, "acme")
    world.usage("acme", START + day(0, 5), 12)
    now = START + day(1, 1)
    schedule(world, now)
    return now


def _assert_billed_once(world: World) -> None:
    invoices = world.invoices("acme")
    assert [(i["kind"], i["subtotal_minor"], i["total_minor"]) for i in invoices] == [
        ("opening", 0, 0),
        ("usage", 1200, 1200),
    ]
    usage = invoices[1]
    # one posting: the usage invoice's (the opening's subtotal is 0: nothing to post)
    assert [(p.idempotency_key, p.total_minor) for p in invoice_postings("acme")] == [
        (f"invoice:{usage['id']}", 1200)
    ]
    assert_books_agree(world, "acme")


def test_killed_after_the_invoice_before_the_advance_then_retried(real: World, monkeypatch: Any) -> None:
    # GIVEN the invoice of day 0 exists (with its posting) while the billing state still points at
    # day 0: the state item is put back as it was before the transaction, which is the only way to get
    # "invoice created, state not advanced" since both are one DynamoDB transaction
    now = _due(real)
    sub_id = real.subscriptions[0]["id"]
    handler = worker(real, now, monkeypatch)
    messages = receive_batch(real.billing_queue, 10)
    run_batch(handler, real.billing_queue, [m for m in messages if '"seq":0' in m["Body"]])
    dynamodb, table = boto3.client("dynamodb"), get_settings().billing_table
    before = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"BST#{sub_id}"}, "sk": {"S": "#"}})["Item"]
    run_batch(handler, real.billing_queue, [m for m in messages if '"seq":1' in m["Body"]])
    dynamodb.put_item(TableName=table, Item=before)
    assert billing_state(real, sub_id).next_seq == 1

    # WHEN the window's job is retried
    schedule(real, now, trigger="manual")
    assert [j["seq"] for j in queued(real.billing_queue)] == [1]
    work(real, now, monkeypatch)

    # THEN the state advanced; exactly one invoice and one invoice posting; the ledger reconciles and
    # the amount due in the ledger is the invoice total
    assert billing_state(real, sub_id).next_seq == 2
    _assert_billed_once(real)


def test_killed_before_the_transaction_then_retried(real: World, monkeypatch: Any) -> None:
    # GIVEN a worker that dies just before its first transaction
    now = _due(real)
    committed = billing_worker.commit
    kills = [1]

    def dies_first(actions: Any) -> None:
        if kills:
            kills.pop()
            raise Killed
        committed(actions)

    monkeypatch.setattr(billing_worker, "commit", dies_first)

    # WHEN the batch fails and SQS delivers it again
    handler = worker(real, now, monkeypatch)
    assert run_batch(handler, real.billing_queue, receive_batch(real.billing_queue, 10))
    work(real, now, monkeypatch)

    # THEN each window was billed once
    _assert_billed_once(real)


def test_killed_after_the_transaction_before_the_sqs_delete(real: World, monkeypatch: Any) -> None:
    # GIVEN a promotional grant, and a worker that commits the usage invoice and dies before the delete
    from neruba.logic.ledger.credits import create_grant
    from tests.functional.billing.conftest import ledger

    grant, _ = create_grant(
        ledger(),
        customer_id="acme",
        kind="promotional",
        amount_minor=500,
        currency="USD",
        idempotency_key="welcome",
        actor="test",
        at=START - day(1),
    )
    now = _due(real)
    committed = billing_worker.commit
    kills = [1]

    def commits_then_dies(actions: Any) -> None:
        committed(actions)
        if kills and any("Put" in a and a["Put"]["Item"]["pk"]["S"].startswith("INV#") for a in actions):
            kills.pop()
            raise Killed

    monkeypatch.setattr(billing_worker, "commit", commits_then_dies)

    # WHEN the undeleted messages come back and are processed again
    handler = worker(real, now, monkeypatch)
    run_batch(handler, real.billing_queue, receive_batch(real.billing_queue, 10))
    work(real, now, monkeypatch)

    # THEN one invoice per window, the grant spent once, one invoice posting, books agree
    usage = real.invoices("acme")[1]
    assert (usage["subtotal_minor"], usage["credits_applied_minor"], usage["total_minor"]) == (1200, 500, 700)
    assert ledger().grant(grant.grant_id).remaining_minor == 0
    assert [p.idempotency_key for p in invoice_postings("acme")] == [f"invoice:{usage['id']}"]
    assert len(real.invoices("acme")) == 2
    assert_books_agree(real, "acme")


def test_two_schedulers_in_threads_one_bills_one_skipped(
    real: World, monkeypatch: Any, atomic_requests: None
) -> None:
    # GIVEN a due subscription, DynamoDB requests applied one at a time (as the service does)
    import threading

    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 2), 3)
    now = START + day(1, 1)
    barrier = threading.Barrier(2)
    runs: list[BillingRun] = []

    def scheduler() -> None:
        barrier.wait()
        runs.append(schedule(real, now))

    # WHEN two schedulers start together, then the worker drains the queue
    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN one run billed and the other was skipped_locked; each window was enqueued once
    assert sorted(r.status for r in runs) == ["completed", "skipped_locked"]
    assert [j["seq"] for j in queued(real.billing_queue)] == [0, 1]
    work(real, now, monkeypatch)

    # AND one invoice per window, books agree
    assert [(i["kind"], i["subtotal_minor"]) for i in real.invoices("acme")] == [
        ("opening", 0),
        ("usage", 300),
    ]
    assert len(invoice_postings("acme")) == 1
    assert_books_agree(real, "acme")


def test_a_job_delivered_twice_in_one_batch(real: World, monkeypatch: Any) -> None:
    # GIVEN the same jobs enqueued twice (two runs)
    now = _due(real)
    schedule(real, now, trigger="manual")

    # WHEN the worker drains the queue
    work(real, now, monkeypatch, batch_size=10)

    # THEN still one invoice per window, one invoice posting, books agree
    _assert_billed_once(real)


def test_a_failing_window_is_retried_then_dead_lettered_and_counted_failed(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN a pricing engine that keeps failing
    now = _due(real)
    run_id = real.ctx.billing.runs(1, None)[0][0].id

    def broken(*args: Any) -> Any:
        raise RuntimeError("pricing unavailable")

    monkeypatch.setattr(real.ctx, "rate_window", broken)
    monkeypatch.setattr(real.ctx, "rate_opening", broken)
    handler = worker(real, now, monkeypatch)

    # WHEN the jobs are delivered until the queue gives up on them
    attempts = 0
    while messages := receive_batch(real.billing_queue, 10):
        attempts += 1
        assert run_batch(handler, real.billing_queue, messages) == {m["MessageId"] for m in messages}

    # THEN nothing was billed, both jobs wait in the DLQ, and the run counts them failed once each
    assert real.invoices("acme") == []
    from tests.support.aws import queue_url, receive_all

    assert len(receive_all(boto3.client("sqs"), queue_url("BillingDLQ"))) == 2
    assert real.ctx.billing.run(run_id).failed == 2
    assert attempts == 5
