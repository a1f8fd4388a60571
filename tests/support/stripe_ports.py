"""In-memory Stripe effects and invoice source for tests: a ledger recorder and an invoice store.

``MemoryLedger`` keeps postings keyed by idempotency key (a repeated key writes nothing) and refuses, like a
real ledger would, to refund or dispute more than was paid on an invoice: a refund processed before its
payment fails loudly instead of passing by accident.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neruba.logic.stripe.effects import DisputeResult, EffectConflictError, EffectResult


class LedgerRuleError(ValueError):
    """A posting the ledger refuses (e.g. a refund larger than the payments of the invoice)."""


@dataclass
class MemoryInvoices:
    """InvoiceSource + invoice status store, in memory."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_writes: int = 0

    def add(self, invoice: dict[str, Any]) -> dict[str, Any]:
        self.docs[invoice["id"]] = copy.deepcopy(invoice)
        return invoice

    def get(self, invoice_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(invoice_id)
        return copy.deepcopy(doc) if doc is not None else None

    def set_status(self, invoice_id: str, status: str, *, expected: str) -> None:
        doc = self.docs[invoice_id]
        if doc["status"] != expected:
            raise LedgerRuleError(f"invoice is {doc['status']}, expected {expected}")
        doc["status"] = status

    def set_sync(self, invoice_id: str, sync: dict[str, Any]) -> None:
        self.sync_writes += 1
        self.docs[invoice_id]["stripe"] = copy.deepcopy(sync)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.customers.get(customer_id))


@dataclass
class MemoryLedger:
    """StripeEffects on in-memory postings keyed by idempotency key, plus the invoice store."""

    invoices: MemoryInvoices
    postings: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _post(self, key: str, posting: dict[str, Any]) -> bool:
        with self._lock:
            if key in self.postings:
                return False
            self._check(posting)
            self.postings[key] = posting
            return True

    def _check(self, posting: dict[str, Any]) -> None:
        if posting["kind"] not in ("refund", "dispute_opened"):
            return
        paid = self.total(posting["invoice_id"], "payment")
        taken = self.total(posting["invoice_id"], "refund") + self.total(
            posting["invoice_id"], "dispute_opened"
        )
        if taken + posting["amount_minor"] > paid:
            raise LedgerRuleError(
                f"{posting['kind']} of {posting['amount_minor']} exceeds what was paid ({paid})"
            )

    def total(self, invoice_id: str, kind: str) -> int:
        return sum(
            p["amount_minor"]
            for p in self.postings.values()
            if p["invoice_id"] == invoice_id and p["kind"] == kind
        )

    def kinds(self) -> list[str]:
        return sorted(p["kind"] for p in self.postings.values())

    def _move(self, invoice_id: str, to: str, allowed: tuple[str, ...]) -> str:
        doc = self.invoices.docs.get(invoice_id)
        if doc is None:
            raise LedgerRuleError(f"no invoice {invoice_id}")
        if doc["status"] == to:
            return "already"
        if doc["status"] not in allowed:
            return "kept"
        self.invoices.set_status(invoice_id, to, expected=doc["status"])
        return "moved"

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        return self.invoices.get(invoice_id)

    def invoice_paid(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        amount_minor: int,
        stripe_invoice_id: str,
        payment_id: str,
        idempotency_key: str,
        at: datetime,
        plan: Any,
    ) -> EffectResult:
        with self._lock:
            doc = self.invoices.docs[invoice_id]
            paid = doc.get("amount_paid_minor", 0)
            if (doc["status"], paid) != (plan.status_before, plan.paid_before):
                raise EffectConflictError(f"invoice {invoice_id} changed meanwhile")
        new = amount_minor > 0 and self._post(
            idempotency_key,
            {
                "kind": "payment",
                "invoice_id": invoice_id,
                "customer_id": customer_id,
                "currency": currency,
                "amount_minor": amount_minor,
            },
        )
        if amount_minor > 0 and not new:
            return EffectResult("already_applied", "payment already posted")
        doc.update(status=plan.status_after, amount_paid_minor=plan.paid_after)
        doc["amount_remaining_minor"] = plan.remaining_minor
        return EffectResult("applied" if plan.changes else "already_applied", f"invoice {doc['status']}")

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
        moved = self._move(invoice_id, "payment_failed", ("finalized",))
        return EffectResult("applied" if moved == "moved" else "skipped", f"invoice {moved}")

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
        refunded_total_minor: int | None = None,
    ) -> EffectResult:
        new = self._post(
            idempotency_key,
            {
                "kind": "refund",
                "invoice_id": invoice_id,
                "customer_id": customer_id,
                "currency": currency,
                "amount_minor": amount_minor,
            },
        )
        return EffectResult("applied" if new else "already_applied")

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
        new = self._post(
            idempotency_key,
            {
                "kind": "dispute_opened",
                "invoice_id": invoice_id,
                "customer_id": customer_id,
                "currency": currency,
                "amount_minor": amount_minor,
            },
        )
        return EffectResult("applied" if new else "already_applied")

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
        new = self._post(
            idempotency_key,
            {
                "kind": f"dispute_{result}",
                "invoice_id": invoice_id,
                "customer_id": customer_id,
                "currency": currency,
                "amount_minor": amount_minor,
            },
        )
        return EffectResult("applied" if new else "already_applied")
