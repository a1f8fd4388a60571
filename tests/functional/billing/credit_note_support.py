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


def rate(rate_id: str, percentage: str, inclusive: bool = False) -> dict[str, Any]:
    """A tax rate snapshot as an invoice stores it (``logic.billing.discounts.rates_for``)."""
    return {"id": rate_id, "display_name": f"tax {percentage}%", "percentage": percentage,
            "inclusive": inclusive, "country": None, "state": None, "plan_code": None}  # fmt: skip


def percent_off(discount_id: str, percent: str) -> dict[str, Any]:
    """A percentage discount snapshot as an invoice stores it (``logic.billing.discounts.discounts_for``)."""
    coupon = {"id": "co_" + discount_id, "percent_off": percent, "duration": "forever", "name": "promo"}
    return {"discount_id": discount_id, "coupon_id": coupon["id"], "coupon": coupon, "target": "customer",
            "plan_code": None, "plan_version": None, "period": 1, "periods": None}  # fmt: skip


def issue(
    world: World,
    lines: list[tuple[str, int, str | None]],
    name: str = "inv-1",
    rates: list[dict[str, Any]] | None = None,
    discounts: list[dict[str, Any]] | None = None,
    kind: str = "one_off",
) -> str:
    """A finalized invoice of acme (of ``kind``) with ``lines`` (line id, amount, quantity), discounted and
    taxed by the snapshots given (as billing prices a window), posted like any invoice."""
    from neruba.logic.billing.corrections import issue_now
    from neruba.logic.billing.discounts import price_lines

    ctx = world.ctx
    invoice_id = "in_" + idempotency.digest(name, 24)
    at = ts(NOW)
    docs = [
        {"line_id": lid, "kind": "usage", "quantity": q, "amount_minor": amount, "description": f"line {lid}"}
        for lid, amount, q in lines
    ]
    docs = price_lines(docs, discounts or [], rates or [], "USD", (at, at))
    details = {"discounts": discounts or [], "tax_rates": rates or []} if rates or discounts else {}
    doc = invoice_document(
        invoice_id=invoice_id, customer_id="acme", subscription_id=None, currency="USD", kind=kind,
        seq=0, details=details, period=(at, at), lines=docs, applications=[], created_at=at, finalize_at=at,
    )  # fmt: skip
    request = PostingRequest("acme", invoice_id, "USD", doc["subtotal_minor"], [], NOW,
                             tax_minor=int(doc.get("tax_minor") or 0),
                             tax_included_minor=int(doc.get("tax_included_minor") or 0))  # fmt: skip
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
        amount, invoice.status, "paid" if after >= due else invoice.status, before, after, due - after,
        cn_rev=int(invoice.document.get("cn_rev") or 0),  # the credit notes read, as the Stripe checks do
    )  # fmt: skip
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
