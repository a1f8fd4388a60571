"""The Stripe effects and invoice source on the real ledger, invoices and catalog.

* ``LedgerEffects`` posts through ``neruba.logic.ledger.postings`` (``record_payment``, ``record_refund``,
  ``record_dispute``) into the ledger table and moves invoices through
  ``neruba.dal.invoices.InvoicesRepository.transition`` (allowed moves only, conditional on the status read).
* ``RepositoryInvoiceSource`` reads invoices from the billing table, customers from the catalog, and stores
  the sync record with ``InvoicesRepository.set_sync``.

Postings are keyed by the Stripe object they book, never by the event that carried it, so a replay, a
redelivery or two events describing the same object post once (see docs/stripe.md).

Example::

    effects = bootstrap.stripe_effects()   # LedgerEffects(ledger, invoices)
    invoice = effects.invoice("in_1")
    plan = stripe_checks.check_payment(invoice, claim)       # a PaymentPlan, or a Park (nothing applied)
    effects.invoice_paid(invoice_id="in_1", customer_id="acme", currency="USD", amount_minor=plan.post_minor,
                         stripe_invoice_id="in_S1", payment_id="ch_1",
                         idempotency_key="stripe:payment:ch_1", at=now, plan=plan)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.billing import TransactionCancelledError
from neruba.dal.catalog import CatalogRepository
from neruba.dal.invoices import Invoice, InvoiceConflictError, InvoicesRepository, can_transition
from neruba.dal.ledger import LedgerConflictError, LedgerRepository
from neruba.dal.stripe_events import RefundLevels
from neruba.domain.payments import PaymentRecord
from neruba.logic.billing.document import invoice_event
from neruba.logic.ledger import postings as ledger
from neruba.logic.ledger.payments import PaymentTargetError, resolve_payment
from neruba.logic.stripe.checks import CREDIT_FIELDS
from neruba.logic.stripe.effects import DisputeResult, EffectConflictError, EffectRefusedError, EffectResult

if TYPE_CHECKING:
    from neruba.logic.stripe.checks import PaymentPlan
    from neruba.logic.stripe.stripe_tax import StripeTax
from neruba.settings import get_settings
from neruba.timefmt import iso

SOURCE = "stripe"
"""Postings that take money back from an invoice's payments (+) or return it (-)."""
ACTOR = "stripe:webhook"


def _move_invoice(repo: InvoicesRepository, invoice_id: str, to: str, now: datetime) -> EffectResult:
    """Move the invoice to ``to`` if the transition table allows it from its current status (a move to
    ``payment_failed`` writes its ``invoice.payment_failed`` webhook event in the same transaction).

    The write is conditional on the status read; if it changed meanwhile the move is decided again on the
    new status (twice at most: after one concurrent change the status is final for these moves).
    """
    for _ in range(3):
        invoice = repo.get(invoice_id)
        if invoice is None:
            return EffectResult("skipped", f"invoice {invoice_id} not found")
        current = invoice.status
        if current == to:
            return EffectResult("already_applied", f"invoice already {to}")
        if not can_transition(current, to):
            return EffectResult("skipped", f"invoice is {current}, not moved to {to}")
        extra = (
            [invoice_event(f"invoice.{to}", {**invoice.document, "status": to}, now)]
            if to == "payment_failed"
            else []
        )
        try:
            repo.transition(invoice_id, to, expected=current, extra=extra)
        except InvoiceConflictError:
            continue
        return EffectResult("applied", f"invoice {current} -> {to}")
    raise InvoiceConflictError(f"invoice {invoice_id!r} keeps changing")


