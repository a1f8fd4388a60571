"""A Stripe payment and a credit note in either order end the same (docs/stripe.md, "A payment made
before Stripe heard of a credit note").

A credit note lowers what an invoice asks at once in Neruba but reaches Stripe later (StripeSyncQueue), so
the customer may pay the Stripe invoice's whole total in between. End to end on the real modules (billing,
the real ledger, the sync function with the fake Stripe through the stripe library, signed webhooks, the
worker): acme pays first and is credited after, bolt is credited first and pays after; both end with the
same postings, invoice, payment record and Stripe credit note. The expected amounts come from the
invoices' totals and the credited amount, never from what the code wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from neruba.models.catalog import Customer
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.stripe.test_end_to_end import invoice, ledger, stripe_invoice_of, sync_run, work_events
from tests.support.api import api_event, call
from tests.support.stripe_events import event

TOTAL = 1000  # day 0: 100 calls at 0.10
CREDIT = 300
Deliver = Callable[..., tuple[int, Any]]


@pytest.fixture
def day0(world: World, fake: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """acme's and bolt's day 0 invoices (1000 each), finalized and in Stripe, unpaid."""
    world.plans.create_customer(Customer(external_id="bolt", name="Bolt", currency="USD"))
    for customer_id in ("acme", "bolt"):
        world.subscribe(customer_id)
        world.usage(customer_id, START + day(0, 3), 100)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    schedule(world, now + day(0, 2))
    while sync_run():
        pass
    found = {c: [i for i in world.invoices(c) if i["total_minor"] == TOTAL] for c in ("acme", "bolt")}
    assert all(len(one) == 1 for one in found.values()), found
    return {c: one[0]["id"] for c, one in found.items()}


def credit(invoice_id: str, key: str, amount: int = CREDIT) -> dict[str, Any]:
    """An operator's credit note of ``amount`` on the invoice's one usage line (its Stripe message is queued,
    not yet processed)."""
    from neruba import bootstrap
    from neruba.logic.billing.credit_notes import create_credit_note
    from neruba.models.billing import CreditNoteCreate

    (line,) = [line for line in invoice(invoice_id).lines if line.amount_minor > 0]
    body = CreditNoteCreate.model_validate(
        {"reason": "outage", "lines": [{"line_id": line.line_id, "amount_minor": amount}]}
    )
    return create_credit_note(bootstrap.billing(), invoice_id, body, "key:ops", key)


def pay_in_stripe(fake: FakeStripe, invoice_id: str) -> dict[str, Any]:
    """The customer pays the Stripe invoice (what Stripe asks for it now); Stripe's ``invoice.paid``."""
    stripe_id = stripe_invoice_of(fake, invoice_id)["id"]
    status, paid, _ = fake.handle("POST", f"/v1/invoices/{stripe_id}/pay", {}, None)
    assert status == 200, paid
    return event("invoice.paid", paid)


def paid_event(
    fake: FakeStripe, invoice_id: str, charge: str, amount_paid: int, **more: Any
) -> dict[str, Any]:
    """A Stripe payment event for the invoice reporting ``amount_paid`` in all so far."""
    obj = {**stripe_invoice_of(fake, invoice_id), "status": "paid", "amount_paid": amount_paid,
           "charge": charge, "payment_intent": f"pi_{charge}"}  # fmt: skip
    return event(more.pop("kind", "invoice.paid"), {**obj, **more})


def deliver_and_work(deliver: Deliver, *events: dict[str, Any]) -> None:
    for one in events:
        assert deliver(one)[0] == 200
    work_events()


def accounts(customer_id: str) -> dict[str, int]:
    from neruba.logic.ledger.reads import balance

    return {k: int(v) for k, v in balance(customer_id)["accounts"].items()}


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in {*before, *after}
        if after.get(k, 0) != before.get(k, 0)
    }


def invoice_state(invoice_id: str) -> dict[str, Any]:
    found = invoice(invoice_id)
    doc = found.document
    names = ("credited_minor", "pre_payment_credited_minor", "post_payment_credited_minor",
             "credited_balance_minor", "amount_remaining_minor")  # fmt: skip
    return {"status": found.status, "amount_paid_minor": found.amount_paid_minor,
            **{n: int(doc.get(n) or 0) for n in names}}  # fmt: skip


def payment_records(customer_id: str, invoice_id: str) -> list[tuple[int, int, int]]:
    found = ledger().payments.for_invoice(customer_id, invoice_id)
    return [(p.paid_minor, p.credited_minor, p.refundable_minor) for p in found]


def receivable_problems(customer_id: str, invoice_id: str) -> list[str]:
    """What the ``receivable`` sweep check would report for the invoice (its rules, on the real data)."""
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice, status_problem

    found, _ = ledger().postings(customer_id, limit=100)
    owed, _ = receivable_by_invoice(found)
    stored = invoice(invoice_id)
    problems = [] if invoice_owed(stored) == owed.get(invoice_id, 0) else ["receivable_differs"]
    return problems + [p for p in [status_problem(stored)] if p]


