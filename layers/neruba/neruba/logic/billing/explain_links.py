"""What explain links to each invoice line beyond the line itself (docs/billing.md, "Explain: credit
notes, corrections and ledger entries"): the credit notes that took (some of) it back, the correction each
of them settled (the adjustments, with the voids, amends and backfills behind them), and the ledger
postings that booked the invoice and its credit notes.

A correction after the end records each adjustment it settled by a credit note as ``applied_to`` that
note (``logic.billing.corrections``), so the note's adjustments are those of the credited invoice's
subscription applied to it; an operator's credit note has none.

Cost: one read of the invoice's credit notes each, one query of the subscription's adjustments, one
read per posting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neruba.logic.billing import grant_restores
from neruba.logic.billing.invoices import Since, VoidedLookup, cited_voids, explain, get_invoice
from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.billing import Adjustment
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing


def explain_invoice(ctx: Billing, invoice_id: str, voided: VoidedLookup) -> dict[str, Any]:
    """``GET /v1/invoices/{id}/explain``: :func:`invoices.explain` with, per line, the credit notes that
    credited it (each with the correction it settled) and the postings that book it, and the invoice's
    postings with their entries."""
    invoice = get_invoice(ctx.invoices, invoice_id)
    since = previous(ctx, invoice.subscription_id)
    answer = explain(invoice, voided, since)
    notes = _notes(ctx, invoice)
    settled = _settled(ctx, invoice, notes)
    postings = _postings(ctx, invoice, notes)
    booking = [p["posting_id"] for p in postings if p["idempotency_key"] in _invoice_keys(invoice)]
    for line in answer["lines"]:
        line_id = str(line["line_id"])
        cited = [
            _line_note(
                note,
                taken,
                _correction(invoice, line, settled.get(str(note["id"]), []), (voided, since), note),
            )
            for note in notes
            for taken in note.get("lines") or []
            if str(taken["line_id"]) == line_id
        ]
        line["credit_notes"] = cited
        line["grant_restorations"] = given = grant_restores.explained(ctx, invoice, line_id)
        line["postings"] = [*booking, *(c["posting_id"] for c in cited), *(g["posting_id"] for g in given)]
    answer["postings"] = postings
    # the grants this invoice's negative differences gave back to (it carried the difference)
    answer["grant_restorations"] = list(invoice.document.get("grant_restorations") or [])
    return answer


def previous(ctx: Billing, subscription_id: str | None) -> Since:
    """When each adjustment line's previous difference (of the same corrected line) was recorded: the
    created_at of its adjustment record ``n - 1``, or for the first when the corrected invoice was
    finalized (made, for one finalized as made); None when not known (every void before the carrier is
    cited then). One query of the corrected invoice's adjustments (and one read of it) per corrected
    invoice, kept."""
    seen: dict[str, tuple[dict[str, str | None], str | None]] = {}

    def of(line: dict[str, Any]) -> str | None:
        ref = line.get("references") or {}
        invoice_id, line_id, n = ref.get("invoice_id"), ref.get("line_id"), int(line.get("seq_of_line") or 0)
        if not (invoice_id and line_id and n and subscription_id):
            return None
        if invoice_id not in seen:
            found = ctx.billing.adjustments_of(subscription_id, str(invoice_id))
            corrected = ctx.invoices.get(str(invoice_id))
            # a draft is rated again until it is finalized: the voids before that are in its lines
            doc = corrected.document if corrected else {}
            at = doc.get("finalized_at") or doc.get("created_at")
            seen[invoice_id] = ({a.key: a.created_at for a in found}, str(at) if at else None)
        records, made = seen[invoice_id]
        return made if n == 1 else records.get(f"{invoice_id}#{line_id}#{n - 1:03d}")

    return of


def settles(ctx: Billing, note: dict[str, Any], voided: VoidedLookup) -> list[dict[str, Any]]:
    """The adjustments a correction's credit note settled, each with the voids, amends and backfill
    behind it (empty for an operator's note)."""
    invoice = ctx.invoices.get(str(note["invoice_id"]))
    if invoice is None:
        return []
    found = _settled(ctx, invoice, [note]).get(str(note["id"]), [])
    made = str(note.get("created_at") or "")
    since = previous(ctx, invoice.subscription_id)
    return [_adjustment(invoice.customer_id, a, made, (voided, since), note) for a in found]


def _notes(ctx: Billing, invoice: Invoice) -> list[dict[str, Any]]:
    repo = ctx.billing.credit_notes  # where logic.billing.credit_notes keeps them
    found = [repo.get(str(c["id"])) for c in invoice.document.get("credit_notes") or []]
    return [doc for doc in found if doc]


def _settled(ctx: Billing, invoice: Invoice, notes: list[dict[str, Any]]) -> dict[str, list[Adjustment]]:
    """Per credit note id: the adjustments (of the invoice's subscription) it settled: those the note
    lists (``correction.adjustments``), or for a note written before it listed them, those applied to it."""
    if not notes or not invoice.subscription_id:
        return {}
    listed = {
        str(note["id"]): {str(a["key"]) for a in (note.get("correction") or {}).get("adjustments") or []}
        for note in notes
    }
    found: dict[str, list[Adjustment]] = {}
    for adjustment in ctx.billing.adjustments(str(invoice.subscription_id)):
        for note_id, keys in listed.items():
            if adjustment.key in keys or (not keys and adjustment.applied_to == note_id):
                found.setdefault(note_id, []).append(adjustment)
    return found


def _carries(invoice: Invoice, line: dict[str, Any], adjustment: Adjustment) -> bool:
    """Whether the invoice's ``line`` carries the original line ``adjustment`` corrects (it is that line,
    or an adjustment line referencing it)."""
    if invoice.id == adjustment.original_invoice_id and line["line_id"] == adjustment.original_line_id:
        return True
    ref = line.get("references") or {}
    return (ref.get("invoice_id"), ref.get("line_id")) == (
        adjustment.original_invoice_id,
        adjustment.original_line_id,
    )


def _correction(
    invoice: Invoice,
    line: dict[str, Any],
    found: list[Adjustment],
    voided: tuple[VoidedLookup, Since],
    note: dict[str, Any],
) -> dict[str, Any] | None:
    """The correction a credit note settled on this line: what it corrects and its adjustments."""
    mine = [a for a in found if _carries(invoice, line, a)]
    if not mine:
        return None
    ref = mine[0].line.get("references") or {}
    made = str(note.get("created_at") or "")
    return {
        "corrects": {key: ref.get(key) for key in ("invoice_id", "number", "line_id")},
        "adjustments": [_adjustment(invoice.customer_id, a, made, voided, note) for a in mine],
    }


def _adjustment(
    customer_id: str,
    adjustment: Adjustment,
    made: str,
    voided: tuple[VoidedLookup, Since],
    note: dict[str, Any],
) -> dict[str, Any]:
    line = adjustment.line
    listed = (note.get("correction") or {}).get("adjustments") or []
    share = next((int(a["amount_minor"]) for a in listed if a["key"] == adjustment.key), None)
    source = line.get("source") or {}
    ref = line.get("references") or {}
    return {
        "key": adjustment.key,
        "line_id": line.get("line_id"),
        "description": line.get("description"),
        "corrects": {key: ref.get(key) for key in ("invoice_id", "number", "line_id")},
        "quantity": line.get("quantity"),
        "amount_minor": int(line.get("amount_minor") or 0),
        "settled_minor": share,
        "created_at": adjustment.created_at,
        "backfill": source.get("backfill") if isinstance(source.get("backfill"), dict) else None,
        "voided_events": cited_voids(customer_id, line, made or None, voided[0], voided[1](line)),
    }


def _line_note(
    note: dict[str, Any], taken: dict[str, Any], correction: dict[str, Any] | None
) -> dict[str, Any]:
    tax = taken.get("tax") or {}
    return {
        "credit_note_id": note["id"],
        "number": note["number"],
        "amount_minor": int(taken["amount_minor"]),
        "quantity": taken.get("quantity"),
        "tax_minor": int(tax.get("exclusive_minor") or 0) + int(tax.get("inclusive_minor") or 0),
        "reason": note.get("reason"),
        "created_at": note.get("created_at"),
        "posting_id": note.get("posting_id"),
        "correction": correction,
    }


def _invoice_keys(invoice: Invoice) -> list[str]:
    """The idempotency keys of the postings that book the invoice's own lines: its posting, each revision
    of its draft (``invoice:{id}:rev{n}``, and the credit that revision applied or gave back,
    ``invoice:{id}:rev{n}:credit``: ``logic.billing.revision_credit``), its Stripe tax, its void."""
    keys = [f"invoice:{invoice.id}"]
    for n in range(1, invoice.rev + 1):
        keys += [f"invoice:{invoice.id}:rev{n}", f"invoice:{invoice.id}:rev{n}:credit"]
    keys += [f"stripe:tax:{invoice.id}", f"void:{invoice.id}"]
    regenerated = (invoice.document.get("regenerated_from") or {}).get("invoice_id")
    return keys + ([f"void:{regenerated}"] if regenerated else [])


def _postings(ctx: Billing, invoice: Invoice, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invoice's postings as stored: its own (invoice, its draft's revisions, Stripe tax, void), its
    credit notes', its payments'."""
    payments = ctx.ledger.payments.for_invoice(invoice.customer_id, invoice.id)
    keys = [
        *_invoice_keys(invoice),
        *(f"credit_note:{n['id']}" for n in notes),
        *(f"stripe:payment:{p.payment_id}" for p in payments),
    ]
    shown = []
    for key in keys:
        posting = ctx.ledger.stored_posting(invoice.customer_id, key)
        if posting is None:
            continue
        shown.append(
            {
                "posting_id": posting.posting_id,
                "idempotency_key": key,
                "reason": posting.reason,
                "at": iso(posting.at),
                "entries": [_entry(e) for e in posting.entries],
            }
        )
    return shown


def _entry(entry: Any) -> dict[str, Any]:
    """One posting entry as explain shows it; ``grant_id`` on the entries of a credit grant."""
    shown = {"account": entry.account, "debit_minor": entry.debit_minor, "credit_minor": entry.credit_minor}
    return {**shown, "grant_id": entry.grant_id} if entry.grant_id else shown
