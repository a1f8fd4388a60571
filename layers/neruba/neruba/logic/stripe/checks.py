"""What a Stripe event must agree with before it may move money: plain rules, no storage.

A Stripe payment event names our invoice and customer in its metadata; metadata is text anyone with access
to the Stripe account can write, so it is a claim, never a fact. Before anything is posted the event is
compared with the invoice we stored:

* the invoice exists and is ``finalized`` or ``payment_failed`` (a draft was never sent to Stripe; a void
  invoice is owed by nobody), or ``paid`` (then only a repeat of what was already booked is accepted);
* the customer in the metadata is the invoice's customer, the currency is the invoice's currency;
* the Stripe invoice (and Stripe customer, when the event carries one) are the ones sync-out stored on the
  invoice when it created them;
* Stripe's total for the invoice is our total; the amount paid is at most that total, the invoice as
  finalized (what the Stripe invoice asked before any credit note reached Stripe).

A disagreement is a :class:`Park` with a reason code (``customer_mismatch``, ``currency_mismatch``,
``stripe_invoice_mismatch``, ``stripe_customer_mismatch``, ``amount_mismatch``, ``invoice_not_found``,
``invoice_not_payable``, ``overpayment``, ``refund_exceeds_payment``, ``dispute_exceeds_payment``): the
event is parked for an operator and nothing is applied.

Stripe's ``amount_paid`` is the invoice's running total, so a payment is booked as the increase of that
total over what the invoice already records (``amount_paid_minor``): two events for one charge book once,
a second charge books only the rest, and an invoice is ``paid`` only when nothing remains.

A credit note lowers what is due at once but reaches Stripe later, so a customer may pay the whole total
after a note took part of it off. Such a payment is booked whole, and the part above what was still due
(``to_balance_minor``) moves from the notes' part before payment to the customer's credit balance: the
invoice ends as if it had been paid first and credited after (docs/stripe.md, "A payment made before
Stripe heard of a credit note").

Example:
    >>> from neruba.dal.invoices import invoice_record
    >>> inv = invoice_record({"id": "in_1", "customer_id": "acme", "currency": "USD", "status": "finalized",
    ...                       "total_minor": 2000, "stripe": {"invoice_id": "in_S1"}})
    >>> plan = check_payment(inv, PaymentClaim("acme", "USD", "in_S1", None, 1500, 2000))
    >>> (plan.post_minor, plan.status_after, plan.remaining_minor)
    (1500, 'finalized', 500)
    >>> credited = invoice_record({**inv.document, "pre_payment_credited_minor": 300})
    >>> late = check_payment(credited, PaymentClaim("acme", "USD", "in_S1", None, 2000, 2000))
    >>> (late.post_minor, late.to_balance_minor, late.status_after, late.remaining_minor)
    (2000, 300, 'paid', 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

OPEN = ("finalized", "payment_failed")
CREDIT_FIELDS = ("pre_payment_credited_minor", "post_payment_credited_minor", "credited_balance_minor")
"""What credit notes took from an invoice: before payment, after payment, and as customer credit balance."""


@dataclass(frozen=True, slots=True)
class Park:
    """The event disagrees with what we stored: ``code: explanation``, applied never."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class PaymentClaim:
    """What a payment event says: customer (metadata), currency, Stripe invoice and customer ids, the
    running total paid and Stripe's total of the invoice (None when the event omits it)."""

    customer_id: str
    currency: str
    stripe_invoice_id: str
    stripe_customer_id: str | None
    amount_paid_minor: int
    stripe_total_minor: int | None


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """What to apply: post ``post_minor`` (0: nothing) and move the invoice from (``status_before``,
    ``paid_before``) to (``status_after``, ``paid_after``), conditional on the values read (and on
    ``cn_rev``, the invoice's credit note counter read, so a credit note landing meanwhile is seen).

    ``to_balance_minor``: the part of the payment above what credit notes left due, which becomes the
    customer's credit balance (the invoice's ``credits_after``: ``pre_payment_credited_minor``,
    ``post_payment_credited_minor``, ``credited_balance_minor``); the payment's record counts it as
    credited."""

    post_minor: int
    status_before: str
    status_after: str
    paid_before: int
    paid_after: int
    remaining_minor: int
    to_balance_minor: int = 0
    cn_rev: int = 0
    credits_after: tuple[int, int, int] | None = None

    @property
    def changes(self) -> bool:
        return self.post_minor > 0 or self.status_after != self.status_before