def stripe_note(fake: FakeStripe, invoice_id: str) -> dict[str, int]:
    (note,) = [
        n for n in fake.credit_notes.values() if n["invoice"] == stripe_invoice_of(fake, invoice_id)["id"]
    ]
    return {k: int(note[k]) for k in ("amount", "pre_payment_amount", "credit_amount", "refund_amount")}


def test_a_payment_and_a_credit_note_end_the_same_in_either_order(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver, stored: Any
) -> None:
    acme, bolt = day0["acme"], day0["bolt"]
    before = {c: accounts(c) for c in ("acme", "bolt")}
    # GIVEN acme pays its invoice in Stripe, then is credited 300 (the note reaches Stripe after)
    deliver_and_work(deliver, pay_in_stripe(fake, acme))
    credit(acme, "a1")
    # AND bolt is credited 300 first, and pays in Stripe before the note reaches Stripe (Stripe asks 1000)
    credit(bolt, "b1")
    late = pay_in_stripe(fake, bolt)
    assert late["data"]["object"]["amount_paid"] == TOTAL
    deliver_and_work(deliver, late)
    # WHEN the credit notes' sync messages run
    assert sync_run() == set()

    # THEN bolt's payment is recorded, not parked
    assert stored(late["id"])["status"] == "processed", stored(late["id"])
    # AND both customers' books moved alike: the whole payment in cash, 300 in the customer's favour
    want = {"cash": TOTAL, "receivable": -TOTAL - CREDIT, "revenue": CREDIT}
    assert moved(before["acme"], accounts("acme")) == moved(before["bolt"], accounts("bolt"))
    assert {k: abs(v) for k, v in moved(before["bolt"], accounts("bolt")).items()} == {
        k: abs(v) for k, v in want.items()
    }
    # AND both invoices read the same: paid in full, the 300 given back as credit balance after payment
    expected = {"status": "paid", "amount_paid_minor": TOTAL, "credited_minor": CREDIT,
                "pre_payment_credited_minor": 0, "post_payment_credited_minor": CREDIT,
                "credited_balance_minor": CREDIT, "amount_remaining_minor": 0}  # fmt: skip
    assert invoice_state(acme) == invoice_state(bolt) == expected
    # AND both payments can give back 700 as a refund and 300 as the credit balance
    assert payment_records("acme", acme) == payment_records("bolt", bolt) == [(TOTAL, CREDIT, TOTAL - CREDIT)]
    # AND Stripe got the same credit note for both: 300 to the customer's balance, nothing before payment
    same = {"amount": CREDIT, "pre_payment_amount": 0, "credit_amount": CREDIT, "refund_amount": 0}
    assert stripe_note(fake, acme) == stripe_note(fake, bolt) == same
    # AND the ledger and the receivable check agree with the invoices
    for customer_id, invoice_id in (("acme", acme), ("bolt", bolt)):
        assert ledger().reconcile(customer_id) == []
        assert receivable_problems(customer_id, invoice_id) == []


def test_a_credit_note_synced_before_the_late_payment_is_recorded_gives_the_same_stripe_note(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver
) -> None:
    # GIVEN bolt credited 300 and paid 1000 in Stripe, the payment's event not processed yet
    bolt = day0["bolt"]
    credit(bolt, "b1")
    late = pay_in_stripe(fake, bolt)
    # WHEN the credit note's sync runs first, then the payment's event
    assert sync_run() == set()
    deliver_and_work(deliver, late)
    # THEN Stripe credits the customer's balance with 300 (its invoice was paid) and the books say so too
    assert stripe_note(fake, bolt) == {"amount": CREDIT, "pre_payment_amount": 0, "credit_amount": CREDIT,
                                       "refund_amount": 0}  # fmt: skip
    assert invoice_state(bolt)["credited_balance_minor"] == CREDIT
    assert receivable_problems("bolt", bolt) == []


def test_the_credit_balance_of_a_late_payment_is_paid_out_like_any_other(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver
) -> None:
    # GIVEN bolt credited 300, then paid 1000 in Stripe before the note reached Stripe
    bolt = day0["bolt"]
    credit(bolt, "b1")
    deliver_and_work(deliver, pay_in_stripe(fake, bolt))
    before = accounts("bolt")
    # WHEN an operator pays the 300 of credit balance back
    from functions.ledger_api.app import lambda_handler

    body = {"reason": "pay out", "amount_minor": CREDIT, "invoice_id": bolt, "credit_balance": True}
    path = "/admin/customers/bolt/refunds"
    request = api_event("POST", path, body=body, path_parameters={"customer_id": "bolt"},
                        headers={"Idempotency-Key": "p1"})  # fmt: skip
    status, answer = call(lambda_handler, request)[:2]
    assert status == 201, answer
    # THEN the balance in the customer's favour leaves as cash, and nothing is left to pay out
    assert {k: abs(v) for k, v in moved(before, accounts("bolt")).items()} == {
        "cash": CREDIT,
        "receivable": CREDIT,
    }
    assert invoice_state(bolt)["credited_balance_minor"] == 0
    assert payment_records("bolt", bolt) == [(TOTAL, 0, TOTAL - CREDIT)]
    assert receivable_problems("bolt", bolt) == []


