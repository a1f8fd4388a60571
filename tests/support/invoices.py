"""Invoices written through the real repositories, for the Stripe tests that start from one stored invoice.

:func:`store_invoice` writes a document the way billing does: the draft and (optionally) its ledger
posting in one transaction, then the finalization that gives it the next number, then the Stripe sync
record. :class:`Books` reads back what Stripe processing wrote: the ledger's postings of source
``stripe`` and the invoice's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.catalog import CatalogRepository
from neruba.dal.invoices import Invoice, InvoicesRepository
from neruba.dal.ledger import LedgerRepository
from neruba.dal.transaction import Transaction
from neruba.logic.ledger.postings import invoice_posting
from neruba.models.catalog import Customer
from neruba.settings import get_settings
from neruba.timefmt import ts


def invoices() -> InvoicesRepository:
    return InvoicesRepository(get_settings().billing_table)


def add_customer(external_id: str = "acme", name: str = "Acme", email: str | None = None) -> None:
    CatalogRepository(get_settings().catalog_table).create_customer(
        Customer(external_id=external_id, name=name, email=email, currency="USD")
    )


def store_invoice(doc: dict[str, Any], *, finalize: bool = True, post: bool = True) -> Invoice:
    """Store ``doc`` (``id``, ``customer_id``, ``currency``, ``total_minor``, optional ``lines`` and
    ``stripe``) as a draft, finalize it unless ``finalize`` is false, and return it as read back.

    ``post`` writes the invoice's ledger posting (revenue against receivable, no credits) with the draft.
    """
    now = datetime.now(UTC)
    repo = invoices()
    stripe = doc.get("stripe")
    draft = {
        "period_start": ts(now),
        "period_end": ts(now),
        "subtotal_minor": doc["total_minor"],
        "credits_applied_minor": 0,
        "lines": [],
        **{k: v for k, v in doc.items() if k not in ("stripe", "number")},
        "status": "draft",
        "rev": 0,
    }
    unit = Transaction([repo.put_item(draft, now)])
    if post:
        posting = invoice_posting(doc["customer_id"], doc["id"], doc["currency"], doc["total_minor"], [], now)
        unit.extend(LedgerRepository(get_settings().ledger_table).posting_items(posting))
    unit.commit()
    if finalize:
        stored = repo.get(doc["id"])
        assert stored is not None
        Transaction(repo.finalize_items(stored, now)).commit()
    if stripe is not None:
        repo.set_sync(doc["id"], stripe)
    found = repo.get(doc["id"])
    assert found is not None
    return found


@dataclass
class Books:
    """What Stripe processing wrote for one customer: its postings and the invoice's status."""

    invoice_id: str = "in_ours_1"
    customer_id: str = "acme"

    @property
    def postings(self) -> dict[str, dict[str, Any]]:
        """The postings of source ``stripe`` by idempotency key: kind (the posting's reason), invoice,
        customer, currency and amount."""
        found, cursor = LedgerRepository(get_settings().ledger_table).postings(self.customer_id, 100)
        assert cursor is None
        return {
            p.idempotency_key: {
                "kind": p.reason,
                "invoice_id": p.metadata.get("invoice_id"),
                "customer_id": p.customer_id,
                "currency": p.currency,
                "amount_minor": p.total_minor,
            }
            for p in found
            if p.source == "stripe"
        }

    def total(self, invoice_id: str, kind: str) -> int:
        return sum(
            p["amount_minor"]
            for p in self.postings.values()
            if p["invoice_id"] == invoice_id and p["kind"] == kind
        )

    def kinds(self) -> list[str]:
        return sorted(p["kind"] for p in self.postings.values())

    def status(self, invoice_id: str | None = None) -> str:
        found = invoices().get(invoice_id or self.invoice_id)
        assert found is not None
        return found.status
