"""Threshold invoicing from a subscription's start: usage that crosses the threshold before the
subscription's opening invoice is billed (its billing state still at window 0) is invoiced early by the
check ingest asks for, and by the ``thresholds`` sweep when that check is lost; the opening invoice and
the period-end invoice follow as usual, the latter deducting what was billed early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.logic.sweeps.runner import SweepContext
from neruba.logic.sweeps.thresholds import thresholds_check
from neruba.settings import get_settings
from tests.functional.billing.conftest import World, assert_books_agree
from tests.functional.billing.helpers import billing_state, schedule, work
from tests.functional.billing.test_threshold_invoices import by_kind, thr  # noqa: F401
from tests.support.api import api_event, call


def _subscribe_over_http(customer: str, start: datetime) -> dict[str, Any]:
    from functions.admin_api.app import lambda_handler

    body = {"customer_id": customer, "plan_code": "basic", "start_at": start.isoformat()}
    headers = {"Idempotency-Key": f"sub-{customer}"}
    status, sub, _ = call(lambda_handler, api_event("POST", "/v1/subscriptions", body=body, headers=headers))
    assert status == 201, sub
    return dict(sub)


def _send_over_http(customer: str, n: int, at: datetime) -> None:
    from functions.ingest_api.app import lambda_handler

    stamp = at.isoformat().replace("+00:00", "Z")
    for first in range(0, n, 100):
        events = [
            {
                "transaction_id": f"{customer}-{i}",
                "customer_id": customer,
                "code": "api_calls",
                "timestamp": stamp,
            }
            for i in range(first, min(n, first + 100))
        ]
        status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": events}))
        assert status == 202, body


def _ingest() -> None:
    from functions.ingest_worker import app as ingest_worker
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    drain(ingest_worker.lambda_handler, queue_url("IngestQueue"), batch_size=100)


def test_a_crossing_before_the_opening_invoice_is_invoiced_by_the_check(
    thr: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    # GIVEN acme (threshold 500) subscribed today over the API; no billing run yet (no opening invoice)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sub = _subscribe_over_http("acme", start)
    assert billing_state(thr, sub["id"]).next_seq == 0

    # WHEN 60 calls (600) arrive over the API, are counted and the billing worker takes the checks
    now = datetime.now(UTC)
    _send_over_http("acme", 60, now - timedelta(seconds=5))
    _ingest()
    work(thr, datetime.now(UTC), monkeypatch)

    # THEN one threshold invoice of 600, finalized, before any opening invoice
    [early] = by_kind(thr, "acme", "threshold")
    assert (early["status"], early["subtotal_minor"]) == ("finalized", 600)
    assert by_kind(thr, "acme", "opening") == []

    # WHEN the opening and then the period are billed
    schedule(thr, start + timedelta(hours=1))
    work(thr, start + timedelta(hours=1), monkeypatch)
    end = start + timedelta(days=1, hours=1)
    schedule(thr, end)
    work(thr, end, monkeypatch)

    # THEN the period-end invoice rates the period (600) and deducts the 600 billed early
    [usage] = by_kind(thr, "acme", "usage")
    assert [(x["kind"], x["amount_minor"]) for x in usage["lines"]] == [
        ("usage", 600),
        ("threshold_deduction", -600),
    ]
    assert len(by_kind(thr, "acme", "opening")) == 1
    assert billing_state(thr, sub["id"]).next_seq == 2
    assert_books_agree(thr, "acme")


def test_the_sweep_finds_a_crossing_before_the_opening_invoice(thr: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN acme subscribed today over the API, and 70 calls counted with no check sent
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sub = _subscribe_over_http("acme", start)
    thr.usage("acme", start, 70)
    now = datetime.now(UTC)
    ctx = SweepContext(start=start, end=now, now=now, settings=get_settings(), billing=lambda: thr.ctx)

    # WHEN the thresholds sweep check runs, twice
    first, second = thresholds_check(ctx), thresholds_check(ctx)

    # THEN the first issues a threshold invoice of 700; the second finds nothing; the state is at window 0
    [early] = by_kind(thr, "acme", "threshold")
    assert early["subtotal_minor"] == 700
    assert [r["kind"] for r in first.repairs] == ["threshold_invoiced"]
    assert (second.found, second.repaired) == (0, 0)
    state = billing_state(thr, sub["id"])
    assert (state.next_seq, state.thresholds_issued) == (0, 1)


def test_a_subscription_without_a_billing_state_is_evaluated_from_its_start(
    thr: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    from neruba.logic.billing.threshold_invoices import evaluate_customer

    # GIVEN a subscription written before billing states existed (none stored) and 80 calls
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sub = thr.subscribe("acme", start)
    thr.usage("acme", start, 80)
    assert thr.ctx.billing.state(sub["id"]) is None

    # WHEN it is evaluated twice
    first = evaluate_customer(thr.ctx, "acme", datetime.now(UTC))
    again = evaluate_customer(thr.ctx, "acme", datetime.now(UTC))

    # THEN one threshold invoice of 800, and the state it created waits for the opening
    assert [e.outcome for e in first] == ["issued"] and [e.outcome for e in again] == ["below"]
    [early] = by_kind(thr, "acme", "threshold")
    assert early["subtotal_minor"] == 800
    state = billing_state(thr, sub["id"])
    assert (state.next_seq, state.thresholds_issued, state.due_at) == (
        0,
        1,
        sub["start_at"].replace("+00:00", ".000000Z"),
    )


def test_a_plan_version_threshold_invoices_its_subscribers_unless_the_customer_sets_its_own(
    aws: dict[str, str], monkeypatch: Any
) -> None:
    from tests.functional.billing.conftest import BASIC, make_world
    from tests.functional.billing.helpers import queued

    # GIVEN a version invoicing early at 500; acme has no threshold, globex its own of 10,000
    world = make_world(
        {**BASIC, "defaults": {"invoice_threshold_minor": 500}},
        {"acme": {}, "globex": {"invoice_threshold_minor": 10_000}},
    )
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for customer in ("acme", "globex"):
        _subscribe_over_http(customer, start)

    # WHEN 60 calls each (600) are sent and counted
    for customer in ("acme", "globex"):
        _send_over_http(customer, 60, datetime.now(UTC) - timedelta(seconds=5))
    _ingest()

    # THEN both are checked (each has a threshold); acme's plan default issues a threshold invoice of 600,
    # globex's own threshold wins (600 < 10,000)
    checks = {m["customer_id"] for m in queued(world.billing_queue) if m.get("check") == "threshold"}
    assert checks == {"acme", "globex"}
    work(world, datetime.now(UTC), monkeypatch)
    [early] = by_kind(world, "acme", "threshold")
    assert (early["subtotal_minor"], early["threshold"]["threshold_minor"]) == (600, 500)
    assert by_kind(world, "globex", "threshold") == []

    # AND the sweep finds the plan default too: 60 more calls of acme late in the day
    world.usage("acme", start + timedelta(hours=23), 60)
    now = start + timedelta(hours=23, minutes=59)
    ctx = SweepContext(start=start, end=now, now=now, settings=get_settings(), billing=lambda: world.ctx)
    report = thresholds_check(ctx)
    assert [r["customer_id"] for r in report.repairs] == ["acme"]
    assert report.checked["customers"] == 2
