"""Stripe payment events are checked against the stored invoice before any money moves.

End to end on the real modules (billing with the real ledger, sync-out to the fake Stripe, signed webhooks,
the worker, the admin API): a payment whose event names another customer, currency or Stripe invoice is
parked for an operator and applies nothing; a partial payment books the cash received and leaves the
invoice open with the rest; an overpayment is parked. Expected amounts are computed here from the
invoices' totals, never read back from what the code wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from neruba.models.catalog import Customer
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.stripe.test_end_to_end import (
    invoice,
    ledger,
    stripe_invoice_of,
    sync_run,
    work_events,
)
from tests.support.stripe_events import event

OTHER = "bolt"


def balance_of(customer_id: str) -> dict[str, Any]:
    from neruba.logic.ledger.reads import balance as read_balance

    return read_balance(customer_id)


def payments_of(customer_id: str) -> list[Any]:
    found, _ = ledger().postings(customer_id, limit=100)
    return [p for p in found if p.reason == "payment"]


@pytest.fixture
def both(world: World, fake: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """acme and bolt each billed for day 0 (100 calls: 1000) and day 1 (acme 25 calls: 250, bolt 40: 400)
    at 0.10 per call, finalized and synced; their two usage invoices each (the opening ones are 0)."""
    world.plans.create_customer(Customer(external_id=OTHER, name="Bolt", currency="USD"))
    world.subscribe("acme")
    world.subscribe(OTHER)
    for customer_id, calls in (("acme", 25), (OTHER, 40)):
        world.usage(customer_id, START + day(0, 3), 100)
        world.usage(customer_id, START + day(1, 5), calls)
    now = START + day(2, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    schedule(world, now + day(0, 2))
    while sync_run():
        pass
    every = {c: world.invoices(c) for c in ("acme", OTHER)}
    assert [[i["total_minor"] for i in found] for found in every.values()] == [[0, 1000, 250], [0, 1000, 400]]
    return {c: found[1:] for c, found in every.items()}


def paid(stripe_invoice: dict[str, Any], charge: str, amount_paid: int, **changes: Any) -> dict[str, Any]:
    """Stripe's invoice.paid for a Stripe invoice (its metadata as the sync wrote it), paying
    ``amount_paid`` in total so far (Stripe's ``amount_paid`` is cumulative over the invoice)."""
    obj = {
        **stripe_invoice,
        "status": "paid",
        "amount_paid": amount_paid,
        "amount_due": stripe_invoice["total"],
        "amount_remaining": stripe_invoice["total"] - amount_paid,
        "charge": charge,
        "payment_intent": f"pi_{charge}",
        **changes,
    }
    return event("invoice.paid", obj)


def deliver_and_work(deliver: Callable[..., tuple[int, Any]], *events: dict[str, Any]) -> None:
    for one in events:
        assert deliver(one)[0] == 200
    work_events()


def test_a_payment_naming_another_customer_is_parked_and_applies_nothing(
    both: dict[str, list[dict[str, Any]]], fake: FakeStripe, deliver: Any, admin: Any, stored: Any
) -> None:
    # GIVEN bolt's finalized day 1 invoice (400) and an invoice.paid whose metadata names acme
    theirs = both[OTHER][1]
    stripe_invoice = stripe_invoice_of(fake, theirs["id"])
    forged = {**stripe_invoice, "metadata": {**stripe_invoice["metadata"], "neruba_customer_id": "acme"}}
    due_before = {c: balance_of(c)["amount_due_minor"] for c in ("acme", OTHER)}
    assert due_before == {"acme": 1250, OTHER: 1400}
    # WHEN it is delivered and processed
    wrong_customer = paid(forged, "ch_forged", 400)
    deliver_and_work(deliver, wrong_customer)
    # THEN the event is parked with its reason, bolt's invoice is still open, nobody was credited
    record = stored(wrong_customer["id"])
    assert record["status"] == "parked"
    assert "customer_mismatch" in record["error"]
    assert invoice(theirs["id"]).status == "finalized"
    assert payments_of("acme") == [] and payments_of(OTHER) == []
    assert {c: balance_of(c)["amount_due_minor"] for c in ("acme", OTHER)} == due_before
    # AND the operator finds it in the list of parked events
    status, page = admin("GET", "/admin/stripe-events", query={"status": "parked"})
    assert status == 200, page
    assert [(e["id"], e["status"]) for e in page["data"]] == [(wrong_customer["id"], "parked")]
    assert "customer_mismatch" in page["data"][0]["error"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"currency": "eur"}, "currency_mismatch"),
        ({"id": "in_not_the_one_we_created"}, "stripe_invoice_mismatch"),
        ({"customer": "cus_someone_else"}, "stripe_customer_mismatch"),
        ({"total": 9999, "amount_due": 9999}, "amount_mismatch"),
    ],
)
def test_a_payment_that_does_not_match_the_stored_invoice_is_parked(
    both: dict[str, list[dict[str, Any]]],
    fake: FakeStripe,
    deliver: Any,
    stored: Any,
    change: dict[str, Any],
    reason: str,
) -> None:
    # GIVEN acme's day 0 invoice (1000), and a payment event differing from it in one respect
    ours = both["acme"][0]
    one = paid(stripe_invoice_of(fake, ours["id"]), "ch_1", 1000, **change)
    # WHEN it is processed
    deliver_and_work(deliver, one)
    # THEN it is parked with that reason and nothing moved
    record = stored(one["id"])
    assert (record["status"], record["error"].split(":")[0]) == ("parked", reason)
    assert invoice(ours["id"]).status == "finalized"
    assert payments_of("acme") == []
    assert balance_of("acme")["amount_due_minor"] == 1250


