"""Pay-in-advance charges end to end: configured through the admin API, events through the real ingest
worker, the advance messages through the real billing worker, the period's invoice through the scheduler
and worker (daily windows). Each event bills once, whatever is delivered twice or killed in between."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from neruba import bootstrap
from neruba.dal.plans import PlansRepository
from neruba.settings import get_settings
from neruba.timefmt import ts
from tests.functional.billing.conftest import (
    START,
    World,
    _billing,
    assert_books_agree,
    invoice_postings,
)
from tests.functional.billing.helpers import Killed, day, queued, schedule, work
from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.queues import drain, receive_batch, run_batch

PLAN = {
    "code": "team",
    "name": "Team",
    "currency": "USD",
    "interval": "month",
    "charges": [
        {  # seats: 30.00 a seat for the period, prorated, the rest credited on removal, invoiced at once
            "meter_code": "members",
            "model": "per_unit",
            "unit_price": "30.00",
            "pay_in_advance": True,
            "prorate": True,
            "on_removal": "credit",
        },
        {  # a one-time setup: 100.00 each, gathered onto the next invoice
            "meter_code": "setups",
            "model": "per_unit",
            "unit_price": "100",
            "pay_in_advance": True,
            "advance_invoicing": "next_invoice",
        },
        {  # active users: 5.00 for each user new in the period, gathered onto the next invoice
            "meter_code": "users",
            "model": "per_unit",
            "unit_price": "5",
            "pay_in_advance": True,
            "advance_invoicing": "next_invoice",
        },
        {  # licenses: 12.00 each at once, refunded in full on removal (no proration)
            "meter_code": "licenses",
            "model": "per_unit",
            "unit_price": "12",
            "pay_in_advance": True,
            "on_removal": "refund",
        },
        {"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"},  # in arrears, as before
    ],
}


def _admin(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    status, parsed, _ = call(lambda_handler, api_event(method, path, body=body, scopes="admin"))
    return status, parsed


@pytest.fixture
def world(aws: dict[str, str]) -> World:
    """acme on the "team" plan from START, daily windows, the meters and plan made through the API."""
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Customer, SubscriptionCreate

    plans = PlansRepository(get_settings().catalog_table)
    plans.create_customer(Customer(external_id="acme", name="Acme", currency="USD"))
    meters = [
        {
            "code": "members",
            "name": "Members",
            "aggregation": "sum",
            "field": "delta",
            "allow_negative": True,
        },
        {"code": "setups", "name": "Setups", "aggregation": "count"},
        {"code": "api_calls", "name": "API calls", "aggregation": "count"},
        {"code": "users", "name": "Active users", "aggregation": "unique_count", "field": "user"},
        {"code": "licenses", "name": "Licenses", "aggregation": "sum", "field": "n", "allow_negative": True},
    ]
    for meter in meters:
        assert _admin("POST", "/v1/meters", meter)[0] == 201
    status, plan = _admin("POST", "/v1/plans", PLAN)
    assert status == 201, plan
    ctx = _billing(plans)
    bootstrap.install(billing=ctx)
    from neruba.dal.locks import LockRepository

    locks = LockRepository(get_settings().billing_table)
    world = World(ctx, plans, locks, queue_url("BillingQueue"), queue_url("StripeSyncQueue"))
    body = SubscriptionCreate(customer_id="acme", plan_code="team", start_at=START)
    world.subscriptions.append(create_subscription(plans, body, "sub-acme", now=START))
    return world


def _enqueue(*events: dict[str, Any], request_id: str = "req") -> None:
    """Queue events as the ingest API does (their times are in the past: the API's age rule is not
    what is tested here)."""
    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn

    now = datetime.now(START.tzinfo)
    messages = [
        (str(i), queue_message(UsageEventIn.model_validate(e), request_id, i, now))
        for i, e in enumerate(events)
    ]
    assert send_batch(queue_url("IngestQueue"), messages) == []


def _event(tx: str, code: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "transaction_id": tx,
        "customer_id": "acme",
        "code": code,
        "timestamp": at.isoformat(),
        "properties": properties,
    }


def _ingest() -> None:
    from functions.ingest_worker.app import lambda_handler

    drain(lambda_handler, queue_url("IngestQueue"))


def _bill_events(world: World, monkeypatch: Any, now: datetime) -> None:
    work(world, now, monkeypatch)


def _advance_invoices(world: World) -> list[dict[str, Any]]:
    return [i for i in world.invoices("acme") if i["kind"] == "advance"]


def _explain(invoice_id: str) -> dict[str, Any]:
    from functions.billing_api.app import lambda_handler

    path = f"/v1/invoices/{invoice_id}/explain"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"invoice_id": invoice_id}, scopes="read")
    )
    assert status == 200, body
    return dict(body)


def test_a_seat_added_mid_period_is_invoiced_at_once_prorated_and_explained(
    world: World, monkeypatch: Any
) -> None:
    # WHEN a member is added at noon of the first (daily) period
    _enqueue(_event("seat-1", "members", START + day(0, 12), delta=1))
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 13))

    # THEN one invoice of its own: half the period left -> 15.00, finalized, numbered, posted, synced
    (invoice,) = _advance_invoices(world)
    assert (invoice["status"], invoice["total_minor"], invoice["credits_applied_minor"]) == (
        "finalized",
        1500,
        0,
    )
    assert invoice["number"]
    (line,) = invoice["lines"]
    assert (line["kind"], line["line_id"], line["amount_minor"]) == (
        "advance",
        "advance:members:seat-1",
        1500,
    )
    assert [
        p.total_minor for p in invoice_postings("acme") if p.idempotency_key == f"invoice:{invoice['id']}"
    ] == [1500]
    assert [m["invoice_id"] for m in queued(world.sync_queue)] == [invoice["id"]]
    assert_books_agree(world, "acme")

    # AND explain names the event, the position, the proration and the ledger posting behind the line
    (explained,) = _explain(invoice["id"])["lines"]
    advance = explained["advance"]
    assert (
        advance["transaction_id"],
        advance["fraction"],
        advance["paid_before"],
        advance["paid_after"],
    ) == (
        "seat-1",
        "0.5",
        "0",
        "1",
    )
    assert advance["posting_key"] == f"invoice:{invoice['id']}"
    assert (
        explained["price"]["plan_code"] == "team" and explained["price"]["unit_price"] == "30"
    )  # canonical text of "30.00"


def test_the_period_invoice_does_not_bill_advance_units_again_and_carries_gathered_lines_once(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN the opening window billed, then two seats and a setup on day 0, and 10 API calls (in arrears)
    schedule(world, START)
    work(world, START, monkeypatch)
    _enqueue(
        _event("seat-1", "members", START, delta=2),
        _event("setup-1", "setups", START + day(0, 1)),
        *[_event(f"call-{n}", "api_calls", START + day(0, 2)) for n in range(10)],
    )
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 3))

    # THEN the upcoming invoice (over HTTP) shows the pending setup line, counted in its subtotal
    from functions.read_api.app import lambda_handler

    path = "/v1/customers/acme/upcoming-invoice"
    event = api_event("GET", path, path_parameters={"customer_id": "acme"}, scopes="read")
    status, preview, _ = call(lambda_handler, event)
    assert status == 200, preview
    (window,) = preview["windows"]
    pending = [line for line in window["lines"] if line.get("pending")]
    assert [(line["line_id"], line["amount_minor"]) for line in pending] == [
        ("advance:setups:setup-1", 10000)
    ]
    assert "Pending:" in pending[0]["description"]

    # WHEN day 0 is billed by the scheduler and worker, twice
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)
    schedule(world, START + day(1, 2))
    work(world, START + day(1, 2), monkeypatch)

    # THEN the seats were billed once (their own invoice, 60.00), the usage invoice shows the members at
    # 0 "already billed in advance", carries the setup line once, and bills the API calls in arrears
    (seats,) = _advance_invoices(world)
    assert seats["total_minor"] == 6000
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    by_id = {line["line_id"]: line for line in usage["lines"]}
    members = by_id["usage:members::0"]
    assert members["amount_minor"] == 0 and members["source"]["billed_in_advance"] is True
    assert "already billed in advance" in members["description"]
    assert by_id["advance:setups:setup-1"]["amount_minor"] == 10000
    assert by_id["usage:api_calls::0"]["amount_minor"] == 100
    assert usage["subtotal_minor"] == 10100
    # the setup is on no other invoice, and explain on the usage invoice names its event
    carried = [
        i["id"]
        for i in world.invoices("acme")
        for line in i["lines"]
        if line["line_id"] == "advance:setups:setup-1"
    ]
    assert carried == [usage["id"]]
    explained = {line["line_id"]: line for line in _explain(usage["id"])["lines"]}
    assert explained["advance:setups:setup-1"]["advance"]["billed_in"] == usage["id"]
    assert_books_agree(world, "acme")

    # AND finalization (a re-rate) and an operator rerun leave the advance lines as they are
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    schedule(world, START + day(1, 3))  # past the grace: finalized
    final = world.ctx.invoices.get(usage["id"])
    assert final is not None and final.status == "finalized" and final.document["subtotal_minor"] == 10100
    result = rerun_invoice(world.ctx, usage["id"], RerunRequest(reason="check"), "key:ops", "rr-1")
    assert result["action"] == "unchanged", result


def test_a_removal_is_credited_on_the_next_invoice(world: World, monkeypatch: Any) -> None:
    # GIVEN a member added at the start (30.00 at once), removed at 18:00 (6 of 24 hours left)
    schedule(world, START)
    work(world, START, monkeypatch)
    _enqueue(
        _event("seat-1", "members", START, delta=1),
        _event("seat-1-off", "members", START + day(0, 18), delta=-1),
    )
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 19))
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)

    # THEN 30.00 invoiced at once, and -7.50 credited on the period's invoice
    assert [i["total_minor"] for i in _advance_invoices(world)] == [3000]
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    credit = next(line for line in usage["lines"] if line["line_id"] == "advance:members:seat-1-off")
    assert credit["amount_minor"] == -750
    assert_books_agree(world, "acme")


def _sqs_redeliver(url: str) -> None:
    """Make every in-flight message of ``url`` visible again (as its visibility timeout would)."""
    sqs = boto3.client("sqs")
    for message in receive_batch(url, 100):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def test_the_same_event_twice_and_a_redelivered_billing_message_bill_once(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN one seat event sent twice (the second a duplicate) and its billing message delivered twice
    seat = _event("seat-1", "members", START + day(0, 12), delta=1)
    _enqueue(seat)
    _ingest()
    _enqueue(seat, request_id="req-again")  # the client sent it again: a duplicate outcome, not counted
    _ingest()
    messages = queued(world.billing_queue)
    assert [m["advance"]["transaction_id"] for m in messages] == ["seat-1"]  # a duplicate is not counted
    from neruba.dal.queue import send_batch

    assert send_batch(world.billing_queue, [("0", json.dumps(messages[0], sort_keys=True))]) == []
    _bill_events(world, monkeypatch, START + day(0, 13))

    # THEN one invoice, one posting
    assert [i["total_minor"] for i in _advance_invoices(world)] == [1500]
    assert len(invoice_postings("acme")) == 1
    assert_books_agree(world, "acme")


def test_killed_after_counting_before_the_send_the_redelivery_sends_it(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN an ingest worker killed after writing the contribution, before sending the advance message
    from functions.ingest_worker.app import lambda_handler
    from neruba.logic.ingest import worker as ingest_worker

    real_send = ingest_worker.send_counted
    kills = iter([True])

    def send_then_maybe_die(*args: Any, **kwargs: Any) -> list[str]:
        if next(kills, False):
            raise Killed
        return real_send(*args, **kwargs)

    monkeypatch.setattr(ingest_worker, "send_counted", send_then_maybe_die)
    _enqueue(_event("seat-1", "members", START + day(0, 12), delta=1))
    url = queue_url("IngestQueue")
    run_batch(lambda_handler, url, receive_batch(url, 10))
    assert queued(world.billing_queue) == []

    # WHEN SQS delivers the event again
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 13))

    # THEN it was counted once and billed once
    assert [i["total_minor"] for i in _advance_invoices(world)] == [1500]
    rated = world.ctx.rate_window(world.subscriptions[0], START, START + day(1))
    (members,) = [line for line in rated.lines if line.line_id == "usage:members::0"]
    assert members.quantity == 1  # counted once
    assert_books_agree(world, "acme")


def test_a_send_that_fails_fails_the_ingest_message_so_it_is_retried(world: World, monkeypatch: Any) -> None:
    from neruba.logic.ingest import advance

    calls = iter([["0"]])  # the first send of the advance message fails (SQS refused the entry)
    real = advance.send_batch
    monkeypatch.setattr(advance, "send_batch", lambda url, messages: next(calls, None) or real(url, messages))
    _enqueue(_event("seat-1", "members", START + day(0, 12), delta=1))
    _ingest()  # the failed message is retried by drain until sent
    _bill_events(world, monkeypatch, START + day(0, 13))
    assert [i["total_minor"] for i in _advance_invoices(world)] == [1500]


@pytest.mark.parametrize("where", ["commit", "issue"])
def test_billing_killed_at_or_after_its_transaction_bills_once(
    world: World, monkeypatch: Any, where: str
) -> None:
    # GIVEN the billing worker killed at its transaction, or after it before finalizing the invoice
    from neruba.logic.billing import advance, corrections

    target, name = (advance, "commit") if where == "commit" else (corrections, "issue_now")
    real = getattr(target, name)
    kills = iter([True])

    def maybe_die(*args: Any, **kwargs: Any) -> Any:
        if next(kills, False):
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, maybe_die)
    _enqueue(_event("seat-1", "members", START + day(0, 12), delta=1))
    _ingest()
    # WHEN the message is delivered again after the kill
    _bill_events(world, monkeypatch, START + day(0, 13))

    # THEN one finalized invoice, posted once, queued once for Stripe sync
    (invoice,) = _advance_invoices(world)
    assert (invoice["status"], invoice["total_minor"]) == ("finalized", 1500)
    assert len(invoice_postings("acme")) == 1
    assert [m["invoice_id"] for m in queued(world.sync_queue)] == [invoice["id"]]
    assert_books_agree(world, "acme")


def test_two_events_at_once_are_priced_one_after_the_other(world: World, monkeypatch: Any) -> None:
    # GIVEN a second seat event billed while the first is between its read and its commit
    from neruba.logic.billing import advance

    ctx = world.ctx
    real_commit = advance.commit
    interleave = iter([True])

    def commit_after_another(unit: Any) -> None:
        if next(interleave, False):
            advance.process_message(ctx, _message("seat-2", START + day(0, 12)), START + day(0, 13))
        real_commit(unit)

    monkeypatch.setattr(advance, "commit", commit_after_another)
    advance.process_message(ctx, _message("seat-1", START + day(0, 12)), START + day(0, 13))

    # THEN both are billed, each for one seat (the first retried against the moved position)
    totals = sorted(i["total_minor"] for i in _advance_invoices(world))
    assert totals == [1500, 1500]
    paid = sorted(str(i["lines"][0]["source"]["paid_after"]) for i in _advance_invoices(world))
    assert paid == ["1", "2"]


def _message(tx: str, at: datetime) -> dict[str, Any]:
    return {
        "customer_id": "acme",
        "transaction_id": tx,
        "meter_code": "members",
        "timestamp": at.isoformat(),
        "value": "1",
    }


def test_an_event_before_the_subscription_is_recorded_as_not_billed(world: World) -> None:
    from neruba.logic.billing import advance

    item = advance.process_message(world.ctx, _message("early", START - day(1)), START)
    assert (item["status"], item["reason"]) == ("not_billed", "no_subscription")
    assert _advance_invoices(world) == []


@pytest.mark.parametrize(
    ("charge", "status", "code", "param"),
    [
        (
            {"meter_code": "members", "model": "percentage", "rate": "1", "pay_in_advance": True},
            400,
            "advance_not_supported",
            "charges.0.model",
        ),
        (
            {"meter_code": "peak", "model": "per_unit", "unit_price": "1", "pay_in_advance": True},
            400,
            "advance_not_supported",
            "charges.0.meter_code",
        ),
        (
            {
                "meter_code": "members",
                "model": "per_unit",
                "unit_price": "1",
                "pay_in_advance": True,
                "pricing_unit": {"code": "credits", "conversion_rate": "0.01"},
            },
            400,
            "advance_not_supported",
            "charges.0.pricing_unit",
        ),
        (  # a count never decreases: nothing to credit or refund
            {
                "meter_code": "api_calls",
                "model": "per_unit",
                "unit_price": "1",
                "pay_in_advance": True,
                "on_removal": "refund",
            },
            400,
            "advance_not_supported",
            "charges.0.on_removal",
        ),
        (  # nor does a count of unique values
            {
                "meter_code": "users",
                "model": "per_unit",
                "unit_price": "1",
                "pay_in_advance": True,
                "on_removal": "credit",
            },
            400,
            "advance_not_supported",
            "charges.0.on_removal",
        ),
        (  # a flat fee due with no usage is recurring: price(0) holds it, so no event's change billed it
            {
                "meter_code": "members",
                "model": "graduated",
                "pay_in_advance": True,
                "zero_usage_flat_fee": True,
                "tiers": [
                    {"up_to": "10", "unit_price": "0", "flat_fee": "100"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
            400,
            "advance_not_supported",
            "charges.0.zero_usage_flat_fee",
        ),
        (
            {"meter_code": "api_calls", "model": "per_unit", "unit_price": "1", "prorate": True},
            422,
            "validation_error",
            None,
        ),
    ],
)
def test_charges_that_cannot_be_billed_in_advance_are_refused(
    world: World, charge: dict[str, Any], status: int, code: str, param: str | None
) -> None:
    meter = {"code": "peak", "name": "Peak", "aggregation": "max", "field": "gb"}
    assert _admin("POST", "/v1/meters", meter)[0] == 201
    body = {**PLAN, "code": "other", "charges": [charge]}
    got, answer = _admin("POST", "/v1/plans", body)
    assert (got, answer["error"]["code"]) == (status, code), answer
    if param:
        assert answer["error"]["param"] == param
        assert "in advance" in answer["error"]["message"]
    else:
        (detail,) = answer["error"]["details"]
        assert "pay_in_advance" in detail["message"] and detail["param"] == "charges.0.prorate"
    assert _admin("GET", "/v1/plans/other")[0] == 404


def test_a_unique_count_bills_each_value_once_per_period(world: World, monkeypatch: Any) -> None:
    # GIVEN users a, a, b on day 0 and a again on day 1 (a new period)
    _enqueue(
        _event("u-1", "users", START + day(0, 1), user="a"),
        _event("u-2", "users", START + day(0, 2), user="a"),
        _event("u-3", "users", START + day(0, 3), user="b"),
        _event("u-4", "users", START + day(1, 1), user="a"),
    )
    _ingest()
    _bill_events(world, monkeypatch, START + day(1, 2))

    # THEN a and b are billed on day 0, a again on day 1; the repeat of a is recorded, not billed
    from neruba.logic.billing.advance_lines import pending_lines

    lines = pending_lines(world.ctx.billing.advance, "acme", "USD")
    assert sorted((line["line_id"], line["amount_minor"]) for line in lines) == [
        ("advance:users:u-1", 500),
        ("advance:users:u-3", 500),
        ("advance:users:u-4", 500),
    ]
    repeat = world.ctx.billing.advance.get("acme", "u-2")
    assert repeat is not None and (repeat.status, repeat.amount_minor) == ("recorded", 0)


def test_a_late_event_is_billed_in_advance_and_the_late_check_bills_nothing_more(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 billed and finalized with one seat
    schedule(world, START)
    work(world, START, monkeypatch)
    _enqueue(_event("seat-1", "members", START, delta=1))
    _ingest()
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)
    schedule(world, START + day(1, 3))
    # WHEN a second seat of day 0 arrives late, and day 1 is billed (its late-event check re-rates day 0)
    _enqueue(_event("seat-late", "members", START + day(0, 12), delta=1))
    _ingest()
    schedule(world, START + day(2, 1))
    work(world, START + day(2, 1), monkeypatch)

    # THEN the late seat has its own invoice (half of day 0 left) and no adjustment bills the seats again
    assert sorted(i["total_minor"] for i in _advance_invoices(world)) == [1500, 3000]
    # (the re-rated quantity of day 0 shows as a zero adjustment: the seat's money is on its own invoice)
    adjustments = [
        line for i in world.invoices("acme") for line in i["lines"] if line["kind"] == "adjustment"
    ]
    assert [(line["quantity"], line["amount_minor"]) for line in adjustments] == [(1, 0)]
    assert_books_agree(world, "acme")


def test_a_removal_with_refund_is_a_negative_invoice_at_once(world: World, monkeypatch: Any) -> None:
    # GIVEN a license added, then removed later in the period
    _enqueue(
        _event("lic-1", "licenses", START + day(0, 2), n=1),
        _event("lic-1-off", "licenses", START + day(0, 20), n=-1),
    )
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 21))

    # THEN 12.00 invoiced, then -12.00 on an invoice of its own (a reduction posting), both finalized
    invoices = sorted(_advance_invoices(world), key=lambda i: i["total_minor"])
    assert [(i["total_minor"], i["status"]) for i in invoices] == [(-1200, "finalized"), (1200, "finalized")]
    reasons = sorted(p.reason for p in invoice_postings("acme"))
    assert reasons == ["invoice", "invoice_reduction"]
    assert_books_agree(world, "acme")


def test_a_malformed_advance_message_fails_until_the_dlq(world: World, monkeypatch: Any) -> None:
    from neruba.dal.queue import send_batch
    from tests.functional.billing.helpers import worker

    assert send_batch(world.billing_queue, [("0", '{"advance": {"customer_id": "acme"}}')]) == []
    handler = worker(world, START, monkeypatch)
    failed = run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))
    assert len(failed) == 1  # reported as a batch item failure: SQS retries it, then BillingDLQ keeps it
    assert world.ctx.billing.advance.charges("acme") == []


def test_two_workers_on_the_same_message_bill_it_once(world: World, monkeypatch: Any) -> None:
    # GIVEN a second worker billing the same event while the first is between its read and its commit
    from neruba.logic.billing import advance

    ctx = world.ctx
    real_commit = advance.commit
    interleave = iter([True])

    def commit_after_the_other(unit: Any) -> None:
        if next(interleave, False):
            advance.process_message(ctx, _message("seat-1", START + day(0, 12)), START + day(0, 13))
        real_commit(unit)

    monkeypatch.setattr(advance, "commit", commit_after_the_other)
    item = advance.process_message(ctx, _message("seat-1", START + day(0, 12)), START + day(0, 13))

    # THEN one invoice, one posting, and the first worker answers the item the other wrote
    (invoice,) = _advance_invoices(world)
    assert item["invoice_id"] == invoice["id"] and invoice["status"] == "finalized"
    assert len(invoice_postings("acme")) == 1
    assert_books_agree(world, "acme")


def test_an_advance_amount_over_the_line_limit_is_recorded_at_0_and_never_invoiced(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN a runaway value on a license meter billed at once (12.00 each: 1.2E+20 minor units)
    _enqueue(_event("lic-huge", "licenses", START + day(0, 2), n="1E+17"))
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 3))

    # THEN no invoice is issued: the item is recorded at 0 and its line says why
    assert _advance_invoices(world) == []
    item = world.ctx.billing.advance.get("acme", "lic-huge")
    assert item is not None
    assert (item.document["amount_minor"], item.document["status"]) == (0, "recorded")
    line = item.document["line"]
    assert (line["amount_minor"], line["source"]["unbillable"]) == (0, "amount_too_large")
    assert "too large" in line["description"]


def test_the_phase_that_owns_the_events_hour_decides_advance_billing(world: World) -> None:
    """Usage is stored per hour and an hour is rated by the phase its start falls in; advance billing
    follows the same phase, so an event in the hour of a plan change is billed once, by one phase."""
    from neruba.logic.billing import advance
    from neruba.logic.catalog.subscriptions import change_plan
    from neruba.models.catalog import PlanChange

    arrears = {**PLAN, "charges": [{"meter_code": "members", "model": "per_unit", "unit_price": "7"}]}
    for version in (arrears, PLAN):  # v2: members in arrears, v3: members in advance again
        body = {k: v for k, v in version.items() if k != "code"}
        status, published = _admin("POST", "/v1/plans/team/versions", body)
        assert status == 201, published
    half_past = timedelta(minutes=30)
    sub_id = world.subscriptions[0]["id"]
    change = PlanChange(plan_code="team", plan_version=2, at=START + day(2) + half_past)
    change_plan(world.plans, sub_id, change, now=START + day(2))
    change = PlanChange(plan_code="team", plan_version=3, at=START + day(3) + half_past)
    change_plan(world.plans, sub_id, change, now=START + day(3))

    def bill(tx: str, at: datetime) -> tuple[str, Any]:
        item = advance.process_message(world.ctx, _message(tx, at), at)
        return item["status"], item.get("reason")

    forty = timedelta(minutes=40)
    # the hour of the change to arrears (starts on v1, advance): billed in advance, by v1
    assert bill("a", START + day(2) + forty)[0] != "not_billed"
    # the next hour is v2's: in arrears
    assert bill("b", START + day(2, 1) + forty) == ("not_billed", "charged_in_arrears")
    # the hour of the change back to advance starts on v2 (arrears): not billed in advance
    assert bill("c", START + day(3) + forty) == ("not_billed", "charged_in_arrears")
    assert bill("d", START + day(3, 1) + forty)[0] != "not_billed"


def test_an_advance_invoice_carries_the_billing_period_of_its_event_and_its_own_reason(
    world: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler

    # WHEN a member is added at noon of the second (daily) period and billed an hour later
    _enqueue(_event("seat-2", "members", START + day(1, 12), delta=1))
    _ingest()
    _bill_events(world, monkeypatch, START + day(1, 13))

    # THEN its invoice covers that billing period, not the instant it was processed, and says why
    (stored,) = _advance_invoices(world)
    path = f"/v1/invoices/{stored['id']}"
    status, invoice, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"invoice_id": stored["id"]}, scopes="read")
    )
    assert status == 200, invoice
    period = [
        datetime.fromisoformat(invoice[k].replace("Z", "+00:00")) for k in ("period_start", "period_end")
    ]
    assert period == [START + day(1), START + day(2)]
    assert invoice["billing_reason"] == "subscription_update"


def test_an_advance_invoice_is_discounted_and_taxed_as_a_period_invoice(
    world: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler as billing
    from neruba.dal.discounts import DiscountsRepository
    from tests.functional.webhooks.sources import outbox

    def post(path: str, body: dict[str, Any], key: str) -> Any:
        event = api_event("POST", path, body=body, headers={"Idempotency-Key": key}, scopes="admin")
        status, answer, _ = call(billing, event)
        assert status == 201, answer
        return answer

    # GIVEN 20% VAT on the team plan and 10% off forever for acme
    post("/admin/tax-rates", {"display_name": "VAT", "percentage": "20", "inclusive": False,
                              "plan_code": "team", "reason": "VAT"}, "t-1")  # fmt: skip
    coupon = post("/admin/coupons", {"name": "Ten", "percent_off": "10", "duration": "forever",
                                     "reason": "deal"}, "c-1")  # fmt: skip
    discount = post(
        "/admin/discounts", {"coupon_id": coupon["id"], "customer_id": "acme", "reason": "deal"}, "d-1"
    )

    # WHEN a license (12.00, invoiced at once) is added
    _enqueue(_event("lic-1", "licenses", START + day(0, 12), n=1))
    _ingest()
    _bill_events(world, monkeypatch, START + day(0, 13))

    # THEN its invoice takes 10% off (120) and adds 20% of the 1080 left (216), as a period invoice would
    (invoice,) = _advance_invoices(world)
    by_kind = {line["kind"]: line for line in invoice["lines"]}
    assert by_kind["discount"]["amount_minor"] == -120
    assert by_kind["advance"]["tax"]["exclusive_minor"] == 216
    totals = ("subtotal_minor", "discounts_minor", "tax_minor", "total_minor")
    assert tuple(invoice[k] for k in totals) == (1080, 120, 216, 1296)
    created = [e["data"] for e in outbox("invoice.created") if e["data"]["id"] == invoice["id"]]
    assert [
        (d["subtotal_minor"], d["discounts_minor"], d["tax_minor"], d["total_minor"]) for d in created
    ] == [(1080, 120, 216, 1296)]
    # AND no billing period of the discount is counted by it (the period invoices count them)
    used = DiscountsRepository(get_settings().billing_table).used(discount["id"], "sub-acme")
    assert used == 0
    assert_books_agree(world, "acme")


def test_a_void_is_refused_only_for_events_their_customer_s_phase_billed_in_advance(
    world: World, monkeypatch: Any
) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.ingest.voids import VoidRequest, void_event

    # GIVEN acme's seats (billed in advance by its plan) and API calls (in arrears), counted; then another
    # plan, nobody's, billing api_calls in advance (the meter is marked)
    at = START + timedelta(hours=2)
    _enqueue(_event("seat-1", "members", at, delta=1), _event("call-1", "api_calls", at))
    _ingest()
    ahead = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "1", "pay_in_advance": True}
    other = {**PLAN, "code": "calls-ahead", "charges": [ahead]}
    assert _admin("POST", "/v1/plans", other)[0] == 201

    def void(tx: str) -> dict[str, Any]:
        request = VoidRequest("acme", tx, "sent twice", "SUP-1")
        return void_event(request, "key:test", f"void-{tx}", now=START + timedelta(hours=3))

    # WHEN the seat is voided THEN it is refused: acme's phase charged it when counted
    with pytest.raises(ConflictError) as refused:
        void("seat-1")
    assert refused.value.code == "event_billed_in_advance"
    # AND the API call is voided: acme's phase bills it in arrears, whatever another plan does
    assert void("call-1")["status"] == "voided"


def test_an_amend_moving_an_event_into_an_hour_its_customer_s_phase_bills_in_advance_is_refused(
    world: World,
) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.catalog.subscriptions import change_plan
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.models.catalog import PlanChange

    # GIVEN acme's API call of 02:00 (billed in arrears), then acme moved (made at 03:20, dated 03:10: from
    # 04:00) to a plan billing API calls in advance
    at = START + timedelta(hours=2)
    _enqueue(_event("call-1", "api_calls", at))
    _ingest()
    ahead = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "1", "pay_in_advance": True}
    assert _admin("POST", "/v1/plans", {**PLAN, "code": "calls-ahead", "charges": [ahead]})[0] == 201
    change = PlanChange(plan_code="calls-ahead", at=START + timedelta(hours=3, minutes=10))
    change_plan(
        world.plans, str(world.subscriptions[0]["id"]), change, START + timedelta(hours=3, minutes=20)
    )

    def amend(moved_to: datetime, key: str) -> dict[str, Any]:
        request = VoidRequest("acme", "call-1", "wrong hour", "SUP-2", timestamp=moved_to, amend=True)
        return void_event(request, "key:test", key, now=START + timedelta(hours=5, minutes=30))

    # WHEN the call is amended to 05:00 THEN it is refused: the copy would count in an hour whose phase
    # bills API calls in advance, one by one as they are sent, which a copy never is (never billed)
    with pytest.raises(ConflictError) as refused:
        amend(START + timedelta(hours=5), "amend-5")
    assert refused.value.code == "event_billed_in_advance"
    assert "corrected" in str(refused.value)
    # AND amended to 03:00 (still the arrears phase's hour) it is made
    assert amend(START + timedelta(hours=3), "amend-3")["status"] == "voided"


def test_a_plan_change_touching_advance_charges_takes_hours_no_event_was_counted_in_yet(
    world: World,
) -> None:
    from neruba.errors import InvalidRequestError
    from neruba.logic.catalog.subscriptions import change_plan
    from neruba.models.catalog import PlanChange

    # GIVEN acme on "team" (seats billed in advance) and a plan billing everything in arrears; events are
    # accepted up to 300 s ahead of now (ingest_max_future_seconds)
    arrears = {**PLAN, "code": "team-later", "charges": [
        {"meter_code": "members", "model": "per_unit", "unit_price": "30.00"}]}  # fmt: skip
    assert _admin("POST", "/v1/plans", arrears)[0] == 201
    sub_id = str(world.subscriptions[0]["id"])
    now = START + timedelta(hours=5, minutes=20)

    def refused(at: datetime, when: datetime = now) -> str:
        with pytest.raises(InvalidRequestError) as error:
            change_plan(world.plans, sub_id, PlanChange(plan_code="team-later", at=at), when)
        assert (error.value.code, error.value.param) == ("invalid_change_time", "at")
        return str(error.value)

    # WHEN the change is dated hours back, or at the start of the hour it is made in (that whole hour
    # would move to the new phase, and its events counted since 05:00 were billed by the old one)
    # THEN it is refused, naming the first hour it may take
    refused(START + timedelta(hours=1))
    assert START.replace(hour=6).isoformat().replace("+00:00", "Z") in refused(START + timedelta(hours=5))
    # AND made 4 minutes before the next hour, even dated now it is refused: an event of 06:00:30 may be
    # counted already (300 s ahead), and 06:00 would be the new phase's first hour
    late = START + timedelta(hours=5, minutes=56)
    assert START.replace(hour=7).isoformat().replace("+00:00", "Z") in refused(late, late)
    # AND dated inside this hour (the hour stays the old phase's, the new one takes over at 06:00) it is made
    moved = change_plan(
        world.plans,
        sub_id,
        PlanChange(plan_code="team-later", at=START + timedelta(hours=5, minutes=10)),
        now,
    )
    assert moved["phases"][-1]["plan_code"] == "team-later"
    # AND a change back made at 05:56 without a date takes over at the first hour allowed (07:00)
    undated = change_plan(world.plans, sub_id, PlanChange(plan_code="team"), late)
    assert [(p["plan_code"], p["start_at"]) for p in undated["phases"][-2:]] == [
        ("team-later", (START + timedelta(hours=5, minutes=10)).isoformat()),
        ("team", START.replace(hour=7).isoformat()),
    ]


def test_a_subscription_billing_in_advance_cannot_start_before_it_is_made(world: World) -> None:
    from neruba.errors import InvalidRequestError
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Customer, SubscriptionCreate

    # GIVEN beta, a customer without a subscription, whose seat events were counted since 01:00 (billed by
    # no phase: there was none), and a plan billing api_calls in arrears only
    world.plans.create_customer(Customer(external_id="beta", name="Beta", currency="USD"))
    arrears = {**PLAN, "code": "calls", "charges": [PLAN["charges"][-1]]}
    assert _admin("POST", "/v1/plans", arrears)[0] == 201
    now = START + timedelta(hours=5, minutes=20)

    # WHEN beta is subscribed to "team" (seats billed in advance) from 01:00, or a second before now
    # THEN it is refused: those hours' seat events were counted with no phase to bill them in advance,
    # and a phase taking them now would never bill them (its arrears lines leave advance meters out)
    for start in (START + timedelta(hours=1), now - timedelta(seconds=1)):
        body = SubscriptionCreate(customer_id="beta", plan_code="team", start_at=start)
        with pytest.raises(InvalidRequestError) as refused:
            create_subscription(world.plans, body, f"k-{start}", now)
        assert (refused.value.code, refused.value.param) == ("invalid_start_time", "start_at")
    # AND started now (start_at left out) it is made
    made = create_subscription(
        world.plans, SubscriptionCreate(customer_id="beta", plan_code="team"), "k", now
    )
    assert made["start_at"] == now.isoformat()
    # AND a plan without advance charges may still start in the past (its arrears lines bill those hours)
    world.plans.create_customer(Customer(external_id="gamma", name="Gamma", currency="USD"))
    body = SubscriptionCreate(customer_id="gamma", plan_code="calls", start_at=START + timedelta(hours=1))
    assert create_subscription(world.plans, body, "k2", now)["phases"][0]["plan_code"] == "calls"


def test_the_hour_a_subscription_starts_in_is_billed_in_advance_whole_and_never_counted_before_it(
    world: World,
) -> None:
    from neruba.errors import InvalidRequestError
    from neruba.logic.billing import advance
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Customer, SubscriptionCreate

    # GIVEN beta subscribed at 05:13 to "team" (seats billed in advance) from 05:15
    world.plans.create_customer(Customer(external_id="beta", name="Beta", currency="USD"))
    body = SubscriptionCreate(
        customer_id="beta", plan_code="team", start_at=START + timedelta(hours=5, minutes=15)
    )
    create_subscription(world.plans, body, "k-beta", START + timedelta(hours=5, minutes=13))

    # WHEN a seat timestamped 05:14 (the subscription's first hour, before its start) is billed in advance
    seat = {"customer_id": "beta", "transaction_id": "early-seat", "meter_code": "members",
            "timestamp": (START + timedelta(hours=5, minutes=14)).isoformat(), "value": "1"}  # fmt: skip
    item = advance.process_message(world.ctx, seat, START + timedelta(hours=5, minutes=16))

    # THEN it is billed: the window rates that whole hour under the subscription, and its line leaves the
    # meter to advance billing (before, it was recorded not_billed and so billed nowhere)
    assert item["status"] != "not_billed", item
    # AND its line shows the event's own time, billed from the start (05:15)
    source = item["line"]["source"]
    assert source["event_timestamp"].startswith(ts(START + timedelta(hours=5, minutes=14))[:16]), source
    assert item["line"]["period_start"] == (START + timedelta(hours=5, minutes=15)).isoformat()

    # GIVEN gamma, without a subscription, whose seat of 05:05 was counted already
    world.plans.create_customer(Customer(external_id="gamma", name="Gamma", currency="USD"))
    _enqueue({**_event("gamma-seat", "members", START + timedelta(hours=5, minutes=5), delta=1),
              "customer_id": "gamma"})  # fmt: skip
    _ingest()
    now = START + timedelta(hours=5, minutes=10)
    # WHEN gamma is subscribed to "team" from 05:15 THEN it is refused: its first hour (05:00) holds a seat
    # counted when no phase could bill it in advance, which the hour's line would then call billed
    later = SubscriptionCreate(
        customer_id="gamma", plan_code="team", start_at=START + timedelta(hours=5, minutes=15)
    )
    with pytest.raises(InvalidRequestError) as refused:
        create_subscription(world.plans, later, "k-gamma", now)
    assert (refused.value.code, refused.value.param) == ("invalid_start_time", "start_at")
    assert "06:00" in str(refused.value)
    # AND from 06:00 (no event of that hour can be counted yet) it is made
    from_next = SubscriptionCreate(customer_id="gamma", plan_code="team", start_at=START + timedelta(hours=6))
    assert create_subscription(world.plans, from_next, "k-gamma-6", now)["status"] == "active"
