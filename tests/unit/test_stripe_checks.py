"""The payment rules on their own: any order of payment events books exactly the largest running total
reported (never more than due), and the invoice is paid exactly when nothing remains."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from neruba.dal.invoices import Invoice, invoice_record
from neruba.logic.stripe.checks import CREDIT_FIELDS, Park, PaymentClaim, PaymentPlan, check_payment


def invoice(total: int, **extra: Any) -> Invoice:
    return invoice_record(
        {
            "id": "in_1",
            "customer_id": "acme",
            "currency": "USD",
            "status": "finalized",
            "total_minor": total,
            "stripe": {"invoice_id": "in_S1", "customer_id": "cus_1"},
            **extra,
        }
    )


def claim(paid: int, total: int | None = None, **changes: Any) -> PaymentClaim:
    values = {
        "customer_id": "acme",
        "currency": "USD",
        "stripe_invoice_id": "in_S1",
        "stripe_customer_id": "cus_1",
        "amount_paid_minor": paid,
        "stripe_total_minor": total,
        **changes,
    }
    return PaymentClaim(**values)


@given(
    st.integers(1, 10_000).flatmap(lambda t: st.tuples(st.just(t), st.lists(st.integers(0, t), max_size=8)))
)
def test_any_order_of_running_totals_books_the_largest_once(case: tuple[int, list[int]]) -> None:
    total, reported = case
    doc = invoice(total)
    booked = 0
    for paid in reported:
        plan = check_payment(doc, claim(paid, total))
        assert isinstance(plan, PaymentPlan)
        booked += plan.post_minor
        doc = replace(doc, status=plan.status_after, amount_paid_minor=plan.paid_after)
        assert plan.remaining_minor == total - plan.paid_after >= 0
    expected = max(reported, default=0)
    assert booked == expected == (doc.amount_paid_minor or 0)
    assert (doc.status == "paid") == (expected == total)


def test_each_disagreement_is_parked_with_its_code() -> None:
    cases = [
        (None, claim(10), "invoice_not_found"),
        (invoice(100), claim(10, customer_id="bolt"), "customer_mismatch"),
        (invoice(100), claim(10, currency="EUR"), "currency_mismatch"),
        (invoice(100), claim(10, stripe_invoice_id="in_S2"), "stripe_invoice_mismatch"),
        (invoice(100, stripe=None), claim(10), "stripe_invoice_mismatch"),
        (invoice(100), claim(10, stripe_customer_id="cus_2"), "stripe_customer_mismatch"),
        (invoice(100), claim(10, 120), "amount_mismatch"),
        (invoice(100, status="void"), claim(10), "invoice_not_payable"),
        (invoice(100, status="draft"), claim(10), "invoice_not_payable"),
        (invoice(100), claim(101), "overpayment"),
        (invoice(100, status="paid"), claim(150), "overpayment"),
    ]
    for doc, event, code in cases:
        verdict = check_payment(doc, event, "in_1")
        assert isinstance(verdict, Park) and verdict.code == code, (code, verdict)


def test_a_paid_invoice_from_before_the_paid_total_counts_as_fully_paid() -> None:
    plan = check_payment(invoice(100, status="paid"), claim(100, 100))
    assert isinstance(plan, PaymentPlan) and not plan.changes and plan.post_minor == 0


@given(
    st.integers(1, 10_000).flatmap(
        lambda t: st.tuples(st.just(t), st.integers(0, t), st.lists(st.integers(0, t), max_size=6))
    )
)
def test_payments_after_a_credit_note_end_as_if_paid_before_it(case: tuple[int, int, list[int]]) -> None:
    # GIVEN an invoice of `total` a credit note took `credited` off before any payment (Stripe still asks
    # the total), then Stripe reports running totals in any order
    total, credited, reported = case
    doc = invoice(
        total, pre_payment_credited_minor=credited, status="paid" if credited == total else "finalized"
    )
    booked = to_balance = 0
    for paid in reported:
        plan = check_payment(doc, claim(paid, total))
        assert isinstance(plan, PaymentPlan)
        booked += plan.post_minor
        to_balance += plan.to_balance_minor
        assert 0 <= plan.to_balance_minor <= plan.post_minor
        fields = dict(zip(CREDIT_FIELDS, plan.credits_after or (), strict=False))
        moved = {"status": plan.status_after, "amount_paid_minor": plan.paid_after,
                 "amount_remaining_minor": plan.remaining_minor}  # fmt: skip
        doc = invoice_record({**doc.document, **fields, **moved})
    # THEN it ends as payment-then-credit-note would: the largest total booked once, the note's part
    # before payment only what that payment left due, the rest the customer's credit balance
    paid = max(reported, default=0)
    before_payment = min(credited, total - paid)
    assert booked == paid
    assert to_balance == credited - before_payment
    got = doc.document
    assert (got.get("pre_payment_credited_minor"), int(got.get("credited_balance_minor") or 0)) == (
        before_payment,
        credited - before_payment,
    )
    assert (doc.status == "paid") == (paid + credited >= total)
    if reported:
        assert got["amount_remaining_minor"] == max(total - credited - paid, 0)


def test_a_payment_above_the_total_parks_even_after_a_credit_note() -> None:
    doc = invoice(1000, pre_payment_credited_minor=300)
    assert isinstance(check_payment(doc, claim(1000, 1000)), PaymentPlan)
    verdict = check_payment(doc, claim(1001, 1000))
    assert isinstance(verdict, Park) and verdict.code == "overpayment"
    assert "whose total is 1000 (700 due after credit notes)" in verdict.message
