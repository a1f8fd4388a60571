"""Which payment a refund or a dispute takes money back from, and why one cannot.

Refunds and disputes (operator actions and Stripe events alike) name a ``payment_id`` or an
``invoice_id``; :func:`resolve_payment` finds the payment record of that customer
(``neruba.dal.payments``) and checks the rules of docs/ledger.md ("Refunds and disputes"): it exists,
it belongs to the customer, it is in the customer's currency, and it still has ``amount_minor``
refundable. Each refusal is a :class:`PaymentTargetError` with a stable code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from neruba.dal.payments import PaymentsRepository
from neruba.domain.payments import PaymentRecord

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

Kind = Literal["not_found", "conflict", "invalid"]


class PaymentTargetError(ValueError):
    """A refund or dispute that names no payment it may take ``amount_minor`` back from."""

    def __init__(self, message: str, *, code: str, kind: Kind, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.kind, self.param = message, code, kind, param


def resolve_payment(
    payments: PaymentsRepository,
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    action: Literal["refund", "dispute"],
    payment_id: str | None,
    invoice_id: str | None,
    invoice: Callable[[str], Invoice | None] | None = None,
    credit_balance: Callable[[str], int] | None = None,
) -> PaymentRecord:
    """The payment record to take ``amount_minor`` back from.

    ``payment_id`` wins when given (and must belong to ``invoice_id`` when both are given); with only
    ``invoice_id`` the invoice must have exactly one payment. ``invoice`` (reads an invoice document)
    lets an operator hear ``invoice_not_found`` / ``invoice_not_paid`` rather than a missing payment.
    ``credit_balance`` (an invoice id to the customer credit its credit notes left on it): the amount is
    paid out of that balance, bounded by it and by what credit notes credited from the payment.
    """
    record: PaymentRecord | None = None
    if payment_id is not None:
        record = payments.get(customer_id, payment_id)
        if record is None:
            raise PaymentTargetError(
                f"Customer {customer_id!r} has no payment {payment_id!r}.",
                code="payment_not_found",
                kind="not_found",
                param="payment_id",
            )
        if invoice_id is not None and record.invoice_id != invoice_id:
            raise PaymentTargetError(
                f"Payment {payment_id!r} did not pay invoice {invoice_id!r}.",
                code="payment_invoice_mismatch",
                kind="invalid",
                param="invoice_id",
            )
    elif invoice_id is not None:
        if invoice is not None:
            _check_invoice(invoice(invoice_id), customer_id, invoice_id)
        found = payments.for_invoice(customer_id, invoice_id)
        if len(found) > 1:
            raise PaymentTargetError(
                f"Invoice {invoice_id!r} has {len(found)} payments: name the payment_id.",
                code="payment_id_required",
                kind="invalid",
                param="payment_id",
            )
        if not found:
            raise PaymentTargetError(
                f"Invoice {invoice_id!r} collected no payment: there is nothing to take back.",
                code=f"{action}_exceeds_refundable",
                kind="conflict",
                param="amount_minor",
            )
        record = found[0]
    else:
        raise PaymentTargetError(
            "Name the payment_id or the invoice_id.", code="payment_required", kind="invalid"
        )
    if record.currency != currency:
        raise PaymentTargetError(
            f"Payment {record.payment_id!r} is in {record.currency}, not {currency}.",
            code="currency_mismatch",
            kind="invalid",
            param="currency",
        )
    if credit_balance is not None:
        return _balance_source(record, amount_minor, credit_balance)
    if amount_minor > record.refundable_minor:
        raise exceeds(record, amount_minor, action)
    return record


def _balance_source(
    record: PaymentRecord, amount_minor: int, credit_balance: Callable[[str], int]
) -> PaymentRecord:
    """The payment whose credited part pays out ``amount_minor`` of its invoice's credit balance."""
    left = min(record.credited_minor, credit_balance(record.invoice_id)) if record.invoice_id else 0
    if amount_minor > left:
        raise PaymentTargetError(
            f"amount_minor {amount_minor} is more than the {left} of customer credit left by credit notes"
            f" on payment {record.payment_id!r}"
            + (f" (invoice {record.invoice_id!r})." if record.invoice_id else "."),
            code="refund_exceeds_refundable",
            kind="conflict",
            param="amount_minor",
        )
    return record


def exceeds(record: PaymentRecord, amount_minor: int, action: str) -> PaymentTargetError:
    hint = (
        f" Of what it paid, {record.credited_minor} was credited by credit notes: pay a customer credit"
        " balance out with credit_balance: true."
        if action == "refund" and record.credited_minor
        else ""
    )
    return PaymentTargetError(
        f"amount_minor {amount_minor} is more than the {record.refundable_minor} still refundable of"
        f" payment {record.payment_id!r} (paid {record.paid_minor}, refunded {record.refunded_minor},"
        f" disputed {record.disputed_minor}, credited {record.credited_minor}).{hint}",
        code=f"{action}_exceeds_refundable",
        kind="conflict",
        param="amount_minor",
    )


def _check_invoice(doc: Invoice | None, customer_id: str, invoice_id: str) -> None:
    if doc is None or doc.customer_id != customer_id:
        raise PaymentTargetError(
            f"Customer {customer_id!r} has no invoice {invoice_id!r}.",
            code="invoice_not_found",
            kind="not_found",
            param="invoice_id",
        )
    if doc.status != "paid":
        raise PaymentTargetError(
            f"Invoice {invoice_id!r} is {doc.status}, not paid: nothing to take back.",
            code="invoice_not_paid",
            kind="conflict",
            param="invoice_id",
        )
