"""The two narrow ports Stripe processing talks through: money effects and invoices.

``StripeEffects`` is what a verified Stripe event *does* to our books and invoices (ledger postings,
invoice status). ``InvoiceSource`` is what sync-out reads and records about one invoice. Both are
protocols so the processing code never imports the ledger or invoice modules directly; the implementations
on the real tables (``neruba.logic.stripe.ledger_effects``) post through ``neruba.logic.ledger.postings``
and move invoices through ``neruba.dal.invoices``. ``neruba.bootstrap`` builds them (and the processor that
takes them in its constructor); tests may pass in-memory implementations.

Every effect takes an ``idempotency_key`` derived from the Stripe object it books (``stripe:payment:{charge
or payment intent}``, ``stripe:refund:{refund}``, ``stripe:dispute:{dispute}:{created|won|lost}``): calling
an effect twice with the same key changes nothing the second time, whichever event carried it. That is
what makes queue redeliveries, duplicate events and operator replays safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.stripe.checks import PaymentPlan
    from neruba.logic.stripe.stripe_tax import StripeTax

EffectOutcome = Literal["applied", "already_applied", "skipped"]
DisputeResult = Literal["won", "lost"]


@dataclass(frozen=True, slots=True)
class EffectResult:
    """What an effect did: ``applied`` (new posting or state change), ``already_applied`` (same key seen
    before, nothing written), ``skipped`` (nothing to do, e.g. a failed payment on an invoice already paid),
    with a short human ``detail``."""

    outcome: EffectOutcome
    detail: str = ""


class EffectRefusedError(Exception):
    """An effect that must not be applied as the event states it (a refund or dispute beyond what the
    payment still has refundable, or of a payment we never received): the event is parked ``failed``
    with outcome ``needs_operator`` and the reason, for an operator to settle and replay."""


class EffectConflictError(Exception):
    """What the effect was decided on (the invoice's status or paid total) changed meanwhile: decide
    again on a fresh read."""


class StripeEffects(Protocol):
    """The money and invoice effects of Stripe events. Every method is idempotent on ``idempotency_key``."""

    def invoice(self, invoice_id: str) -> Invoice | None:
        """The stored invoice (status, customer, currency, totals, ``amount_paid_minor``, the Stripe sync
        record), read consistently; what every event is checked against."""
        ...

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
        """Record the tax Stripe Tax computed on a delegated invoice: a ``tax_payable`` posting and the
        invoice amended (``stripe_tax``, ``tax_minor``, ``total_minor``) in one transaction; once per
        invoice. A different amount than the one recorded raises EffectRefusedError."""
        ...

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
        """Post ``amount_minor`` (``plan.post_minor``) as the payment ``payment_id`` (the Stripe charge,
        else payment intent, else invoice id; receivable settled) and record the plan on the invoice
        (paid total, remaining amount, ``paid`` when nothing remains) in the same transaction, conditional
        on the invoice still being as the plan read it (else EffectConflictError)."""
        ...

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
        """Move the invoice to ``payment_failed`` unless it is already ``paid`` (no posting)."""
        ...

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
        """Post a refund of ``amount_minor`` against the invoice's payment.

        Without a refund id (a ``charge.refunded`` payload without its refund list) ``refunded_total_minor``
        is the charge's cumulative ``amount_refunded``: only what exceeds the total already posted for the
        charge is posted.
        """
        ...

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
        """Post the disputed amount as held (funds withdrawn by the card network)."""
        ...

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
        """Post the end of a dispute: ``won`` reinstates the funds, ``lost`` books the loss."""
        ...


class InvoiceSource(Protocol):
    """What sync-out needs from invoices and customers."""

    def get(self, invoice_id: str) -> Invoice | None:
        """The invoice (see the invoices contract), or None."""
        ...

    def set_sync(self, invoice_id: str, sync: dict[str, Any], extra: Sequence[dict[str, Any]] = ()) -> None:
        """Store the Stripe sync record (``invoice.stripe``) of the invoice (with ``extra`` actions, a
        webhook event, in the same transaction)."""
        ...

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """The catalog customer (``name``, ``email``, ``stripe_customer_id``), or None."""
        ...
