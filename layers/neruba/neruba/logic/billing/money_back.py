"""Money given back of an invoice outside its credit notes: refunds and disputes (docs/billing.md, "Refunds
and disputes count as taken back").

A refund or a dispute names an invoice (a payment of it), never a line. A correction taking back usage
counts it on the invoice it names, never on another one, and only there: ``given_already`` is what of a
correction's note on that invoice it had given back already (it comes first out of what the invoice
keeps billing), and ``reclassified`` moves the tax inside that part off ``tax_payable``. A dispute still
open is never counted: the correction waits for it (``disputed``). Plain reads of the
invoice and its payments; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.credit_notes import LineRequest, credit_lines, less_by
from neruba.logic.stripe.checks import paid_level

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.domain.payments import PaymentRecord
    from neruba.logic.billing.context import Billing


def given_back(ctx: Billing, invoice: Invoice) -> int:
    """What the customer got back of ``invoice``'s payments outside its credit notes: refunds and
    disputes (open or lost; a won one gives the money back to us), i.e. every payment's refunded,
    disputed and credited amounts less what the invoice's credit notes took after a payment."""
    if paid_level(invoice) <= 0:
        return 0
    payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
    moved = sum(p.refunded_minor + p.disputed_minor + p.credited_minor for p in payments)
    return max(moved - int(invoice.document.get("post_payment_credited_minor") or 0), 0)


def reader(ctx: Billing) -> Callable[[Invoice], int]:
    """``given_back`` read once per invoice."""
    seen: dict[str, int] = {}

    def of(invoice: Invoice) -> int:
        if invoice.id not in seen:
            seen[invoice.id] = given_back(ctx, invoice)
        return seen[invoice.id]

    return of


def disputed(ctx: Billing, invoice: Invoice) -> int:
    """What disputes of ``invoice``'s payments hold while open (neither won nor lost yet): money that
    may still come back to us, or stay the customer's."""
    if paid_level(invoice) <= 0:
        return 0
    payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
    return sum(p.disputed_minor - p.lost_minor for p in payments)


def billed(invoice: Invoice) -> int:
    """What ``invoice`` still bills in money: its total (after credits applied) less its credit notes."""
    return invoice.total_minor - int(invoice.document.get("credited_minor") or 0)


def applied(invoice: Invoice, line_id: str) -> int:
    """What credit grants paid of the line ``line_id`` of ``invoice`` (its applications)."""
    found = invoice.document.get("applications") or []
    return sum(int(a["amount_minor"]) for a in found if str(a["line_id"]) == line_id)


def given_already(
    invoice: Invoice, requests: list[LineRequest], outside: int
) -> tuple[list[LineRequest], int]:
    """``requests`` (what a correction's note on ``invoice`` would credit) less what a refund or a dispute
    of ``invoice`` (``outside``, ``given_back``) already gave back of it (docs/billing.md, "Refunds and
    disputes count as taken back"): that money comes first out of what the invoice keeps billing (what the
    note leaves), and the rest of it was a part of what the note takes back. That part is neither credited
    here nor asked of an older invoice (``settle`` counts the requests as taken). Returns the requests and
    the tax inside that part (``reclassified`` books it). Nothing of it: ``requests`` and 0."""
    from neruba.logic.billing.credit_notes import line_states

    if outside <= 0:
        return requests, 0
    taken = credit_lines(line_states(invoice), requests, billed(invoice) + outside, invoice.currency)
    asked = sum(t.total_minor for t in taken)
    absorbed = min(max(outside - max(billed(invoice) - asked, 0), 0), asked)
    if not absorbed:
        return requests, 0
    less = less_by(taken, absorbed)
    tax = sum(t.amount_minor for line in taken for t in line.tax)
    return less, tax - sum(v for r in less for _, v in (r.tax_minor or ()))


def reclassified(
    ctx: Billing, invoice: Invoice, payments: Sequence[PaymentRecord], tax: int, source: str, now: datetime
) -> list[dict[str, Any]]:
    """The posting moving the tax of what a refund or a lost dispute gave back of usage now taken back
    (``given_already``'s tax) out of ``tax_payable``: the refund (contra-revenue ``refunds``) or the
    loss (``dispute_losses``) was that tax, given back to the customer, and no tax is owed on usage that
    no longer counts. Shared between refunds and lost disputes by what each gave back (largest
    remainder); an open dispute's part is left as it is (its money may still come back). Actions of the
    correction's own transaction, the guard keyed by ``source`` and the invoice (written once)."""
    from neruba.domain.discounts import share_out
    from neruba.domain.ledger import Posting, credit, debit

    refunded = sum(p.refunded_minor for p in payments)
    lost = sum(p.lost_minor for p in payments)
    open_ = sum(p.disputed_minor - p.lost_minor for p in payments)
    weights = [(k, v) for k, v in (("refunds", refunded), ("dispute_losses", lost), ("open", open_)) if v > 0]
    parts = {k: v for k, v in share_out(tax, weights).items() if k != "open" and v > 0} if tax > 0 else {}
    if not parts:
        return []
    entries = [debit("tax_payable", sum(parts.values())), *(credit(k, v) for k, v in parts.items())]
    book = Posting.build(
        idempotency_key=f"given_back_tax:{source}:{invoice.id}", customer_id=invoice.customer_id,
        currency=invoice.currency, entries=entries, reason="given_back_tax", source="invoice",
        source_id=invoice.id, actor="system:billing", at=now,
        metadata={"invoice_id": invoice.id, "correction_id": source},
    )  # fmt: skip
    return list(ctx.ledger.posting_items(book))