def amount_due(invoice: Invoice) -> int:
    """What the customer owes on the invoice in all (an invoice whose total is negative owes nothing),
    less what credit notes took off before it was paid (docs/billing.md, "Credit notes")."""
    return max(invoice.total_minor, 0) - int(invoice.document.get("pre_payment_credited_minor") or 0)


def paid_level(invoice: Invoice) -> int:
    """What the invoice records as paid; an invoice marked paid before this was recorded counts as fully
    paid."""
    if invoice.amount_paid_minor is not None:
        return invoice.amount_paid_minor
    return amount_due(invoice) if invoice.status == "paid" else 0


def identity_mismatch(
    invoice: Invoice | None,
    invoice_id: str,
    customer_id: str,
    stripe_invoice_id: str,
    stripe_customer_id: str | None,
    currency: str | None = None,
) -> Park | None:
    """The first way the event's ids disagree with the stored invoice, or None."""
    if invoice is None:
        return Park("invoice_not_found", f"no invoice {invoice_id}")
    if invoice.customer_id != customer_id:
        return Park(
            "customer_mismatch",
            f"the event names customer {customer_id}; invoice {invoice_id} is {invoice.customer_id}'s",
        )
    if currency is not None and invoice.currency.upper() != currency.upper():
        return Park(
            "currency_mismatch",
            f"the event is in {currency.upper()}; invoice {invoice_id} is in {invoice.currency}",
        )
    if invoice.stripe_invoice_id != stripe_invoice_id:
        stored = invoice.stripe_invoice_id or "none"
        return Park(
            "stripe_invoice_mismatch",
            f"Stripe invoice {stripe_invoice_id} is not the one created for {invoice_id} ({stored})",
        )
    sent_to = invoice.stripe_customer_id
    if stripe_customer_id and sent_to and sent_to != stripe_customer_id:
        return Park(
            "stripe_customer_mismatch",
            f"Stripe customer {stripe_customer_id} is not the one {invoice_id} was sent to ({sent_to})",
        )
    return None


def check_payment(invoice: Invoice | None, claim: PaymentClaim, invoice_id: str = "") -> PaymentPlan | Park:
    """Decide what a payment event may do to ``invoice`` (see the module docstring)."""
    invoice_id = invoice_id or (invoice.id if invoice is not None else "None")
    mismatch = identity_mismatch(
        invoice,
        invoice_id,
        claim.customer_id,
        claim.stripe_invoice_id,
        claim.stripe_customer_id,
        claim.currency,
    )
    if mismatch is not None:
        return mismatch
    assert invoice is not None
    status = invoice.status
    if status not in (*OPEN, "paid"):
        return Park("invoice_not_payable", f"invoice {invoice_id} is {status}")
    due = amount_due(invoice)
    ours = invoice.total_minor
    if claim.stripe_total_minor is not None and claim.stripe_total_minor != ours:
        return Park("amount_mismatch", f"Stripe's total {claim.stripe_total_minor} differs from ours {ours}")
    if claim.amount_paid_minor > max(ours, 0):
        return Park(
            "overpayment",
            f"{claim.amount_paid_minor} paid on {invoice_id}, whose total is {max(ours, 0)}"
            + (f" ({due} due after credit notes)" if due != max(ours, 0) else ""),
        )
    before = paid_level(invoice)
    after = max(before, claim.amount_paid_minor)
    to_balance = max(after - max(due, before), 0)  # paid above what credit notes left due
    doc = invoice.document
    credits_after = None
    if to_balance:
        pre, post, balance = (int(doc.get(name) or 0) for name in CREDIT_FIELDS)
        credits_after = (pre - to_balance, post + to_balance, balance + to_balance)
        due += to_balance
    return PaymentPlan(
        post_minor=after - before,
        status_before=status,
        status_after="paid" if after >= due else status,
        paid_before=before,
        paid_after=after,
        remaining_minor=due - after,
        to_balance_minor=to_balance,
        cn_rev=int(doc.get("cn_rev") or 0),
        credits_after=credits_after,
    )