def test_a_redelivered_or_repeated_late_payment_records_once(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver, stored: Any, admin: Any
) -> None:
    # GIVEN bolt credited 300 and its late payment of 1000 recorded
    bolt = day0["bolt"]
    credit(bolt, "b1")
    first = pay_in_stripe(fake, bolt)
    deliver_and_work(deliver, first)
    after_first = (accounts("bolt"), invoice_state(bolt), payment_records("bolt", bolt))
    charge = first["data"]["object"]["charge"]
    # WHEN the same event comes again, invoice.payment_succeeded reports the same charge, and an operator
    # replays the first event
    assert deliver(first)[0] == 200
    twin = paid_event(fake, bolt, charge, TOTAL, kind="invoice.payment_succeeded")
    deliver_and_work(deliver, twin)
    status, replayed = admin(
        "POST", f"/admin/stripe-events/{first['id']}/replay", body={"reason": "check", "ticket": "T-1"}
    )
    assert status == 200, replayed
    # THEN nothing more is recorded
    assert stored(twin["id"])["status"] == "processed"
    assert "already_applied" in stored(twin["id"])["outcome"]
    assert (accounts("bolt"), invoice_state(bolt), payment_records("bolt", bolt)) == after_first


def test_a_payment_above_the_invoice_total_still_parks(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver, stored: Any
) -> None:
    # GIVEN bolt credited 300 (it owes 700), its Stripe invoice asking 1000
    bolt = day0["bolt"]
    credit(bolt, "b1")
    before = (accounts("bolt"), invoice_state(bolt))
    # WHEN Stripe reports 1001 paid
    over = paid_event(fake, bolt, "ch_over", TOTAL + 1)
    deliver_and_work(deliver, over)
    # THEN it is parked as an overpayment naming the invoice's total, and nothing moved
    record = stored(over["id"])
    assert (record["status"], record["error"].split(":")[0]) == ("parked", "overpayment")
    assert str(TOTAL) in record["error"]
    assert (accounts("bolt"), invoice_state(bolt)) == before
    assert payment_records("bolt", bolt) == []


def test_partial_payments_around_a_credit_note_move_only_the_part_above_what_is_due(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver
) -> None:
    # GIVEN bolt credited 300 (it owes 700)
    bolt = day0["bolt"]
    credit(bolt, "b1")
    # WHEN Stripe reports 900 paid, then a second charge brings it to 1000
    deliver_and_work(deliver, paid_event(fake, bolt, "ch_a", 900))
    part = invoice_state(bolt)
    deliver_and_work(deliver, paid_event(fake, bolt, "ch_b", TOTAL))
    # THEN the first records 900 of which 200 became credit balance (700 was due), the second 100, all
    # of it credit balance: 1000 received, 300 in the customer's favour, as if paid before the note
    assert (part["status"], part["amount_paid_minor"], part["pre_payment_credited_minor"],
            part["credited_balance_minor"]) == ("paid", 900, 100, 200)  # fmt: skip
    assert sorted(payment_records("bolt", bolt)) == [(100, 100, 0), (900, 200, 700)]
    final = invoice_state(bolt)
    assert (
        final["amount_paid_minor"],
        final["pre_payment_credited_minor"],
        final["credited_balance_minor"],
    ) == (
        TOTAL,
        0,
        CREDIT,
    )
    assert receivable_problems("bolt", bolt) == []
    assert ledger().reconcile("bolt") == []


def test_a_credit_note_issued_while_the_payment_is_decided_makes_it_decide_again(
    day0: dict[str, str], fake: FakeStripe, deliver: Deliver, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN bolt's payment of 1000, decided on the invoice as read, and a credit note of 300 committing
    # after that decision and before the payment's write
    from neruba.logic.stripe import processing

    bolt = day0["bolt"]
    decide = processing.check_payment
    issued: list[dict[str, Any]] = []

    def decide_then_credit(*args: Any, **kwargs: Any) -> Any:
        plan = decide(*args, **kwargs)
        if not issued:
            issued.append(credit(bolt, "b-race"))
        return plan

    monkeypatch.setattr(processing, "check_payment", decide_then_credit)
    # WHEN the payment's event is processed
    late = pay_in_stripe(fake, bolt)
    deliver_and_work(deliver, late)
    # THEN the payment's write was cancelled and it was decided again on the credited invoice: recorded
    # whole, 300 as credit balance, exactly as payment-then-note or note-then-payment
    assert issued and stored(late["id"])["status"] == "processed"
    expected = {"status": "paid", "amount_paid_minor": TOTAL, "credited_minor": CREDIT,
                "pre_payment_credited_minor": 0, "post_payment_credited_minor": CREDIT,
                "credited_balance_minor": CREDIT, "amount_remaining_minor": 0}  # fmt: skip
    assert invoice_state(bolt) == expected
    assert payment_records("bolt", bolt) == [(TOTAL, CREDIT, TOTAL - CREDIT)]
    assert receivable_problems("bolt", bolt) == []
