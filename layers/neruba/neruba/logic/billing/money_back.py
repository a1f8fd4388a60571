"""Money given back of an invoice outside its credit notes: refunds and disputes (docs/billing.md, "Refunds
and disputes count as taken back").

A refund or a dispute names an invoice (a payment of it), never a line. A correction taking back usage
counts it on the invoice it names, never on another one: ``share`` is the part of it a line bears (for
the cap of what a line still bills), ``given_already`` what of a correction's note on that invoice it
had given back already (it comes first out of what the invoice keeps billing). Plain reads of the
invoice and its payments; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from neruba.domain.credit_notes import LineRequest, credit_lines, less_by
from neruba.logic.stripe.checks import paid_level

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
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


def nothing(_invoice: Invoice) -> int:
    """No money given back outside credit notes (what the grants may take: a refund or a dispute gave
    back money, never credit)."""
    return 0


def billed(invoice: Invoice) -> int:
    """What ``invoice`` still bills in money: its total (after credits applied) less its credit notes."""
    return invoice.total_minor - int(invoice.document.get("credited_minor") or 0)


def applied(invoice: Invoice, line_id: str) -> int:
    """What credit grants paid of the line ``line_id`` of ``invoice`` (its applications)."""
    found = invoice.document.get("applications") or []
    return sum(int(a["amount_minor"]) for a in found if str(a["line_id"]) == line_id)


def share(outside: int, invoice: Invoice, left: int, line_id: str | None = None) -> int:
    """The part of ``outside`` (money given back of the invoice outside credit notes) a line with
    ``left`` still billed bears: ``outside`` x what it still bills in money / what the invoice still bills
    in money (``billed``), rounded half-up once, never more than ``left``. A line's amount (``line_id``)
    bills in money what credit grants did not pay of it (refunds and disputes give back money, never what
    a grant paid); its tax is all money."""
    money = billed(invoice)
    if line_id is not None:
        left = max(left - applied(invoice, line_id), 0)
    if outside <= 0 or left <= 0 or money <= 0:
        return 0
    share = int((Decimal(outside * left) / money).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return min(share, left)


def given_already(invoice: Invoice, requests: list[LineRequest], outside: int) -> list[LineRequest]:
    """``requests`` (what a correction's note on ``invoice`` would credit) less what a refund or a dispute
    of ``invoice`` (``outside``, ``given_back``) already gave back of it (docs/billing.md, "Money given back
    of a carrying invoice"): that money comes first out of what the invoice keeps billing (what the note
    leaves), and the rest of it was a part of what the note takes back. That part is neither credited here
    nor asked of an older invoice (``settle`` counts the requests as taken). Nothing of it: ``requests``."""
    from neruba.logic.billing.credit_notes import line_states

    if outside <= 0:
        return requests
    taken = credit_lines(line_states(invoice), requests, billed(invoice) + outside, invoice.currency)
    asked = sum(t.total_minor for t in taken)
    absorbed = min(max(outside - max(billed(invoice) - asked, 0), 0), asked)
    return less_by(taken, absorbed) if absorbed else requests
