"""The ledger, billing and stripe sweep checks: each repair, what is only reported, and that a second
sweep repairs nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.dal.dynamo import to_item
from neruba.dal.ops import OpsRepository
from neruba.logic.billing.worker import ensure_billing_state
from neruba.logic.sweeps.runner import run_sweep
from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, world  # noqa: F401 - the billing fixture
from tests.functional.billing.helpers import queued, schedule, work
from tests.functional.stripe.conftest import ports, process  # noqa: F401 - Stripe fixtures
from tests.support.aws import queue_url


def sweep(check: str, now: datetime, window: timedelta = timedelta(hours=2)) -> dict[str, Any]:
    report = run_sweep(
        OpsRepository(get_settings().ops_table),
        [check],
        now - window,
        now,
        trigger="cli",
        actor="t",
        billing=bootstrap.billing,
        now=now,
    )
    assert report["status"] == "ok", report
    return report["checks"][0]


def purge(url: str) -> None:
    sqs = boto3.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# ------------------------------------------------------------------------------------------ ledger
@pytest.fixture
def ledger(catalog: Any) -> Any:
    from neruba.dal.ledger import LedgerRepository

    return LedgerRepository(get_settings().ledger_table)


def _payment(ledger: Any, key: str, amount: int, at: datetime) -> Any:
    from neruba.domain.ledger import Posting, credit, debit

    posting = Posting.build(
        idempotency_key=key,
        customer_id="acme",
        currency="USD",
        entries=[debit("cash", amount), credit("receivable", amount)],
        reason="payment",
        source="payment",
        source_id=key,
        actor="test",
        at=at,
    )
    return ledger.post(posting)


def _set_balance(key: str, value: int) -> None:
    boto3.client("dynamodb").update_item(
        TableName=get_settings().ledger_table,
        Key=to_item({"pk": "CUS#acme", "sk": f"BAL#USD#{key}"}),
        UpdateExpression="SET bal = :v",
        ExpressionAttributeValues=to_item({":v": value}),
    )


def _ledger_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().ledger_table)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def test_ledger_balance_drift_is_rebuilt_from_entries_and_entries_stay_untouched(ledger: Any) -> None:
    # GIVEN two payments in the window and a cash balance that drifted
    now = datetime.now(UTC)
    _payment(ledger, "p1", 500, now - timedelta(minutes=30))
    _payment(ledger, "p2", 250, now - timedelta(minutes=20))
    _set_balance("cash", 900)
    postings_before = [i for i in _ledger_items() if i["sk"]["S"].startswith("PST#")]
    # WHEN the ledger check runs
    check = sweep("ledger", now)
    # THEN the drift is found with its ids and the balance rebuilt to what the entries give
    assert check["checked"]["postings"] == 2
    assert check["found"] == 1 and check["repaired"] == 1
    assert check["repairs"] == [
        {
            "kind": "balance_rebuilt",
            "customer_id": "acme",
            "currency": "USD",
            "balance": "cash",
            "before": 900,
            "after": 750,
        }
    ]
    assert ledger.balances("acme")["USD"] == {"cash": 750, "receivable": -750}
    assert ledger.reconcile("acme") == []
    assert [i for i in _ledger_items() if i["sk"]["S"].startswith("PST#")] == postings_before
    # AND a second sweep finds and repairs nothing
    again = sweep("ledger", now)
    assert (again["found"], again["repaired"]) == (0, 0)


def test_ledger_repair_is_refused_when_a_posting_lands_meanwhile(ledger: Any) -> None:
    from neruba.dal.sweep_repairs import RepairConflictError, rebuild_balance

    # GIVEN a balance read as (900, 1) and a posting committed after that read
    now = datetime.now(UTC)
    _payment(ledger, "p1", 500, now)
    _set_balance("cash", 900)
    _payment(ledger, "p2", 100, now)
    # WHEN the sweep writes the value it computed from the earlier read
    # THEN the conditional write is refused and the newer balance stays
    with pytest.raises(RepairConflictError):
        rebuild_balance(
            get_settings().ledger_table, "acme", "USD", "cash", expected=(900, 1), value=500, at=now
        )
    assert ledger.balances("acme")["USD"]["cash"] == 1000


def test_unbalanced_posting_is_reported_loudly_and_never_edited(ledger: Any, json_logs: Any) -> None:
    from neruba.timefmt import ts

    # GIVEN a posting written raw whose debits (500) differ from its credits (400)
    now = datetime.now(UTC)
    at = now - timedelta(minutes=10)
    doc = {
        "id": "pst_bad",
        "idempotency_key": "raw:1",
        "customer_id": "acme",
        "currency": "USD",
        "entries": [{"account": "cash", "debit_minor": 500}, {"account": "receivable", "credit_minor": 400}],
        "reason": "raw",
        "source": "operator",
        "actor": "test",
        "at": at.isoformat(),
        "effective_at": at.isoformat(),
    }
    raw = {"pk": "CUS#acme", "sk": f"PST#{ts(at)}#pst_bad", "posting": json.dumps(doc)}
    boto3.client("dynamodb").put_item(TableName=get_settings().ledger_table, Item=to_item(raw))
    before = _ledger_items()
    # WHEN the ledger check runs (twice)
    check = sweep("ledger", now)
    again = sweep("ledger", now)
    # THEN it is reported with its ids, logged as an error with a metric, nothing is repaired or written
    assert check["found"] == 1 and check["repaired"] == 0
    assert check["details"]["unbalanced_postings"] == [
        {
            "customer_id": "acme",
            "posting_id": "pst_bad",
            "idempotency_key": "raw:1",
            "currency": "USD",
            "at": at.isoformat(),
            "problem": "debits 500 != credits 400",
        }
    ]
    assert check["details"]["not_reconciled"] == [{"customer_id": "acme", "reason": "unbalanced posting"}]
    assert again["repaired"] == 0
    assert _ledger_items() == before
    errors = [
        line for line in json_logs() if line.get("message") == "unbalanced ledger posting (left as written)"
    ]
    assert errors and errors[0]["posting_id"] == "pst_bad" and errors[0]["customer_id"] == "acme"


# ------------------------------------------------------------------------------------------ billing
@pytest.fixture
def billing_world(world: World) -> World:  # noqa: F811
    return world  # its context is installed in neruba.bootstrap, where the billing check takes it


def test_due_window_without_invoice_is_requeued_then_billed_once(
    billing_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = billing_world  # noqa: F811
    # GIVEN a subscription whose opening window was due three hours ago and that no scheduler enqueued
    doc = world.subscribe("acme")
    ensure_billing_state(world.ctx.billing, doc)
    now = START + timedelta(hours=3)
    # WHEN the billing check runs
    check = sweep("billing", now)
    # THEN the window's job is on BillingQueue, named in the repair
    assert check["repaired"] == 1
    repair = check["repairs"][0]
    assert repair["kind"] == "window_requeued" and repair["subscription_id"] == doc["id"]
    assert repair["customer_id"] == "acme" and repair["seq"] == 0
    jobs = queued(world.billing_queue)
    assert [(j["subscription_id"], j["seq"], j["kind"]) for j in jobs] == [(doc["id"], 0, "opening")]
    # AND a second sweep before the worker ran sends nothing again (in flight)
    again = sweep("billing", now)
    assert again["repaired"] == 0 and again["details"]["in_flight"]
    assert len(queued(world.billing_queue)) == 1
    # WHEN the worker runs, with a duplicate of the job queued as well
    boto3.client("sqs").send_message(QueueUrl=world.billing_queue, MessageBody=json.dumps(jobs[0]))
    work(world, now, monkeypatch)
    # THEN the window is billed exactly once, and a later sweep finds nothing due
    invoices = world.invoices("acme")
    assert [(i["kind"], i["id"]) for i in invoices] == [("opening", repair["invoice_ids"][0])]
    later = sweep("billing", now + timedelta(minutes=1))
    assert (later["checked"]["due_states"], later["repaired"]) == (0, 0)


def test_stuck_draft_is_finalized_and_its_sync_sent(
    billing_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = billing_world  # noqa: F811
    # GIVEN a draft invoice whose grace ended hours ago and no scheduler run since
    doc = world.subscribe("acme")
    ensure_billing_state(world.ctx.billing, doc)
    schedule(world, START + timedelta(minutes=5))
    work(world, START + timedelta(minutes=5), monkeypatch)
    (draft,) = world.invoices("acme")
    assert draft["status"] == "draft"
    now = START + timedelta(hours=4)
    # WHEN the billing check runs
    check = sweep("billing", now)
    # THEN the draft is finalized with the next number (under the scheduler's lock, released after)
    assert [r["kind"] for r in check["repairs"]] == ["draft_finalized"]
    assert check["repairs"][0]["invoice_id"] == draft["id"]
    finalized = world.ctx.invoices.get(draft["id"])
    assert finalized is not None and finalized.status == "finalized" and finalized.number == "INV-000001"
    assert world.locks.acquire("billing-scheduler", "next", timedelta(minutes=5), now) is not None
    # AND an hour later its never-sent sync message is sent once
    later = now + timedelta(minutes=61)
    sync = sweep("billing", later)
    assert [(r["kind"], r["invoice_id"]) for r in sync["repairs"]] == [("sync_sent", draft["id"])]
    assert queued(world.sync_queue) == [{"invoice_id": draft["id"]}]
    assert sweep("billing", later)["repaired"] == 0


def test_finalized_invoice_with_failed_sync_is_resent(
    billing_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = billing_world  # noqa: F811
    # GIVEN a finalized invoice whose Stripe sync failed two hours ago (its message long gone)
    doc = world.subscribe("acme")
    ensure_billing_state(world.ctx.billing, doc)
    schedule(world, START + timedelta(minutes=5))
    work(world, START + timedelta(minutes=5), monkeypatch)
    schedule(world, START + timedelta(hours=2))  # finalizes and sends the sync message
    purge(world.sync_queue)
    (invoice,) = world.invoices("acme")
    assert invoice["status"] == "finalized"
    failed_at = START + timedelta(hours=2, minutes=5)
    world.ctx.invoices.set_sync(
        invoice["id"],
        {
            "status": "failed",
            "attempts": 5,
            "last_error": "APIError: boom",
            "updated_at": failed_at.isoformat(),
        },
    )
    now = failed_at + timedelta(hours=2)
    # WHEN the billing check runs
    check = sweep("billing", now)
    # THEN {"invoice_id"} is on StripeSyncQueue again, and a second sweep does not send it again
    assert [(r["kind"], r["invoice_id"], r["sync_status"]) for r in check["repairs"]] == [
        ("sync_resent", invoice["id"], "failed")
    ]
    assert queued(world.sync_queue) == [{"invoice_id": invoice["id"]}]
    again = sweep("billing", now)
    assert again["repaired"] == 0 and len(queued(world.sync_queue)) == 1


def test_mismatched_sync_is_reported_not_resent(
    billing_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = billing_world  # noqa: F811
    # GIVEN a finalized invoice whose Stripe total differed from ours
    doc = world.subscribe("acme")
    ensure_billing_state(world.ctx.billing, doc)
    schedule(world, START + timedelta(minutes=5))
    work(world, START + timedelta(minutes=5), monkeypatch)
    schedule(world, START + timedelta(hours=2))
    purge(world.sync_queue)
    (invoice,) = world.invoices("acme")
    world.ctx.invoices.set_sync(
        invoice["id"], {"status": "mismatch", "updated_at": (START + timedelta(hours=2)).isoformat()}
    )
    # WHEN the billing check runs
    check = sweep("billing", START + timedelta(hours=5))
    # THEN it needs an operator: reported with its ids, nothing sent
    assert check["repaired"] == 0
    assert check["details"]["needs_operator"][0]["invoice_id"] == invoice["id"]
    assert queued(world.sync_queue) == []


# ------------------------------------------------------------------------------------------ stripe
def test_stored_unprocessed_stripe_event_is_requeued_and_processed(ports: Any, process: Any) -> None:  # noqa: F811
    from neruba.dal.stripe_events import StripeEventsRepository
    from tests.support.stripe_events import encode, invoice_paid

    repo = StripeEventsRepository(get_settings().ops_table)
    now = datetime.now(UTC)
    # GIVEN an invoice.paid event stored an hour ago whose queue message was lost, and a fresh one
    old = invoice_paid(created=int((now - timedelta(hours=1)).timestamp()))
    fresh = invoice_paid(created=int(now.timestamp()))
    for event, at in ((old, now - timedelta(hours=1)), (fresh, now - timedelta(minutes=1))):
        assert repo.put_new(event, encode(event), at) is None
    # WHEN the stripe check runs
    check = sweep("stripe", now)
    # THEN only the stale one is re-sent, with its id in the repair
    assert [(r["kind"], r["stripe_event_id"], r["status"]) for r in check["repairs"]] == [
        ("stripe_event_requeued", old["id"], "received")
    ]
    assert queued(queue_url("StripeEventsQueue")) == [{"event_id": old["id"]}]
    # AND a second sweep sends nothing again
    assert sweep("stripe", now)["repaired"] == 0
    # WHEN the worker processes the queue
    process()
    # THEN the event is processed, and a later sweep leaves it alone (only the other one, stale by then)
    stored = repo.get(old["id"])
    assert stored is not None and stored.status == "processed"
    later = sweep("stripe", now + timedelta(hours=2))
    assert [r["stripe_event_id"] for r in later["repairs"]] == [fresh["id"]]


def test_invalid_failed_stripe_event_needs_an_operator(ports: Any) -> None:  # noqa: F811
    from neruba.dal.stripe_events import StripeEventsRepository
    from tests.support.stripe_events import encode, invoice_paid

    repo = StripeEventsRepository(get_settings().ops_table)
    now = datetime.now(UTC)
    # GIVEN an event that failed with invalid data an hour ago
    event = invoice_paid(created=int((now - timedelta(hours=1)).timestamp()))
    repo.put_new(event, encode(event), now - timedelta(hours=1))
    repo.record_attempt(
        event["id"],
        status="failed",
        outcome="invalid_event",
        error="no amount",
        trigger="queue",
        at=now - timedelta(hours=1),
    )
    # WHEN the stripe check runs
    check = sweep("stripe", now)
    # THEN it is reported for an operator and not re-sent
    assert check["found"] == 1 and check["repaired"] == 0
    assert check["details"]["needs_operator"][0]["stripe_event_id"] == event["id"]
    assert queued(queue_url("StripeEventsQueue")) == []
