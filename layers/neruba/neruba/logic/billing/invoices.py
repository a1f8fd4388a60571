"""Invoice reads for the API: lists, one invoice as the API shows it, and the explanation of its lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.invoices import Invoice, InvoicesRepository
from neruba.domain.credits import CreditApplication
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.logic.billing import unbillable
from neruba.logic.billing.discounts import explain_figures
from neruba.logic.billing.document import EXTRA_TOTALS
from neruba.logic.billing.threshold import threshold_figures
from neruba.logic.stripe.checks import amount_due, paid_level
from neruba.timefmt import ts

if TYPE_CHECKING:
    from neruba.dal.voids import VoidEntry

VoidedLookup = Callable[[str, str, str], Sequence["VoidEntry"]]
Since = Callable[[dict[str, Any]], "str | None"]
"""When an adjustment line's previous difference of the same corrected line was recorded (the corrected
invoice's creation for the first): the voids before it are not behind this line."""
"""A customer's voided events whose timestamp is in [start, end) (``dal.voids.VoidsRepository``)."""


def list_invoices(
    repo: InvoicesRepository,
    customer_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    period: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """A list page of invoices, newest period first: a customer's, or of one status across customers;
    ``period`` keeps those whose period starts in [from, to)."""
    if customer_id is None and status is None:
        raise InvalidRequestError(
            "Name a customer_id or a status: invoices are listed per customer or per status.",
            code="filter_required",
            param="status",
        )
    start, end = period
    for name, value in (("period_from", start), ("period_to", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequestError(f"'{name}' needs a UTC offset.", code="invalid_time_range", param=name)
    if start is not None and end is not None and end <= start:
        raise InvalidRequestError(
            "'period_to' must be after 'period_from'.", code="invalid_time_range", param="period_to"
        )
    bounds = (ts(start) if start else None, ts(end) if end else None)  # list_sk < ts(end) + "#..."
    docs, next_cursor = repo.list(customer_id, status, limit, cursor, period=bounds)
    return {
        "object": "list",
        "data": [public(d) for d in docs],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def get_invoice(repo: InvoicesRepository, invoice_id: str) -> Invoice:
    invoice = repo.get(invoice_id)
    if invoice is None:
        raise NotFoundError(f"No invoice {invoice_id!r}.", code="invoice_not_found", param="invoice_id")
    return invoice


def public(invoice: Invoice) -> dict[str, Any]:
    """The invoice as the API shows it (internal bookkeeping fields left out)."""
    hidden = {"window", "rev", "finalize_at", "seq", "cn_rev", "line_credits"}
    doc = {k: v for k, v in invoice.document.items() if k not in hidden}
    doc["object"] = "invoice"
    doc["billing_reason"] = billing_reason(invoice)
    doc["revision"] = invoice.rev
    flagged = unbillable.flagged_lines(doc.get("lines") or [])
    if flagged:  # lines billed 0 because their usage cannot be billed (docs/billing.md)
        doc["unbillable_lines"] = flagged
    for key in EXTRA_TOTALS:  # stored only on invoices with a discount or a tax (document.invoice_totals)
        doc.setdefault(key, 0)
    doc.setdefault("grant_restorations", [])  # stored only on an invoice that gave grants credit back
    if "tax_rates" in doc:  # the rates that tax one of its lines (docs/billing.md, "Taxes")
        doc["tax_rates"] = taxing_rates(doc)
    # what it received and what is left, also before a first payment records them (docs/stripe.md)
    paid = paid_level(invoice)
    doc["amount_paid_minor"] = paid
    doc["amount_remaining_minor"] = 0 if invoice.status == "void" else max(amount_due(invoice) - paid, 0)
    return doc


def taxing_rates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored rate snapshots (``tax_rates``: every rate in force for the customer when the invoice was
    billed, which a draft's re-rating and a correction of it tax with) that tax one of its lines: a rate
    of another plan, or one no line bears, is not the invoice's to show."""
    used = {
        str(part.get("tax_rate_id"))
        for line in doc.get("lines") or []
        for part in (line.get("tax") or {}).get("rates") or []
    }
    return [rate for rate in doc.get("tax_rates") or [] if str(rate.get("id")) in used]


# why each kind of invoice was issued, in the words Stripe's ``billing_reason`` uses
BILLING_REASONS = {
    "opening": "subscription_create",
    "usage": "subscription_cycle",
    "threshold": "subscription_threshold",
    "advance": "subscription_update",
}


def billing_reason(invoice: Invoice) -> str:
    """Why the invoice was issued: a subscription's start (``subscription_create``), its period's end
    (``subscription_cycle``), a threshold crossed (``subscription_threshold``), a level change billed in
    advance during the period (``subscription_update``: pay-in-advance charges), anything else an
    operator or a rule made (``manual``: top-ups, one-off charges, corrections, credit notes)."""
    return BILLING_REASONS.get(invoice.kind or "", "manual")


def explain(
    invoice: Invoice, voided: VoidedLookup | None = None, since: Since | None = None
) -> dict[str, Any]:
    """Per line: meter, aggregate, hours and events behind it, price version and tiers, credits applied.
    With ``voided`` (the customer's voided events in a period), an adjustment line also cites the voids
    and amends of its period and meter its difference came from (``voided_events``): recorded before the
    invoice was made and, with ``since``, after the line's previous difference was recorded.

    Example:
        >>> from neruba.dal.invoices import invoice_record
        >>> explain(invoice_record({"id": "in_1", "lines": [], "applications": []}))["lines"]
        []
    """
    by_line: dict[str, list[CreditApplication]] = {}
    for application in invoice.applications:
        by_line.setdefault(application.line_id, []).append(application)
    lines = []
    documents = [record.document for record in invoice.lines]
    for record in invoice.lines:
        line = record.document
        source = line.get("source") or {}
        applied = by_line.get(record.line_id, [])
        lines.append(
            {
                "line_id": line["line_id"],
                "kind": record.kind,
                "description": record.description,
                "meter_code": line.get("meter_code"),
                "group": line.get("group") or {},
                "aggregate": {"aggregation": source.get("aggregation"), "quantity": line.get("quantity")},
                "hours": source.get("hours"),
                "events": source.get("events"),
                **(adjustment_figures(line) if record.kind == "adjustment" else {}),
                **(one_off_figures(line) if record.kind == "one_off" else {}),
                **(advance_figures(line, invoice.id) if record.kind == "advance" else {}),
                **(threshold_figures(line) if "threshold" in (line.get("source") or {}) else {}),
                "price": {
                    "plan_code": line.get("plan_code"),
                    "plan_version": line.get("plan_version"),
                    "unit_price": line.get("unit_price"),
                    "tiers": line.get("tiers") or [],
                },
                "amount_minor": line.get("amount_minor"),
                "credits_applied": [
                    {"grant_id": a.grant_id, "amount_minor": a.amount_minor} for a in applied
                ],
                "credits_applied_minor": sum(a.amount_minor for a in applied),
                "references": line.get("references"),
                **({"intervals": source["intervals"]} if source.get("intervals") else {}),
                **({"intervals_more": source["intervals_more"]} if source.get("intervals_more") else {}),
                **_original(line),
                **_credited(invoice, record.line_id),
                **explain_figures(line, documents),
                **(_voids(invoice, line, voided, since) if voided and record.kind == "adjustment" else {}),
            }
        )
    doc = invoice.document
    return {
        "object": "invoice_explanation",
        "invoice_id": invoice.id,
        "number": invoice.number,
        "status": doc.get("status"),
        "period_start": doc.get("period_start"),
        "period_end": doc.get("period_end"),
        "subtotal_minor": doc.get("subtotal_minor"),
        **{key: int(doc.get(key) or 0) for key in EXTRA_TOTALS},
        "credits_applied_minor": doc.get("credits_applied_minor"),
        "total_minor": doc.get("total_minor"),
        "corrects": doc.get("corrects"),
        "billing_reason": billing_reason(invoice),
        "threshold": doc.get("threshold"),
        "lines": lines,
    }


def _voids(
    invoice: Invoice, line: dict[str, Any], voided: VoidedLookup, since: Since | None
) -> dict[str, Any]:
    """The voided or amended events of the corrected period and meter the line's difference came from."""
    if not (line.get("period_start") and line.get("period_end") and line.get("meter_code")):
        return {}
    made = invoice.document.get("created_at")
    after = since(line) if since else None
    return {
        "voided_events": cited_voids(invoice.customer_id, line, str(made) if made else None, voided, after)
    }


def cited_voids(
    customer_id: str, line: dict[str, Any], made: str | None, voided: VoidedLookup, since: str | None = None
) -> list[dict[str, Any]]:
    """The events of an adjustment ``line``'s corrected period and meter voided or amended before
    ``made`` (the invoice or credit note that carries the adjustment; any time when None) and after
    ``since`` (when the line's previous difference was recorded, or the corrected invoice made: a void
    before that is in an earlier difference, or was never billed; any time when None)."""
    from neruba.timefmt import parse_ts

    start, end = line.get("period_start"), line.get("period_end")
    if not (start and end and line.get("meter_code")):
        return []
    cited = []
    for entry in voided(customer_id, ts(parse_ts(str(start))), ts(parse_ts(str(end)))):
        at = str(entry.record.get("at") or "")
        if entry.meter_code != line["meter_code"] or (made and parse_ts(at) > parse_ts(made)):
            continue
        if since and parse_ts(at) <= parse_ts(since):
            continue
        keys = ("kind", "reason", "ticket", "at", "amended_by")
        cited.append(
            {"transaction_id": entry.transaction_id, "timestamp": entry.timestamp}
            | {key: entry.record.get(key) for key in keys}
        )
    return cited


def _credited(invoice: Invoice, line_id: str) -> dict[str, Any]:
    """What credit notes took from the line (docs/billing.md, "Credit notes"), with the tax they gave
    back per rate on a taxed line; nothing when none did."""
    taken = (invoice.document.get("line_credits") or {}).get(line_id)
    if not taken:
        return {}
    shown = {"amount_minor": int(taken["amount_minor"]), "quantity": taken.get("quantity")}
    if taken.get("tax"):
        shown["tax"] = {str(k): int(v) for k, v in taken["tax"].items()}
    return {"credited": shown}


def adjustment_figures(line: dict[str, Any]) -> dict[str, Any]:
    """An adjustment line's own figures for explain: ``hours`` and ``events`` are the difference between
    the re-rating and what was billed (None when the line does not record them), and ``adjustment``
    holds ``billed``, ``rerated`` and ``difference`` (the line's quantity and amount)."""
    source = line.get("source") or {}
    billed, rerated = source.get("billed"), source.get("rerated")
    if not (isinstance(billed, dict) and isinstance(rerated, dict)):
        return {"hours": None, "events": None, "adjustment": None}
    diff = {
        name: int(rerated[name]) - int(billed[name])
        if rerated.get(name) is not None and billed.get(name) is not None
        else None
        for name in ("hours", "events")
    }
    difference = {"quantity": line.get("quantity"), "amount_minor": line.get("amount_minor"), **diff}
    found: dict[str, Any] = {"adjustment": {"billed": billed, "rerated": rerated, "difference": difference}}
    if isinstance(source.get("backfill"), dict):  # written by a backfill's commit (logic.billing.backfills)
        found["backfill"] = source["backfill"]
    if source.get("backfills"):  # the backfills whose events it carries (logic.billing.correction_sources)
        found["backfills"] = [{"revert": False, **part} for part in source["backfills"]]
        if source.get("other_minor"):
            found["other_minor"] = source["other_minor"]
    return {**diff, **found}


def advance_figures(line: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """An advance line's event, price and ledger posting for explain (``logic.billing.advance``)."""
    from neruba.logic.billing.advance_lines import figures

    return figures(line, invoice_id)


def one_off_figures(line: dict[str, Any]) -> dict[str, Any]:
    """A one-off line's charge for explain: its id, the operator's reason and ticket, its metadata."""
    source = line.get("source") or {}
    keys = ("one_off_charge_id", "reason", "ticket", "metadata", "created_at")
    return {"one_off": {key: source.get(key) for key in keys}}


def _original(line: dict[str, Any]) -> dict[str, Any]:
    """For an adjustment line: the finalized invoice and line it corrects (its quantity and amount are
    the adjustment's own units, not the original's)."""
    references = line.get("references") or {}
    if line.get("kind") != "adjustment" or not references.get("invoice_id"):
        return {}
    keys = ("invoice_id", "number", "line_id")
    return {"original": {key: references.get(key) for key in keys}}
