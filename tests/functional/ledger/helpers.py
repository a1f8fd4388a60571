"""Invoices and payments for ledger tests: an invoice document in a given status, and an invoice paid
the way Stripe's invoice.paid posts it."""

from __future__ import annotations

from datetime import UTC, datetime

from neruba.settings import get_settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def invoice(invoice_id: str, status: str, *, customer: str = "acme", total: int = 1000) -> None:
    """An invoice document in the billing table, in ``status``."""
    from neruba.dal.invoices import InvoicesRepository

    repo = InvoicesRepository(get_settings().billing_table)
    doc = {
        "id": invoice_id,
        "customer_id": customer,
        "currency": "USD",
        "status": "draft",
        "rev": 0,
        "period_start": "2026-02-01T00:00:00Z",
        "period_end": "2026-03-01T00:00:00Z",
        "finalize_at": "2026-03-01T01:00:00Z",
        "total_minor": total,
    }
    repo.transact([repo.put_item(doc, T0)])
    if status != "draft":
        repo.set_status(invoice_id, status, expected="draft")


def paid(invoice_id: str, amount: int, *, customer: str = "acme", currency: str = "USD") -> str:
    """An invoice paid by charge ``ch_{invoice_id}`` (the payment posted as Stripe's invoice.paid does)."""
    from neruba.dal.ledger import LedgerRepository
    from neruba.logic.ledger.postings import record_payment

    invoice(invoice_id, "paid", customer=customer, total=amount)
    record_payment(
        LedgerRepository(get_settings().ledger_table),
        customer_id=customer,
        currency=currency,
        amount_minor=amount,
        payment_id=f"ch_{invoice_id}",
        invoice_id=invoice_id,
        idempotency_key=f"stripe:payment:ch_{invoice_id}",
        source="stripe",
        actor="stripe:webhook",
        at=T0,
    )
    return f"ch_{invoice_id}"