def test_a_partial_payment_books_the_cash_and_leaves_the_rest_open(
    both: dict[str, list[dict[str, Any]]], fake: FakeStripe, deliver: Any, stored: Any
) -> None:
    # GIVEN acme's day 0 invoice of 1000
    ours = both["acme"][0]
    stripe_invoice = stripe_invoice_of(fake, ours["id"])
    total = ours["total_minor"]
    first_cash = 600
    # WHEN Stripe reports 600 paid (twice: invoice.paid and invoice.payment_succeeded for one charge)
    partial = paid(stripe_invoice, "ch_part", first_cash)
    succeeded = {**paid(stripe_invoice, "ch_part", first_cash), "type": "invoice.payment_succeeded"}
    deliver_and_work(deliver, partial, succeeded)
    # THEN 600 is booked once, the invoice stays open with 400 remaining
    doc = invoice(ours["id"])
    assert doc.status == "finalized"
    assert (doc.amount_paid_minor, doc.document["amount_remaining_minor"]) == (first_cash, total - first_cash)
    assert [p.total_minor for p in payments_of("acme")] == [first_cash]
    assert balance_of("acme")["amount_due_minor"] == 1250 - first_cash
    assert balance_of("acme")["paid_to_date_minor"] == first_cash
    assert {stored(partial["id"])["status"], stored(succeeded["id"])["status"]} == {"processed"}
    # WHEN the rest arrives with a second charge (Stripe's amount_paid is the invoice's running total)
    rest = paid(stripe_invoice, "ch_rest", total)
    deliver_and_work(deliver, rest)
    # THEN only the 400 still owed is booked and the invoice is paid
    doc = invoice(ours["id"])
    assert (doc.status, doc.amount_paid_minor, doc.document["amount_remaining_minor"]) == ("paid", total, 0)
    assert sorted(p.total_minor for p in payments_of("acme")) == sorted([first_cash, total - first_cash])
    assert balance_of("acme")["amount_due_minor"] == 250
    # WHEN a third charge reports more than the invoice's total
    over = paid(stripe_invoice, "ch_over", total + 300)
    deliver_and_work(deliver, over)
    # THEN it is parked as an overpayment and books nothing
    assert (stored(over["id"])["status"], stored(over["id"])["error"].split(":")[0]) == (
        "parked",
        "overpayment",
    )
    assert len(payments_of("acme")) == 2
    assert balance_of("acme")["amount_due_minor"] == 250
    assert ledger().reconcile("acme") == []


def test_a_parked_payment_is_applied_by_a_replay_once_its_cause_is_fixed(
    both: dict[str, list[dict[str, Any]]], fake: FakeStripe, deliver: Any, admin: Any, stored: Any
) -> None:
    # GIVEN acme's day 1 invoice (250) whose sync record lost the Stripe invoice id
    from neruba.dal.invoices import InvoicesRepository
    from neruba.settings import get_settings

    ours = both["acme"][1]
    repo = InvoicesRepository(get_settings().billing_table)
    sync = dict(invoice(ours["id"]).stripe)
    repo.set_sync(ours["id"], {**sync, "invoice_id": None})
    one = paid(stripe_invoice_of(fake, ours["id"]), "ch_9", 250)
    deliver_and_work(deliver, one)
    assert stored(one["id"])["status"] == "parked"
    assert payments_of("acme") == []
    # WHEN the record is repaired and an operator replays the event
    repo.set_sync(ours["id"], sync)
    status, body = admin(
        "POST",
        f"/admin/stripe-events/{one['id']}/replay",
        path_parameters={"event_id": one["id"]},
        body={"reason": "sync record repaired", "ticket": "OPS-9"},
        headers={"Idempotency-Key": "replay-parked"},
    )
    # THEN the payment is applied exactly once
    assert status == 200 and body["status"] == "processed", body
    assert [p.total_minor for p in payments_of("acme")] == [250]
    assert invoice(ours["id"]).status == "paid"
    assert balance_of("acme")["amount_due_minor"] == 1000


def receivable_sweep() -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    from neruba import bootstrap
    from neruba.logic.sweeps.runner import run_sweep

    now = datetime.now(UTC)
    since = START - timedelta(days=1)  # the window covers every posting of the test
    report = run_sweep(
        bootstrap.ops(),
        ["receivable"],
        since,
        now,
        trigger="cli",
        actor="t",
        billing=bootstrap.billing,
        now=now,
    )
    assert report["status"] == "ok", report
    check: dict[str, Any] = report["checks"][0]
    return check


