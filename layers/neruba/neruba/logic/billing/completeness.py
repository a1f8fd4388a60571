"""How complete an invoice's usage was when it was finalized, and what late events changed afterwards.

An event may arrive up to the late-event horizon after its time (``IngestMaxAgeDays`` and a day,
``Billing.late_events``). An hour of a usage window is therefore **complete** (closed: no event for it can
still be accepted) once its end is that far in the past. At finalization (the window's end plus the grace
period) the hours ending before ``finalized_at - horizon`` were complete; the others were still open and
stay open until ``period_end + horizon`` (``closes_at``).

Late events for open hours are never lost: the late-event check of the next window invoice, an operator
rerun, or after the end the corrections sweep, records each difference as an adjustment of the original
invoice's line (``ADJ#{subscription}``), applied to a later invoice. ``late_events`` lists them with where
they were billed (``applied_to``: the next invoice, a correction invoice, or the credit note that settled
them after the end) or that they still wait
(``pending``).

Example:
    >>> from datetime import timedelta
    >>> hour_ranges(parse_ts("2026-03-01T00:00:00Z"), parse_ts("2026-03-01T05:00:00Z"),
    ...             parse_ts("2026-03-01T02:00:00Z"))["complete"][0]["hours"]
    2
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from neruba.logic.billing import credit_notes
from neruba.logic.billing.invoices import get_invoice
from neruba.timefmt import iso, parse_ts

if TYPE_CHECKING:
    from neruba.dal.billing import Adjustment
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing

HOUR = timedelta(hours=1)
USAGE_KINDS = ("usage",)


def _hours(start: datetime, end: datetime) -> int:
    return -((start - end) // HOUR) if end > start else 0  # whole hours, a part of one counting as one


def hour_ranges(start: datetime, end: datetime, complete_until: datetime) -> dict[str, list[dict[str, Any]]]:
    """The window [start, end) split at ``complete_until`` (rounded down to an hour, within the window)."""
    cut = min(max(complete_until, start), end)
    cut = cut - timedelta(minutes=cut.minute, seconds=cut.second, microseconds=cut.microsecond)
    cut = max(cut, start)
    complete = [{"start": iso(start), "end": iso(cut), "hours": _hours(start, cut)}] if cut > start else []
    open_ = [{"start": iso(cut), "end": iso(end), "hours": _hours(cut, end)}] if end > cut else []
    return {"complete": complete, "open": open_}


def _late_events(ctx: Billing, invoice: Invoice) -> list[dict[str, Any]]:
    if not invoice.subscription_id:
        return []
    found = []
    adjustments = list(ctx.billing.adjustments(invoice.subscription_id))
    notes = _settling_notes(ctx, invoice, adjustments)
    for adjustment in adjustments:
        if adjustment.original_invoice_id != invoice.id:
            continue
        found.append(
            {
                "line_id": adjustment.original_line_id,
                "quantity": None
                if adjustment.line.get("quantity") is None
                else str(adjustment.line["quantity"]),
                "amount_minor": int(adjustment.line.get("amount_minor", 0)),
                "status": adjustment.status,
                "recorded_at": adjustment.created_at,
                "applied_to": _carrier(ctx, adjustment.applied_to) if adjustment.applied_to else None,
                "settled_by": [
                    {**_note_carrier(note), "settled_minor": int(share["amount_minor"])}
                    for note in notes
                    for share in (note.get("correction") or {}).get("adjustments") or []
                    if share.get("key") == adjustment.key
                ],
            }
        )
    return sorted(found, key=lambda f: (str(f["recorded_at"]), f["line_id"]))


def _settling_notes(ctx: Billing, invoice: Invoice, adjustments: list[Adjustment]) -> list[dict[str, Any]]:
    """The correction credit notes that may have settled this invoice's late differences: those on the
    invoices carrying its lines (itself, and the correction invoices its differences were billed on), read
    only when some difference was settled by a credit note."""
    mine = [a for a in adjustments if a.original_invoice_id == invoice.id]
    if not any((a.applied_to or "").startswith("cn_") for a in mine):
        return []
    billed_on = {a.applied_to for a in mine if a.applied_to and not a.applied_to.startswith("cn_")}
    carrying = [invoice.id, *sorted(billed_on)]
    repo = credit_notes.repository(ctx)
    found = []
    for invoice_id in carrying:
        doc = invoice if invoice_id == invoice.id else ctx.invoices.get(invoice_id)
        for listed in (doc.document.get("credit_notes") or []) if doc else []:
            note = repo.get(str(listed["id"]))
            if note and (note.get("correction") or {}).get("adjustments"):
                found.append(note)
    return found


def _note_carrier(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "invoice_id": str(note["invoice_id"]),
        "number": note.get("number"),
        "kind": "credit_note",
        "credit_note_id": str(note["id"]),
    }


def _carrier(ctx: Billing, applied_to: str) -> dict[str, Any] | None:
    """Where a late difference went: the invoice that billed it, or the (first) credit note that settled
    it after the subscription's end (``cn_`` ids; then ``invoice_id`` is the invoice it credited)."""
    if applied_to.startswith("cn_"):
        note = credit_notes.repository(ctx).get(applied_to)
        return _note_carrier(note) if note is not None else None
    carrier = ctx.invoices.get(applied_to)
    if carrier is None:
        return None
    return {"invoice_id": carrier.id, "number": carrier.number, "kind": carrier.kind, "credit_note_id": None}


def completeness(ctx: Billing, invoice_id: str, now: datetime | None = None) -> dict[str, Any]:
    """``GET /v1/invoices/{id}/completeness``."""
    now = now or datetime.now(UTC)
    invoice = get_invoice(ctx.invoices, invoice_id)
    horizon = ctx.late_events
    start, end = parse_ts(invoice.period_start), parse_ts(invoice.period_end)
    rated = invoice.kind in USAGE_KINDS and end > start
    finalized = parse_ts(invoice.finalized_at) if invoice.finalized_at else None
    ranges = (
        hour_ranges(start, end, finalized - horizon) if rated and finalized else {"complete": [], "open": []}
    )
    if rated and finalized is None:  # a draft: nothing is final yet
        ranges = {
            "complete": [],
            "open": [{"start": iso(start), "end": iso(end), "hours": _hours(start, end)}],
        }
    late = _late_events(ctx, invoice)
    closes_at = end + horizon
    return {
        "object": "invoice_completeness",
        "invoice_id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "kind": invoice.kind,
        "rated_usage": rated,
        "period_start": iso(start),
        "period_end": iso(end),
        "finalized_at": iso(finalized) if finalized else None,
        "late_event_horizon_hours": int(horizon // HOUR),
        "at_finalization": {
            "complete": ranges["complete"],
            "open": ranges["open"],
            "complete_hours": sum(r["hours"] for r in ranges["complete"]),
            "open_hours": sum(r["hours"] for r in ranges["open"]),
        },
        "closes_at": iso(closes_at) if rated else None,
        "closed_now": bool(rated and now >= closes_at),
        "late_events": late,
        "late_amount_minor": sum(int(e["amount_minor"]) for e in late),
    }
