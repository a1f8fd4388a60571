"""Default implementations of the Stripe ports, on the ledger and invoice modules (by contract name).

The modules are imported with ``importlib`` when first used, so this file loads (and type-checks) even
where they are not present yet; the keyword names passed are those of the contracts in the project brief:

* ``neruba.logic.ledger.record_payment / record_refund / record_dispute(..., idempotency_key, source,
  actor)``
* ``neruba.dal.invoices.InvoicesRepository(table_name)`` with ``get``, ``set_status(invoice_id, status, *,
  expected)`` and ``set_sync(invoice_id, sync)``
* ``neruba.dal.catalog.CatalogRepository(table_name).get_customer(external_id)``
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from neruba.logic.stripe_ports import DisputeResult, EffectResult
from neruba.settings import get_settings

SOURCE = "stripe"
ACTOR = "stripe:webhook"
PAYABLE = ("finalized", "payment_failed")


def _ledger() -> Any:
    return importlib.import_module("neruba.logic.ledger")


def _invoices_repository() -> Any:
    module = importlib.import_module("neruba.dal.invoices")
    return module.InvoicesRepository(get_settings().billing_table)


def _move_invoice(invoice_id: str, to: str, allowed_from: tuple[str, ...]) -> EffectResult:
    repo = _invoices_repository()
    invoice = repo.get(invoice_id)
    if invoice is None:
        return EffectResult("skipped", f"invoice {invoice_id} not found")
    current = invoice.get("status")
    if current == to:
        return EffectResult("already_applied", f"invoice already {to}")
    if current not in allowed_from:
        return EffectResult("skipped", f"invoice is {current}, not moved to {to}")
    repo.set_status(invoice_id, to, expected=current)
    return EffectResult("applied", f"invoice {current} -> {to}")


class LedgerEffects:
    """``StripeEffects`` on the real ledger and invoices (postings keyed by ``idempotency_key``)."""

    def invoice_paid(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        stripe_invoice_id: str,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        _ledger().record_payment(
            customer_id=customer_id,
            invoice_id=invoice_id,
            currency=currency,
            amount_minor=amount_minor,
            at=at,
            idempotency_key=idempotency_key,
            source=SOURCE,
            actor=ACTOR,
        )
        moved = _move_invoice(invoice_id, "paid", PAYABLE)
        return EffectResult("applied", f"payment posted; {moved.detail}")

    def invoice_payment_failed(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        stripe_invoice_id: str,
        reason: str,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        return _move_invoice(invoice_id, "payment_failed", ("finalized",))

    def charge_refunded(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        charge_id: str,
        refund_id: str | None,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        _ledger().record_refund(
            customer_id=customer_id,
            invoice_id=invoice_id,
            currency=currency,
            amount_minor=amount_minor,
            at=at,
            idempotency_key=idempotency_key,
            source=SOURCE,
            actor=ACTOR,
        )
        return EffectResult("applied", "refund posted")

    def dispute_created(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        dispute_id: str,
        charge_id: str,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        return self._dispute(invoice_id, customer_id, currency, amount_minor, "opened", idempotency_key, at)

    def dispute_closed(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        dispute_id: str,
        charge_id: str,
        result: DisputeResult,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        return self._dispute(invoice_id, customer_id, currency, amount_minor, result, idempotency_key, at)

    @staticmethod
    def _dispute(
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        stage: str,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        _ledger().record_dispute(
            customer_id=customer_id,
            invoice_id=invoice_id,
            currency=currency,
            amount_minor=amount_minor,
            stage=stage,
            at=at,
            idempotency_key=idempotency_key,
            source=SOURCE,
            actor=ACTOR,
        )
        return EffectResult("applied", f"dispute {stage} posted")


class RepositoryInvoiceSource:
    """``InvoiceSource`` on ``InvoicesRepository`` (BillingTable) and the catalog (CatalogTable)."""

    def __init__(self) -> None:
        self._repo = _invoices_repository()

    def get(self, invoice_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._repo.get(invoice_id)
        return found

    def set_sync(self, invoice_id: str, sync: dict[str, Any]) -> None:
        self._repo.set_sync(invoice_id, sync)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        from neruba.dal.catalog import CatalogRepository

        found = CatalogRepository(get_settings().catalog_table).get_customer(customer_id)
        if found is None:
            return None
        return found.model_dump(mode="json")
