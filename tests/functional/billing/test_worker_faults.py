"""A window yields one invoice and one balanced posting however the worker dies or repeats."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3

from neruba.dal.dynamo import to_item
from neruba.logic.billing import worker as billing_worker
from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, assert_ledger_balanced, grant_credits, postings
from tests.functional.billing.helpers import Killed, day, schedule, work, worker
from tests.support.queues import receive_batch, run_batch


def _bill_setup(world: World) -> Any:
    world.subscribe("acme")
    world.usage("acme", START + day(0, 5), 12)
    now = START + day(1, 1)
    schedule(world, now)
    return now


def _assert_one_invoice_per_window(world: World, expected: int) -> None:
    invoices = world.invoices("acme")
    assert len(invoices) == expected
    assert sorted(p["invoice_id"] for p in postings()) == sorted(i["id"] for i in invoices)
    assert_ledger_balanced()


def test_killed_before_the_transaction_then_retried(world: World, monkeypatch: Any) -> None:
    # GIVEN a worker that dies just before its transaction, on the first attempt only
    now = _bill_setup(world)
    real = billing_worker.commit
    kills = [1]

    def dies_first(actions: Any) -> None:
        if kills:
            kills.pop()
            raise Killed
        real(actions)

    monkeypatch.setattr(billing_worker, "commit", dies_first)

    # WHEN the batch fails and SQS delivers it again
    handler = worker(world, now, monkeypatch)
    failed = run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))
    assert failed  # the whole batch was reported failed (the Lambda died)
    work(world, now, monkeypatch)

    # THEN each window has exactly one invoice and one balanced posting
    _assert_one_invoice_per_window(world, 2)


def test_killed_after_the_transaction_before_the_sqs_delete(world: World, monkeypatch: Any) -> None:
    # GIVEN a worker that commits the invoice transaction and dies right after it
    now = _bill_setup(world)
    grant_credits("acme", 500)
    real = billing_worker.commit
    kills = [1]

    def commits_then_dies(actions: Any) -> None:
        real(actions)
        if kills and any("Put" in a and a["Put"]["Item"]["pk"]["S"].startswith("INV#") for a in actions):
            kills.pop()
            raise Killed

    monkeypatch.setattr(billing_worker, "commit", commits_then_dies)

    # WHEN the messages come back (never deleted) and are processed again
    handler = worker(world, now, monkeypatch)
    run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))
    work(world, now, monkeypatch)

    # THEN no second invoice, no second posting, and the credit grant was spent once
    _assert_one_invoice_per_window(world, 2)
    grant = boto3.client("dynamodb").get_item(
        TableName=get_settings().ledger_table, Key={"pk": {"S": "GRANT#acme"}, "sk": {"S": "g1"}}
    )["Item"]
    spent = sum(i["credits_applied_minor"] for i in world.invoices("acme"))
    assert spent == 500 and grant["remaining"]["N"] == "0"


def test_invoice_created_but_state_not_advanced_then_retried(world: World, monkeypatch: Any) -> None:
    # GIVEN the invoice of window 1 exists while the state still points at window 1 (a split that one
    # transaction makes impossible; forced here by restoring the state item as it was before)
    now = _bill_setup(world)
    sub_id = world.subscriptions[0]["id"]
    handler = worker(world, now, monkeypatch)
    messages = receive_batch(world.billing_queue, 10)
    run_batch(handler, world.billing_queue, [m for m in messages if '"seq":0' in m["Body"]])
    before = world.ctx.billing.state(sub_id)
    run_batch(handler, world.billing_queue, [m for m in messages if '"seq":1' in m["Body"]])
    boto3.client("dynamodb").put_item(TableName=get_settings().billing_table, Item=to_item(before))
    assert int(world.ctx.billing.state(sub_id)["next_seq"]) == 1

    # WHEN the job of window 1 runs again
    from tests.functional.billing.helpers import schedule as again

    again(world, now, trigger="manual")
    work(world, now, monkeypatch)

    # THEN the state advanced, with still one invoice and one posting per window
    assert int(world.ctx.billing.state(sub_id)["next_seq"]) == 2
    _assert_one_invoice_per_window(world, 2)


def test_a_job_delivered_twice_in_one_batch(world: World, monkeypatch: Any) -> None:
    # GIVEN the same jobs enqueued twice (two manual runs)
    now = _bill_setup(world)
    schedule(world, now, trigger="manual")

    # WHEN the worker drains the queue
    work(world, now, monkeypatch, batch_size=10)

    # THEN still one invoice per window
    _assert_one_invoice_per_window(world, 2)


def test_a_failing_window_is_retried_then_dead_lettered_and_counted_failed(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN a pricing engine that keeps failing
    now = _bill_setup(world)
    run_id = world.ctx.billing.runs(1, None)[0][0]["id"]

    def broken(*args: Any) -> Any:
        raise RuntimeError("pricing unavailable")

    monkeypatch.setattr(world.ctx, "deps", replace(world.ctx.deps, rate_window=broken, rate_opening=broken))
    handler = worker(world, now, monkeypatch)

    # WHEN the jobs are delivered until the queue gives up on them
    attempts = 0
    while messages := receive_batch(world.billing_queue, 10):
        attempts += 1
        assert run_batch(handler, world.billing_queue, messages) == {m["MessageId"] for m in messages}

    # THEN nothing was billed, both jobs wait in the DLQ, and the run counts them failed once each
    assert world.invoices("acme") == []
    from tests.support.aws import queue_url, receive_all

    assert len(receive_all(boto3.client("sqs"), queue_url("BillingDLQ"))) == 2
    assert world.ctx.billing.run(run_id)["failed"] == 2
    assert attempts == 5
