"""Property: any sequence of payments, refunds and credit notes (whole or by line, by amount or quantity,
any split of the paid part) leaves the ledger balanced and each invoice's receivable as it says, and
never takes back more than the invoice: credit notes plus refunds stay within its total, each line's
credit within the line, and what is given back within what was paid."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neruba.errors import ConflictError, InvalidRequestError
from neruba.models.billing import CreditNoteCreate
from tests.functional.billing.conftest import World, ledger
from tests.functional.billing.credit_note_support import issue, pay, percent_off, rate, refund
from tests.support.deep import size

LINES = [("a", 1000, "3"), ("b", 700, "7"), ("c", 1, "1")]
COUNTER = itertools.count()

line_request = st.one_of(
    st.builds(lambda i, a: {"line_id": "abc"[i], "amount_minor": a}, st.integers(0, 2), st.integers(1, 1100)),
    st.builds(lambda i, q: {"line_id": "abc"[i], "quantity": str(q)}, st.integers(0, 2), st.integers(1, 4)),
)
note = st.builds(
    lambda lines, how: {"lines": lines, "how": how},
    st.one_of(st.none(), st.lists(line_request, min_size=1, max_size=2, unique_by=lambda r: r["line_id"])),
    st.sampled_from(["credit", "refund", "out_of_band", "half"]),
)
step = st.one_of(
    st.tuples(st.just("pay"), st.integers(1, 1701)),
    st.tuples(st.just("refund"), st.integers(1, 1701)),
    st.tuples(st.just("note"), note),
)


def _note_body(invoice: Any, spec: dict[str, Any]) -> CreditNoteCreate:
    """The request; the paid part is split as ``how`` says (all credit, all refund, all out of band, or
    half refund and half credit), from what the credit note would take as the invoice stands."""
    from neruba.logic.billing.credit_notes import _decide

    body: dict[str, Any] = {"reason": "property", "lines": spec["lines"]}
    if spec["how"] == "credit":
        return CreditNoteCreate.model_validate(body)
    payments = ledger().payments.for_invoice("acme", invoice.id)
    _, split = _decide(invoice, payments, CreditNoteCreate.model_validate(body))
    post = split.post_payment
    if spec["how"] == "half":
        body.update(refund_amount_minor=post // 2, credit_amount_minor=post - post // 2)
    else:
        body[f"{spec['how']}_amount_minor"] = post
    return CreditNoteCreate.model_validate(body)


def _given_back(invoice_id: str) -> tuple[int, int]:
    """(paid, taken back) over the invoice's payment records."""
    records = ledger().payments.for_invoice("acme", invoice_id)
    paid = sum(r.paid_minor for r in records)
    return paid, sum(r.paid_minor - r.refundable_minor for r in records)


def _check(world: World, invoice_id: str) -> None:
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice

    assert ledger().reconcile("acme") == []
    postings, _ = ledger().postings("acme", 1000)
    owed, _ = receivable_by_invoice(postings)
    invoice = world.ctx.invoices.get(invoice_id)
    assert invoice is not None
    assert owed.get(invoice_id, 0) == invoice_owed(invoice)
    doc = invoice.document
    credited = int(doc.get("credited_minor") or 0)
    paid, taken_back = _given_back(invoice_id)
    refunded_alone = sum(r.refunded_minor for r in ledger().payments.for_invoice("acme", invoice_id)) - sum(
        int(n["refund_amount_minor"])
        for n in (world.ctx.billing.credit_notes.get(str(c["id"])) for c in doc.get("credit_notes") or [])
        if n
    )
    assert credited + refunded_alone <= invoice.total_minor
    assert taken_back <= paid
    assert int(doc.get("pre_payment_credited_minor") or 0) + paid <= invoice.total_minor
    for line in invoice.lines:
        was = (doc.get("line_credits") or {}).get(line.line_id) or {}
        taken = int(was.get("amount_minor", 0))
        assert 0 <= taken <= max(line.amount_minor, 0)  # a discount line (negative) is never credited
        tax = {
            r["tax_rate_id"]: int(r["amount_minor"])
            for r in (line.document.get("tax") or {}).get("rates") or []
        }
        back = {k: int(v) for k, v in (was.get("tax") or {}).items()}
        for rate_id, amount in back.items():
            assert 0 <= amount <= tax[rate_id]  # never more of a rate than the line holds
        after = (line.document.get("tax") or {}).get("amount_after_discounts_minor")
        if after is not None and taken == after:  # wholly credited: exactly its tax, no cent more or less
            assert {k: v for k, v in back.items() if v} == {k: v for k, v in tax.items() if v}
    notes = [world.ctx.billing.credit_notes.get(str(c["id"])) for c in doc.get("credit_notes") or []]
    assert sum(int(n["amount_minor"]) for n in notes if n) == credited
    given_tax = sum(int(n.get("tax_minor") or 0) + int(n.get("tax_included_minor") or 0) for n in notes if n)
    assert given_tax <= int(doc.get("tax_minor") or 0) + int(doc.get("tax_included_minor") or 0)