class LedgerEffects:
    """``StripeEffects`` on the real ledger and invoices (postings keyed by ``idempotency_key``)."""

    def __init__(self, ledger_repo: LedgerRepository, invoices: InvoicesRepository) -> None:
        self.ledger = ledger_repo
        self.invoices = invoices
        self.refund_levels = RefundLevels(get_settings().ops_table)

    def _seen(self, customer_id: str, idempotency_key: str) -> bool:
        return self.ledger.stored_posting(customer_id, idempotency_key) is not None

    def _payment(
        self,
        action: str,
        *,
        customer_id: str,
        currency: str,
        amount_minor: int,
        charge_id: str,
        invoice_id: str,
    ) -> PaymentRecord:
        """The payment a Stripe refund or dispute takes back from: the charge's, else the invoice's (a
        payment recorded by payment intent). Beyond what it still has refundable, or of no payment we
        received: EffectRefusedError (the event is parked for an operator, nothing is posted)."""
        payments = self.ledger.payments
        by_charge = payments.get(customer_id, charge_id) is not None
        try:
            return resolve_payment(
                payments,
                customer_id=customer_id,
                currency=currency,
                amount_minor=amount_minor,
                action="refund" if action == "refund" else "dispute",
                payment_id=charge_id if by_charge else None,
                invoice_id=None if by_charge else invoice_id,
            )
        except PaymentTargetError as exc:
            raise EffectRefusedError(f"{exc.code}: Stripe {action} of {amount_minor}: {exc.message}") from exc

    def _refusing_races(self, action: str, write: Any, **target: Any) -> None:
        """Write; when its conditional write lost a race, decide again on what is left now."""
        try:
            write(self._payment(action, **target))
        except LedgerConflictError:
            self._payment(action, **target)  # raises EffectRefusedError when too little is left now
            raise

    def invoice(self, invoice_id: str) -> Invoice | None:
        return self.invoices.get(invoice_id)

    def stripe_tax(
        self,
        *,
        invoice_id: str,
        customer_id: str,
        currency: str,
        tax: StripeTax,
        stripe_invoice_id: str,
        event_id: str,
        idempotency_key: str,
        at: datetime,
    ) -> EffectResult:
        for _ in range(3):  # decided on the invoice read; again if it changed before the write
            invoice = self.invoices.get(invoice_id)
            if invoice is None:
                return EffectResult("skipped", f"invoice {invoice_id} not found")
            recorded = invoice.document.get("stripe_tax")
            if isinstance(recorded, dict):
                if (recorded.get("exclusive_minor"), recorded.get("inclusive_minor")) == (
                    tax.exclusive_minor,
                    tax.inclusive_minor,
                ):
                    return EffectResult("already_applied", f"Stripe tax {tax.total_minor} already recorded")
                raise EffectRefusedError(
                    f"stripe_tax_changed: Stripe reports tax {tax.to_dict()}; {recorded} was recorded"
                )
            if invoice.status not in ("finalized", "paid", "payment_failed"):
                return EffectResult("skipped", f"invoice is {invoice.status}; no tax recorded")
            record = {**tax.to_dict(), "stripe_invoice_id": stripe_invoice_id, "event_id": event_id,
                      "recorded_at": iso(at)}  # fmt: skip
            item = self.invoices.stripe_tax_item(invoice, record, tax.exclusive_minor, tax.inclusive_minor)
            doc = invoice.document
            amended = {
                **doc, "tax_minor": int(doc.get("tax_minor") or 0) + tax.exclusive_minor,
                "tax_included_minor": int(doc.get("tax_included_minor") or 0) + tax.inclusive_minor,
                "total_minor": invoice.total_minor + tax.exclusive_minor,
            }  # fmt: skip
            before = {"subtotal_minor": invoice.subtotal_minor, "total_minor": invoice.total_minor}
            told = invoice_event(
                "invoice.updated", amended, at, revised_at=iso(at), previous_attributes=before
            )
            posting = ledger.tax_posting(
                customer_id, invoice_id, currency, tax.exclusive_minor, tax.inclusive_minor, at,
                idempotency_key=idempotency_key, actor=ACTOR,
            )  # fmt: skip
            try:
                if posting is None:  # Stripe computed no tax: the invoice records that, nothing to post
                    self.invoices.transact([item])
                else:
                    self.ledger.post(posting, [item, told])
            except (LedgerConflictError, TransactionCancelledError, InvoiceConflictError):
                continue  # another copy recorded it meanwhile, or the invoice moved: read again
            return EffectResult("applied", f"Stripe tax {tax.to_dict()} recorded; total {invoice.total_minor}"
                                f" -> {invoice.total_minor + tax.exclusive_minor}")  # fmt: skip
        raise EffectConflictError(f"invoice {invoice_id} keeps changing")

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
        plan: PaymentPlan,
    ) -> EffectResult:
        if not plan.changes:
            return EffectResult(
                "already_applied", f"nothing new: {plan.paid_after} paid, {plan.remaining_minor} remaining"
            )
        if amount_minor > 0 and self._seen(customer_id, idempotency_key):
            return EffectResult("already_applied", f"payment {payment_id} already posted")
        credits = dict(zip(CREDIT_FIELDS, plan.credits_after, strict=True)) if plan.credits_after else None
        record = self.invoices.payment_item(
            invoice_id,
            status_before=plan.status_before,
            status_after=plan.status_after,
            paid_before=plan.paid_before,
            paid_after=plan.paid_after,
            remaining=plan.remaining_minor,
            cn_rev=plan.cn_rev,
            credits=credits,
        )
        moved = (
            f"invoice {plan.status_before} -> {plan.status_after}"
            if plan.status_after != plan.status_before
            else f"invoice stays {plan.status_after}, {plan.remaining_minor} remaining"
        )
        if plan.to_balance_minor:
            moved += f"; {plan.to_balance_minor} paid after credit notes became the customer's credit balance"
        paid = []
        if plan.status_after == "paid" and plan.status_before != "paid":
            ids = {"id": invoice_id, "customer_id": customer_id, "currency": currency, "status": "paid"}
            paid = [
                invoice_event(
                    "invoice.paid", ids, at, amount_paid_minor=plan.paid_after,
                    amount_remaining_minor=plan.remaining_minor, paid_at=iso(at),
                    payment_id=payment_id if amount_minor > 0 else None,
                )
            ]  # fmt: skip
        try:
            if amount_minor == 0:  # nothing collected (covered by credits): only the status moves
                self.invoices.transact([record, *paid])
                return EffectResult("applied", f"nothing collected; {moved}")
            ledger.record_payment(
                self.ledger,
                customer_id=customer_id,
                currency=currency,
                amount_minor=amount_minor,
                payment_id=payment_id,
                idempotency_key=idempotency_key,
                source=SOURCE,
                actor=ACTOR,
                invoice_id=invoice_id,
                at=at,
                metadata={
                    "stripe_invoice_id": stripe_invoice_id,
                    **({"credited_balance_minor": plan.to_balance_minor} if plan.to_balance_minor else {}),
                },
                extra_items=[record, *paid],
                credited_minor=plan.to_balance_minor,
            )
        except (LedgerConflictError, TransactionCancelledError) as exc:
            raise EffectConflictError(f"invoice {invoice_id} changed meanwhile") from exc
        return EffectResult("applied", f"payment {payment_id} of {amount_minor} posted; {moved}")

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
        return _move_invoice(self.invoices, invoice_id, "payment_failed", at)

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
        if self._seen(customer_id, idempotency_key):
            return EffectResult("already_applied", "refund already posted")
        extra: list[dict[str, Any]] = []
        if refund_id is None and refunded_total_minor is not None:
            # cumulative total: post what exceeds the level already posted for the charge, moving the
            # level (OpsTable STRIPEREFUND#{charge}) in the same transaction, conditional on the level read
            level = self.refund_levels.level(charge_id)
            if refunded_total_minor <= level:
                return EffectResult("already_applied", f"refunds of {charge_id} already posted up to {level}")
            amount_minor = refunded_total_minor - level
            extra.append(self.refund_levels.move_item(charge_id, level, refunded_total_minor))
        if amount_minor == 0:
            return EffectResult("skipped", "refund of 0")
        amount = amount_minor
        self._refusing_races(
            "refund",
            lambda payment: ledger.record_refund(
                self.ledger,
                customer_id=customer_id,
                currency=currency,
                amount_minor=amount,
                refund_id=refund_id or charge_id,
                idempotency_key=idempotency_key,
                source=SOURCE,
                actor=ACTOR,
                payment=payment,
                at=at,
                extra_items=extra,
            ),
            customer_id=customer_id,
            currency=currency,
            amount_minor=amount,
            charge_id=charge_id,
            invoice_id=invoice_id,
        )
        return EffectResult("applied", f"refund of {amount_minor} posted")

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
        if self._seen(customer_id, idempotency_key):
            return EffectResult("already_applied", "dispute already opened")
        if self.ledger.disputes.get(dispute_id) is not None:
            return EffectResult("skipped", f"dispute {dispute_id} already recorded (by an operator)")
        try:
            self._refusing_races(
                "dispute",
                lambda payment: ledger.record_dispute(
                    self.ledger,
                    customer_id=customer_id,
                    currency=currency,
                    dispute_id=dispute_id,
                    status="created",
                    idempotency_key=idempotency_key,
                    source=SOURCE,
                    actor=ACTOR,
                    amount_minor=amount_minor,
                    payment=payment,
                    at=at,
                ),
                customer_id=customer_id,
                currency=currency,
                amount_minor=amount_minor,
                charge_id=charge_id,
                invoice_id=invoice_id,
            )
        except LedgerConflictError:
            if self.ledger.disputes.get(dispute_id) is None:
                raise
            return EffectResult("skipped", f"dispute {dispute_id} already recorded (by an operator)")
        return EffectResult("applied", "dispute opened: funds held")

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
        if self._seen(customer_id, idempotency_key):
            return EffectResult("already_applied", f"dispute already {result}")
        try:
            ledger.record_dispute(
                self.ledger,
                customer_id=customer_id,
                currency=currency,
                dispute_id=dispute_id,
                status=result,
                idempotency_key=idempotency_key,
                source=SOURCE,
                actor=ACTOR,
                at=at,
            )
        except ledger.DisputeStateError as exc:  # closed otherwise before (an operator, another event)
            return EffectResult("skipped", str(exc))
        return EffectResult("applied", "funds reinstated" if result == "won" else "loss booked")


class RepositoryInvoiceSource:
    """``InvoiceSource`` on ``InvoicesRepository`` (billing table) and ``CatalogRepository``."""

    def __init__(self, invoices: InvoicesRepository, catalog: CatalogRepository) -> None:
        self._repo = invoices
        self._catalog = catalog

    def get(self, invoice_id: str) -> Invoice | None:
        return self._repo.get(invoice_id)

    def set_sync(self, invoice_id: str, sync: dict[str, Any], extra: Sequence[dict[str, Any]] = ()) -> None:
        if extra:
            self._repo.set_sync(invoice_id, sync, extra)
        else:
            self._repo.set_sync(invoice_id, sync)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        found = self._catalog.get_customer(customer_id)
        if found is None:
            return None
        return {"name": found.name, "email": found.email, "stripe_customer_id": found.stripe_customer_id}
