"""When a correction cannot be settled yet (docs/billing.md, "Negative corrections settle against what they
correct", "A correction waits for an open dispute").

A negative difference is credited against the invoices carrying its line. Two kinds of carrier make it
wait, nothing written: a draft (a window in its grace period: its adjustment line and the grant credit it
applied count only once it is finalized) and an invoice with a dispute open (whether the disputed money
stays the customer's or comes back decides what a note may still give back). After the end the
settlement is refused (``CarrierWaitError``, 409 ``invoice_conflict``: a rerun is refused, the
corrections sweep defers it, a backfill's worker waits); before the end a window leaves the differences
of such a line pending (``held_for_disputes``). Plain reads; nothing is written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neruba.errors import ConflictError
from neruba.logic.billing import money_back
from neruba.logic.billing.correction_plan import carriers, carrying_lines, read_carriers
from neruba.logic.billing.correction_taxes import corrected, negatives

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing


class CarrierWaitError(ConflictError):
    """An invoice carrying a line a correction after the end would settle cannot be credited yet (409
    ``invoice_conflict``, nothing written): retried later, it settles as any carrier."""


class DraftCarrierError(CarrierWaitError):
    """A draft invoice (a window in its grace period) carries a corrected line."""


class DisputedCarrierError(CarrierWaitError):
    """A dispute is open on an invoice carrying a corrected line."""


def in_dispute(
    ctx: Billing, invoices: list[Invoice], lines: list[dict[str, Any]]
) -> dict[tuple[str, str], str]:
    """Per corrected line that ``lines`` take back of in all (their net, positive lines of it counted, is
    negative), the first invoice carrying it with a dispute open (docs/billing.md, "A correction waits for
    an open dispute"): whether the disputed money stays the customer's (lost) or comes back (won) decides
    what a credit note of that invoice may still give back, so the line is settled once it is decided.
    Reads the payments of the paid invoices carrying such a line only."""
    net: dict[tuple[str, str], int] = {}
    for line in lines:
        if (line.get("references") or {}).get("invoice_id"):
            net[corrected(line)] = net.get(corrected(line), 0) + int(line["amount_minor"])
    found: dict[tuple[str, str], str] = {}
    open_: dict[str, bool] = {}  # per invoice: a dispute open (its payments read once)
    for ref in (r for r, amount in net.items() if amount < 0):
        for invoice in carriers(invoices):
            if not carrying_lines(invoice, ref):
                continue
            if invoice.id not in open_:
                open_[invoice.id] = money_back.disputed(ctx, invoice) > 0
            if open_[invoice.id]:
                found[ref] = invoice.id
                break
    return found


def held_for_disputes(ctx: Billing, customer_id: str, lines: list[dict[str, Any]]) -> dict[str, str]:
    """The ids of ``lines`` (a window's adjustment lines, or the upcoming preview's) a window leaves
    pending because an invoice carrying what they correct has a dispute open (``in_dispute``), each with
    that invoice's id: every line of such a corrected line, positive ones too, so their net is settled
    once the dispute is decided (the next window carries them again)."""
    wanted, refs = negatives(lines)
    if not wanted:
        return {}
    held = in_dispute(ctx, read_carriers(ctx, customer_id, refs, lines, lambda _id: None), lines)
    return {str(line["line_id"]): held[corrected(line)] for line in lines if corrected(line) in held}


def waiting(
    ctx: Billing, customer_id: str, lines: list[dict[str, Any]], pending: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """What of ``lines`` (a rerun's differences, recorded pending before the end) the next window will
    hold, and why, netted with the differences already ``pending``: ``[{line_id, invoice_id, reason}]``,
    the invoice being the carrier with a dispute open (``held_for_disputes``)."""
    held = held_for_disputes(ctx, customer_id, [*pending, *lines])
    return [
        {"line_id": str(line["line_id"]), "invoice_id": held[str(line["line_id"])], "reason": "dispute_open"}
        for line in lines
        if str(line["line_id"]) in held
    ]


def refuse_disputed(ctx: Billing, invoices: list[Invoice], lines: list[dict[str, Any]]) -> None:
    """Refuse a settlement after the end while an invoice carrying a line it takes back has a dispute
    open (``in_dispute``); nothing is written, the corrections sweep retries it on each run."""
    if held := in_dispute(ctx, invoices, lines):
        (invoice_id, line_id), carrier = sorted(held.items())[0]
        raise DisputedCarrierError(
            f"Invoice {carrier} carries line {line_id} of invoice {invoice_id}, taken back by this "
            "correction, and has a dispute open; the correction is settled once the dispute is won or "
            'lost (docs/billing.md, "A correction waits for an open dispute").',
            code="invoice_conflict",
            details=[
                {"invoice_id": carrier, "reason": "dispute_open", "corrects": invoice_id, "line_id": line_id}
            ],
        )


def refuse_draft_carriers(invoices: list[Invoice], refs: dict[str, tuple[str, str]]) -> None:
    """Refuse a settlement while a draft invoice (a window in its grace period) carries a corrected line
    (docs/billing.md, "Negative corrections settle against what they correct"): its adjustment line and
    the grant credit it applied count only once it is finalized, so settling now would credit around it
    (the difference given back standalone, as money, and the draft still asking for it). Nothing is
    written; retried after the draft is finalized, the settlement credits it as any carrier."""
    for invoice in invoices:
        if invoice.status == "draft" and any(carrying_lines(invoice, ref) for ref in set(refs.values())):
            raise DraftCarrierError(
                f"A draft invoice {invoice.id} carries differences of this invoice; "
                "retry once it is finalized.",
                code="invoice_conflict",
            )