@pytest.mark.scaled
@settings(
    max_examples=size(10, 60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_any_sequence_keeps_the_books_and_never_over_credits(world: World, steps: list[Any]) -> None:
    from neruba.logic.billing.credit_notes import create_credit_note

    n = next(COUNTER)
    invoice_id = issue(world, LINES, name=f"prop-{n}")
    for k, (kind, arg) in enumerate(steps):
        key = f"p{n}-{k}"
        invoice = world.ctx.invoices.get(invoice_id)
        assert invoice is not None
        try:
            if kind == "pay":
                remaining = int(invoice.document.get("amount_remaining_minor", invoice.total_minor))
                if remaining > 0:
                    pay(world, invoice_id, min(arg, remaining), payment_id=f"ch_{key}")
            elif kind == "refund":
                _refund_any(invoice_id, arg, key)
            else:
                create_credit_note(world.ctx, invoice_id, _note_body(invoice, arg), "key:p", key)
        except (ConflictError, InvalidRequestError):
            pass  # refused as a whole: the checks below still hold
        _check(world, invoice_id)


RATES = [rate("txr_ex", "7.5"), rate("txr_in", "10", inclusive=True)]


@pytest.mark.scaled
@settings(
    max_examples=size(5, 30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_any_sequence_on_a_taxed_discounted_invoice_keeps_the_books_and_the_tax(
    world: World, steps: list[Any]
) -> None:
    from neruba.logic.billing.credit_notes import create_credit_note

    n = next(COUNTER)
    invoice_id = issue(world, LINES, name=f"prop-tax-{n}", rates=RATES, discounts=[percent_off("di_p", "15")])
    for k, (kind, arg) in enumerate(steps):
        key = f"pt{n}-{k}"
        invoice = world.ctx.invoices.get(invoice_id)
        assert invoice is not None
        try:
            if kind == "pay":
                remaining = int(invoice.document.get("amount_remaining_minor", invoice.total_minor))
                if remaining > 0:
                    pay(world, invoice_id, min(arg, remaining), payment_id=f"ch_{key}")
            elif kind == "refund":
                _refund_any(invoice_id, arg, key)
            else:
                create_credit_note(world.ctx, invoice_id, _note_body(invoice, arg), "key:p", key)
        except (ConflictError, InvalidRequestError):
            pass
        _check(world, invoice_id)
    # whatever happened, a whole-invoice note then takes everything still creditable, tax included
    invoice = world.ctx.invoices.get(invoice_id)
    assert invoice is not None
    with contextlib.suppress(ConflictError):  # nothing left
        create_credit_note(world.ctx, invoice_id, _note_body(invoice, {"lines": None, "how": "credit"}),
                           "key:p", f"pt{n}-last")  # fmt: skip
    _check(world, invoice_id)


def _refund_any(invoice_id: str, amount: int, key: str) -> None:
    """A refund against the first payment of the invoice that has something refundable."""
    for record in ledger().payments.for_invoice("acme", invoice_id):
        if record.refundable_minor > 0:
            refund(invoice_id, min(amount, record.refundable_minor), key=key, payment_id=record.payment_id)
            return