def test_the_receivable_sweep_reports_invoices_whose_status_disagrees_with_the_ledger(
    both: dict[str, list[dict[str, Any]]], fake: FakeStripe, deliver: Any
) -> None:
    from neruba.dal.invoices import InvoicesRepository
    from neruba.logic.ledger.postings import record_payment
    from neruba.settings import get_settings

    # GIVEN acme's day 0 invoice paid 600 of 1000 and its day 1 invoice paid in full, through Stripe
    acme_day0, acme_usage = both["acme"]
    deliver_and_work(
        deliver,
        paid(stripe_invoice_of(fake, acme_day0["id"]), "ch_a1", 600),
        paid(stripe_invoice_of(fake, acme_usage["id"]), "ch_a2", 250),
    )
    # THEN the sweep finds every invoice in agreement with the receivable
    clean = receivable_sweep()
    assert (clean["found"], clean["details"]["failures"]) == (0, [])
    # (six invoices: each customer's opening invoice of 0 and two usage invoices)
    assert clean["checked"] == {"customers": 2, "customers_with_postings": 2, "invoices": 6, "payments": 2}

    # GIVEN the books left by the old processing: bolt's day 1 invoice (400) marked paid while the cash
    # went to acme, and bolt's day 0 invoice (1000) marked paid after a payment of 600
    bolt_day0, bolt_usage = both[OTHER]
    repo = InvoicesRepository(get_settings().billing_table)
    common = {"currency": "USD", "source": "stripe", "actor": "stripe:webhook"}
    record_payment(
        ledger(),
        customer_id="acme",
        amount_minor=400,
        payment_id="ch_x",
        invoice_id=bolt_usage["id"],
        idempotency_key="stripe:payment:ch_x",
        **common,
    )
    repo.set_status(bolt_usage["id"], "paid", expected="finalized")
    record_payment(
        ledger(),
        customer_id=OTHER,
        amount_minor=600,
        payment_id="ch_y",
        invoice_id=bolt_day0["id"],
        idempotency_key="stripe:payment:ch_y",
        **common,
    )
    repo.set_status(bolt_day0["id"], "paid", expected="finalized")
    # WHEN the sweep runs
    check = receivable_sweep()
    # THEN each disagreement is a failure naming the invoice, with what the ledger says is still owed
    failures = sorted(
        (f["kind"], f["customer_id"], f["invoice_id"], f.get("invoice_owed"), f.get("ledger_owed"))
        for f in check["details"]["failures"]
    )
    assert failures == sorted(
        [
            ("receivable_differs", OTHER, bolt_usage["id"], 0, 400),
            ("receivable_differs", OTHER, bolt_day0["id"], 0, 1000 - 600),
            ("payment_for_unknown_invoice", "acme", bolt_usage["id"], None, None),
        ]
    )
    assert check["found"] == 3 and check["repaired"] == 0


def test_refunds_and_disputes_beyond_what_was_paid_are_parked(
    both: dict[str, list[dict[str, Any]]], fake: FakeStripe, deliver: Any, stored: Any
) -> None:
    from tests.functional.stripe.test_end_to_end import dispute_event, refund_event

    # GIVEN 600 received on acme's day 0 invoice of 1000 (charge ch_p)
    ours = both["acme"][0]
    received = 600
    deliver_and_work(deliver, paid(stripe_invoice_of(fake, ours["id"]), "ch_p", received))
    # WHEN Stripe reports a refund of 700 on that charge
    too_much = refund_event("ch_p", [("re_big", 700)])
    deliver_and_work(deliver, too_much)
    # THEN it is parked: more than was received
    assert (stored(too_much["id"])["status"], stored(too_much["id"])["error"].split(":")[0]) == (
        "parked",
        "refund_exceeds_refundable",
    )
    # WHEN a refund of 500 arrives (and again, redelivered as a new event listing the same refund)
    fine = refund_event("ch_p", [("re_ok", 500)])
    deliver_and_work(deliver, fine, refund_event("ch_p", [("re_ok", 500)]))
    # THEN it is posted once; then a dispute of 200 would take back 700 of 600 received: parked
    assert stored(fine["id"])["status"] == "processed"
    disputed = dispute_event("charge.dispute.created", "dp_p", "ch_p", 200, "needs_response")
    deliver_and_work(deliver, disputed)
    assert stored(disputed["id"])["error"].split(":")[0] == "dispute_exceeds_refundable"
    # AND a refund in another currency than the payment is parked too
    foreign = refund_event("ch_p", [("re_eur", 50)])
    foreign["data"]["object"]["currency"] = "eur"
    deliver_and_work(deliver, foreign)
    assert stored(foreign["id"])["error"].split(":")[0] == "currency_mismatch"
    # AND the books: 600 in, 500 refunded, nothing held
    found, _ = ledger().postings("acme", limit=100)
    assert sorted((p.reason, p.total_minor) for p in found if p.reason != "invoice") == [
        ("payment", received),
        ("refund", 500),
    ]
    assert balance_of("acme")["paid_to_date_minor"] == received - 500
    assert ledger().reconcile("acme") == []
