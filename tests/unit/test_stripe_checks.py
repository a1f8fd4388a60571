"""The payment rules on their own: any order of payment events books exactly the largest running total
reported (never more than due), and the invoice is paid exactly when nothing remains."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from neruba.dal.invoices import Invoice, invoice_record
from neruba.logic.stripe.checks import Park, PaymentClaim, PaymentPlan, check_payment


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
