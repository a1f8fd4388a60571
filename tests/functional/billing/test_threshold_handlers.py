"""Threshold checks through the real handlers: the ingest worker counts a batch and asks for a check of
each customer of it with a threshold (only those) on the billing queue; the billing worker evaluates it
and issues the threshold invoice. The ``thresholds`` sweep check is the backstop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.logic.sweeps.runner import SweepContext
from neruba.logic.sweeps.thresholds import thresholds_check
from neruba.settings import get_settings
from tests.functional.billing.conftest import World
from tests.functional.billing.helpers import queued, schedule, work
from tests.functional.billing.test_threshold_invoices import by_kind, thr  # noqa: F401
from tests.support.aws import queue_url
from tests.support.queues import drain


def _today(world: World, monkeypatch: Any) -> datetime:
    """acme and globex subscribed at today's midnight (daily periods), openings billed: the open period
    is today's."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for customer in ("acme", "globex"):
        world.subscribe(customer, start)
    schedule(world, start)
    work(world, start, monkeypatch)
    return start


def _events(customer: str, n: int, at: datetime) -> list[dict[str, Any]]:
    stamp = at.isoformat().replace("+00:00", "Z")
    return [
        {
            "transaction_id": f"{customer}-{i}",
            "customer_id": customer,
            "code": "api_calls",
            "timestamp": stamp,
        }
        for i in range(n)
    ]


def test_ingest_asks_for_a_check_and_the_billing_worker_issues_the_invoice(
    thr: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    from functions.ingest_worker import app as ingest_worker
    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    # GIVEN today's periods open; 60 calls of acme (600, over its 500) and 60 of globex (no threshold)
    _today(thr, monkeypatch)
    now = datetime.now(UTC)
    events = _events("acme", 60, now - timedelta(seconds=5)) + _events(
        "globex", 60, now - timedelta(seconds=5)
    )
    for chunk in range(0, len(events), 10):
        part = events[chunk : chunk + 10]
        messages = [
            (str(i), queue_message(UsageEventIn.model_validate(e), "direct", i, now))
            for i, e in enumerate(part)
        ]
        assert send_batch(queue_url("IngestQueue"), messages) == []

    # WHEN the ingest worker counts them
    drain(ingest_worker.lambda_handler, queue_url("IngestQueue"), batch_size=100)

    # THEN the billing queue holds threshold checks of acme only
    checks = [m for m in queued(thr.billing_queue) if m.get("check") == "threshold"]
    assert checks and {m["customer_id"] for m in checks} == {"acme"}

    # WHEN the billing worker takes them
    work(thr, datetime.now(UTC), monkeypatch)

    # THEN one threshold invoice of 600 for acme, finalized and sent to Stripe sync; none for globex
    [early] = by_kind(thr, "acme", "threshold")
    assert (early["status"], early["subtotal_minor"], early["billing_reason"]) == (
        "finalized",
        600,
        "subscription_threshold",
    )
    assert {"invoice_id": early["id"]} in queued(thr.sync_queue)
    assert by_kind(thr, "globex", "threshold") == []


def test_a_malformed_check_fails_and_is_kept_for_the_dlq(thr: World, monkeypatch: Any) -> None:  # noqa: F811
    from neruba.dal.queue import send_batch
    from tests.functional.billing.helpers import worker
    from tests.support.queues import receive_batch, run_batch

    # GIVEN a threshold check without a customer on the billing queue
    assert send_batch(thr.billing_queue, [("0", json.dumps({"check": "threshold"}))]) == []
    messages = receive_batch(thr.billing_queue, 10)

    # WHEN the billing worker takes it, THEN it fails (and stays for redelivery, then the DLQ)
    failed = run_batch(worker(thr, datetime.now(UTC), monkeypatch), thr.billing_queue, messages)
    assert failed == {m["MessageId"] for m in messages}
    assert queued(thr.billing_queue) == [{"check": "threshold"}]


def test_the_sweep_issues_a_crossing_whose_check_was_lost(thr: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN acme crossed its threshold and no check was sent (usage written straight to the aggregates)
    start = _today(thr, monkeypatch)
    thr.usage("acme", start, 70)
    thr.usage("globex", start, 70)
    now = datetime.now(UTC)
    ctx = SweepContext(start=start, end=now, now=now, settings=get_settings(), billing=lambda: thr.ctx)

    # WHEN the thresholds sweep check runs, twice
    first, second = thresholds_check(ctx), thresholds_check(ctx)

    # THEN the first repairs it with one threshold invoice of 700; the second finds nothing
    [early] = by_kind(thr, "acme", "threshold")
    assert early["subtotal_minor"] == 700
    assert [r["kind"] for r in first.repairs] == ["threshold_invoiced"]
    assert first.repairs[0]["invoice_id"] == early["id"]
    assert (second.found, second.repaired, second.checked["customers"]) == (0, 0, 1)
    assert by_kind(thr, "globex", "threshold") == []
