"""Finalized invoices with chosen lines, payments and refunds against them, for the credit note tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.transaction import Transaction, commit
from neruba.logic import idempotency
from neruba.logic.billing.context import PostingRequest
from neruba.logic.billing.document import invoice_document
from neruba.logic.stripe.checks import PaymentPlan, amount_due, paid_level
from neruba.timefmt import ts
from tests.functional.billing.conftest import World

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def issue(world: World, lines: list[tuple[str, int, str | None]], name: str = "inv-1") -> str:
    """A finalized invoice of acme with ``lines`` (line id, amount, quantity), posted like any invoice."""
    from neruba.logic.billing.corrections import issue_now

    ctx = world.ctx
    invoice_id = "in_" + idempotency.digest(name, 24)
    at = ts(NOW)
    docs = [
        {"line_id": lid, "kind": "usage", "quantity": q, "amount_minor": amount, "description": f"line {lid}"}
        for lid, amount, q in lines
    ]
    doc = invoice_document(
        invoice_id=invoice_id, customer_id="acme", subscription_id=None, currency="USD", kind="one_off",
        seq=0, details={}, period=(at, at), lines=docs, applications=[], created_at=at, finalize_at=at,
    )  # fmt: skip
    subtotal = sum(amount for _, amount, _ in lines)
    request = PostingRequest("acme", invoice_id, "USD", subtotal, [], NOW)
    commit(Transaction([ctx.invoices.put_item(doc, NOW), *ctx.invoice_posting_items(request)]))
    issue_now(ctx, invoice_id, NOW)
    return invoice_id


def pay(world: World, invoice_id: str, amount: int, payment_id: str = "ch_1") -> None:
    """A payment of ``amount`` received on the invoice (as a Stripe payment event applies it)."""
    from neruba.logic.stripe.ledger_effects import LedgerEffects

    invoice = world.ctx.invoices.get(invoice_id)
    assert invoice is not None
    before = paid_level(invoice)
    due = amount_due(invoice)
    after = before + amount
    plan = PaymentPlan(
        amount, invoice.status, "paid" if after >= due else invoice.status, before, after, due - after
    )
    result = LedgerEffects(world.ctx.ledger, world.ctx.invoices).invoice_paid(
        invoice_id=invoice_id, customer_id="acme", currency="USD", amount_minor=amount,
        stripe_invoice_id="in_stripe", payment_id=payment_id, idempotency_key=f"stripe:payment:{payment_id}",
        at=NOW, plan=plan,
    )  # fmt: skip
    assert result.outcome == "applied", result


def refund(invoice_id: str, amount: int, key: str = "r-1", payment_id: str | None = None) -> dict[str, Any]:
    """An operator refund against the invoice (``POST /admin/customers/{id}/refunds``)."""
    from neruba.logic.ledger.admin import Operator, Stores
    from neruba.logic.ledger.admin import refund as refund_action
    from neruba.models.ledger import RefundCreate

    stores = Stores(
        bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
    )
    body = RefundCreate(amount_minor=amount, invoice_id=None if payment_id else invoice_id,
                        payment_id=payment_id, reason="refunded by hand")  # fmt: skip
    return refund_action(stores, Operator("key:test", None, key), "acme", body)
