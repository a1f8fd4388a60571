"""Driving the scheduler and the worker on a fake timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import boto3

from neruba import bootstrap
from neruba.dal.billing import BillingRun, BillingState
from neruba.dal.invoices import Invoice
from neruba.logic.billing.scheduler import RunOptions, run_billing
from tests.functional.billing.conftest import World
from tests.support.queues import receive_batch, run_batch


class Killed(BaseException):
    """A simulated Lambda kill (not an Exception, so nothing in the code under test catches it)."""


def stored_invoice(world: World, invoice_id: str) -> Invoice:
    """The invoice as its repository reads it back."""
    found = world.ctx.invoices.get(invoice_id)
    assert found is not None
    return found


def billing_state(world: World, subscription_id: str) -> BillingState:
    """The subscription's billing state as its repository reads it back."""
    found = world.ctx.billing.state(subscription_id)
    assert found is not None
    return found


def schedule(world: World, now: datetime, **options: Any) -> BillingRun:
    """One scheduler run at ``now``."""
    options.setdefault("clock", lambda: now)
    return run_billing(world.ctx, world.locks, world.plans, RunOptions(**options))


def worker(world: World, now: datetime, monkeypatch: Any) -> Any:
    from functions.billing_worker import app

    bootstrap.install(billing=world.ctx)
    monkeypatch.setattr(app, "clock", lambda: now)
    return app.lambda_handler


def work(world: World, now: datetime, monkeypatch: Any, batch_size: int = 10, max_batches: int = 50) -> int:
    """Feed the billing queue to the worker until it is empty; returns the batches run."""
    handler = worker(world, now, monkeypatch)
    for count in range(max_batches):
        messages = receive_batch(world.billing_queue, batch_size)
        if not messages:
            return count
        run_batch(handler, world.billing_queue, messages)
    raise AssertionError("billing queue did not drain")


def queued(url: str) -> list[dict[str, Any]]:
    """Every visible message body (left in the queue)."""
    import json

    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    handles = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [json.loads(m["Body"]) for m in got]
        handles += [m["ReceiptHandle"] for m in got]
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return bodies


def day(n: int, hours: int = 0) -> timedelta:
    return timedelta(days=n, hours=hours)
