"""Void a finalized, unpaid invoice and issue the invoice that replaces it (docs/billing.md, "Void and
regenerate").

ONE TransactWriteItems writes:

- the old invoice ``void`` with ``replaced_by`` (conditional: the status read, nothing paid, no credit
  note), and the void posting (guard ``void:{id}``): Dr ``revenue``, Cr ``receivable`` its total, so its
  share of the receivable is 0;
- the replacement (id from ``regenerate:{old id}``: one per voided invoice), a draft due now with
  ``regenerated_from``: the same lines and credit applications (``same_lines``: the credit already spent
  stays spent, carried by the replacement), or lines rated again from the usage stored now
  (``recompute``; usage and opening invoices only, refused when credit was applied); the replacement's
  Cr ``revenue``, Dr ``receivable`` its total is part of the void posting (one posting, since both move
  the same balance items);
- ``invoice.created`` of the replacement, ``invoice.voided`` of the old one, the audit record and the
  Idempotency-Key record.

Then the replacement is finalized (the next ``INV`` number) and sent to Stripe sync, as correction
invoices are; a retry, or the next scheduler run, finishes that if the process stopped before. The void
itself is sent to Stripe sync too (``{"void_invoice_id": ...}``, ``logic.stripe.void_sync``: the Stripe
invoice is voided, deleted while a draft, or credited when Stripe has it paid); the void's transaction
marks it owed (``logic.billing.sync_due``), so a process stopping before the send leaves it to the
scheduler or the sweep, and a retry of the request sends it again until it is done.

Late events for the voided window are checked against the replacement (the late-event check follows
``replaced_by``). An invoice with adjustments recorded against it is refused: those differences were
billed elsewhere already.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.domain.ledger import Entry, Posting, credit, debit
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing.discounts import revised
from neruba.logic.billing.document import CARRIED_KINDS, invoice_document, invoice_event
from neruba.logic.billing.invoices import get_invoice, public
from neruba.logic.stripe.checks import paid_level
from neruba.timefmt import iso, parse_ts, ts

if TYPE_CHECKING:
    from neruba.dal.billing import Adjustment
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.context import Billing
    from neruba.models.billing import InvoiceVoid

SCOPE = "invoice-void"
VOIDABLE_KINDS = ("usage", "opening", "one_off")
NOT_VOIDABLE = {  # why another kind is not voided, and what to do instead
    "correction": "it bills differences of another invoice; credit it with a credit note instead",
    "credit_note": "it gives back differences of another invoice; a later rerun corrects it",
    "topup": "it bought credit, which a void of its grant takes back",
}
RATED_KINDS = ("usage", "opening")


def _refuse(ctx: Billing, invoice: Invoice, body: InvoiceVoid) -> None:
    if invoice.status == "draft":
        raise ConflictError(
            "A draft is not voided: it can still be recomputed.", code="invoice_not_finalized"
        )
    if invoice.status == "void":
        raise ConflictError(f"Invoice {invoice.id} is already void.", code="invoice_void")
    if invoice.document.get("cn_rev"):
        raise ConflictError(
            "The invoice has credit notes; credit the rest with a credit note instead.",
            code="invoice_has_credit_notes",
        )
    if invoice.status == "paid" or paid_level(invoice) > 0:
        raise ConflictError(
            "The invoice has received a payment; credit it with a credit note instead.",
            code="invoice_has_payments",
        )
    if invoice.kind not in VOIDABLE_KINDS:
        why = NOT_VOIDABLE.get(str(invoice.kind), "credit it with a credit note instead")
        raise ConflictError(f"A {invoice.kind} invoice is not voided: {why}.", code="invoice_not_voidable")
    if body.regenerate == "recompute" and (invoice.kind not in RATED_KINDS or invoice.applications):
        raise ConflictError(
            "Only a usage or opening invoice without credit applied can be recomputed; use same_lines.",
            code="invoice_not_recomputable",
        )
    adjustments = ctx.billing.adjustments(invoice.subscription_id) if invoice.subscription_id else []
    mine = [a for a in adjustments if a.original_invoice_id == invoice.id]
    if mine:
        details = _carriers(ctx, invoice, mine)
        raise ConflictError(_adjustments_message(details), code="invoice_has_adjustments", details=details)


def _carriers(ctx: Billing, invoice: Invoice, adjustments: list[Adjustment]) -> list[dict[str, Any]]:
    """Per late difference of ``invoice``, what carries it (docs/billing.md, "Void and regenerate"):
    ``carried_by`` the invoice that billed it, the credit note that settled it, or, for a difference
    applied to the invoice itself, the write that gave it back to the credit grants that paid the line
    (a correction the grants took whole, a window or a revision: ``grant_restores.source_of``, in the
    order the grants' restorations of that line were made); null while pending, and for a difference
    nothing carries (a credit note or refund had given the line back already: the cap)."""
    from neruba.logic.billing.grant_restores import source_of

    given: dict[str, list[str]] = {}  # per line of the invoice, the grants' restorations' sources in order
    if any(a.applied_to == invoice.id for a in adjustments):
        sources = [s for r in ctx.ledger.restored(invoice.id).values() for s in r.sources]
        for source in sorted(sources, key=lambda s: str(s.get("at") or "")):
            for line_id in source.get("lines") or {}:
                named = given.setdefault(line_id, [])
                if str(source["source_id"]) not in named:
                    named.append(str(source["source_id"]))
    out = []
    for adjustment in sorted(adjustments, key=lambda a: a.key):
        carrier: dict[str, Any] | None = None
        target = adjustment.applied_to if adjustment.status == "applied" else None
        if target == invoice.id:
            left = given.get(adjustment.original_line_id) or []
            if left:
                typed = source_of(ctx, left.pop(0))
                carrier = {"type": typed["type"], "id": typed["id"], "invoice_id": typed["invoice_id"]}
        elif target and target.startswith("cn_"):  # a correction after the end credited another invoice
            carrier = {"type": "credit_note", "id": target, "invoice_id": None}
        elif target:
            carrier = {"type": "invoice", "id": target, "invoice_id": target}
        out.append({"adjustment": adjustment.key, "line_id": adjustment.original_line_id,
                    "status": adjustment.status, "carried_by": carrier})  # fmt: skip
    return out


def _adjustments_message(details: list[dict[str, Any]]) -> str:
    """What became of the invoice's late differences, as it is: pending, billed, settled, given back to
    the credit grants, or taken back already (some of each)."""
    carriers = [d["carried_by"] for d in details if d["carried_by"]]
    billed = sorted({c["id"] for c in carriers if c["type"] == "invoice"})
    settled = sorted({c["id"] for c in carriers if c["type"] == "credit_note"})
    granted = sorted({f"{c['type'].replace('_', ' ')} {c['id']}" for c in carriers
                      if c["type"] not in ("invoice", "credit_note")})  # fmt: skip
    pending = [d for d in details if d["status"] == "pending"]
    held = [d for d in details if d["status"] == "applied" and not d["carried_by"]]
    parts: list[str] = []
    if billed:
        parts.append("billed on invoice " + ", ".join(billed))
    if settled:
        parts.append("settled by credit note " + ", ".join(settled))
    if granted:
        parts.append("given back to the credit grants that paid them by " + ", ".join(granted))
    if held:
        parts.append(f"{len(held)} carried by nothing (a credit note or refund had given them back already)")
    if pending:
        parts.append(f"{len(pending)} pending for the subscription's next invoice")
    return f"Late differences of this invoice were recorded ({'; '.join(parts)}); credit it instead."


def _lines(
    ctx: Billing, invoice: Invoice, body: InvoiceVoid, new_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The replacement's lines and the moves of its discounts' period records (none for the same lines:
    the replacement takes what the voided invoice took)."""
    if body.regenerate == "same_lines":
        return [dict(line.document) for line in invoice.lines], []
    from neruba.logic.billing import unbillable
    from neruba.logic.billing.deltas import line_deltas, rated_lines

    subscription = ctx.subscription(str(invoice.subscription_id)).timeline
    rate = ctx.rate_opening if invoice.kind == "opening" else ctx.rate_window
    start, end = parse_ts(invoice.period_start), parse_ts(invoice.period_end)
    rerated = rated_lines(rate(subscription, start, end))
    # the replacement would drop what a line billed for a re-rating of 0 as unbillable: refused (409)
    unbillable.refuse(unbillable.split(line_deltas(invoice, rerated, []))[1])
    carried = [dict(line.document) for line in invoice.lines if line.kind in CARRIED_KINDS]
    # the discounts and rates the voided invoice stored apply again (no discount period counted again);
    # what the voided invoice took of a period's fixed amount is given back to the replacement
    lines = [*rerated.values(), *carried]
    return revised(ctx.billing.discounts, invoice.document, lines, new_id)


def _tax_of(doc: dict[str, Any]) -> int:
    return int(doc.get("tax_minor") or 0) + int(doc.get("tax_included_minor") or 0)


def _reverse(total: int, tax: int, sign: int) -> list[Entry]:
    """An invoice's total out of (sign 1) or into (sign -1) receivable, its tax out of or into
    ``tax_payable`` and the rest out of or into ``revenue`` (a side per account, by the amount's sign)."""
    entries = []
    for account, amount in (("receivable", -sign * total), ("tax_payable", sign * tax),
                            ("revenue", sign * (total - tax))):  # fmt: skip
        if amount:
            entries.append(debit(account, amount) if amount > 0 else credit(account, -amount))
    return entries


def void_posting(invoice: Invoice, replacement: dict[str, Any], at: datetime, actor: str) -> Posting | None:
    """One posting for both invoices (their balance items may be written once per transaction): Cr
    receivable the voided invoice's total, Dr ``tax_payable`` its tax and Dr revenue the rest; the
    replacement's the other way round (credit applied stays spent, carried by the replacement).
    ``receivable_by_invoice`` in its metadata says which invoice each receivable movement belongs to.
    None when both are 0."""
    old, new = max(invoice.total_minor, 0), max(int(replacement["total_minor"]), 0)
    entries = [*_reverse(old, _tax_of(invoice.document), 1), *_reverse(new, _tax_of(replacement), -1)]
    if not entries:
        return None
    return Posting.build(
        idempotency_key=f"void:{invoice.id}",
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        entries=entries,
        reason="invoice_void",
        source="invoice",
        source_id=invoice.id,
        actor=actor,
        at=at,
        metadata={
            "invoice_id": invoice.id,
            "replaced_by": replacement["id"],
            "receivable_by_invoice": {invoice.id: -old, str(replacement["id"]): new},
        },
    )


def _replacement(
    ctx: Billing, invoice: Invoice, body: InvoiceVoid, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    at = ts(now)
    kept: dict[str, Any] = {
        k: invoice.document[k]
        for k in ("window", "one_off_charge_id", "discounts", "tax_rates", "tax_provider", "tax_location")
        if k in invoice.document
    }
    new_id = "in_" + idempotency.digest(f"regenerate:{invoice.id}", 24)
    lines, uses = _lines(ctx, invoice, body, new_id)
    return invoice_document(
        invoice_id=new_id,
        customer_id=invoice.customer_id,
        subscription_id=invoice.subscription_id,
        currency=invoice.currency,
        kind=str(invoice.kind),
        seq=invoice.seq,
        details={**kept, "regenerated_from": {"invoice_id": invoice.id, "number": invoice.number}},
        period=(invoice.period_start, invoice.period_end),
        lines=lines,
        applications=list(invoice.applications) if body.regenerate == "same_lines" else [],
        created_at=at,
        finalize_at=at,
    ), uses


def _charges_moved(ctx: Billing, invoice: Invoice, replacement: dict[str, Any]) -> list[dict[str, Any]]:
    """The one-off charges the replacement carries now name it (``invoice_id``: the invoice billing them,
    where a credit note corrects them), each conditional on still naming the voided invoice."""
    from neruba.logic.billing.one_off import charges
    from neruba.logic.billing.one_off_lines import KIND

    return [
        charges(ctx).replaced_item(
            invoice.customer_id, str(line["source"]["one_off_charge_id"]), invoice.id, str(replacement["id"])
        )
        for line in replacement["lines"]
        if line.get("kind") == KIND and (line.get("source") or {}).get("one_off_charge_id")
    ]


def void_invoice(
    ctx: Billing,
    invoice_id: str,
    body: InvoiceVoid,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/invoices/{id}/void``: the voided invoice and its replacement (the same on a retry)."""
    from neruba.logic.billing.corrections import issue_now

    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    fp = idempotency.fingerprint(body.model_dump(mode="json"), invoice_id)
    replayed = idempotency.replay(ctx.billing, SCOPE, key, fp)
    if replayed is None:
        invoice = get_invoice(ctx.invoices, invoice_id)
        _refuse(ctx, invoice, body)
        doc, uses = _replacement(ctx, invoice, body, now)
        new_id = str(doc["id"])
        book = void_posting(invoice, doc, now, actor)
        audit = idempotency.audit_put(
            bootstrap.audit(), idempotency.Actor(actor, request_id), "invoice.void", invoice.id,
            customer_id=invoice.customer_id, reason=body.reason, ticket=body.ticket, at=now,
            before={"status": invoice.status, "total_minor": invoice.total_minor},
            after={"status": "void", "replaced_by": new_id, "regenerate": body.regenerate},
            idempotency_key=key,
        )  # fmt: skip
        replayed = {"object": "invoice_void", "invoice_id": invoice.id, "replaced_by": new_id}
        actions = [
            *(ctx.ledger.posting_items(book) if book else []),
            ctx.invoices.void_item(invoice, voided_at=ts(now), replaced_by=new_id),
            ctx.invoices.put_item(doc, now),
            invoice_event("invoice.created", doc, now),
            invoice_event(
                "invoice.voided",
                {**invoice.document, "status": "void"},
                now,
                voided_at=iso(now),
                replaced_by=new_id,
            ),
            *idempotency.record_items(ctx.billing, audit, SCOPE, key, fp, replayed),
            *uses,
            *_charges_moved(ctx, invoice, doc),
        ]
        try:
            commit(Transaction(actions))
        except Cancelled as exc:
            again = idempotency.replay(ctx.billing, SCOPE, key, fp)
            if again is None:
                raise ConflictError(
                    "The invoice changed meanwhile; try again.", code="invoice_conflict"
                ) from exc
            replayed = again
    issue_now(ctx, str(replayed["replaced_by"]), now)  # finalize and send (once: both conditional)
    send_void(ctx, str(replayed["invoice_id"]))
    return answer(ctx, replayed)


def send_void(ctx: Billing, invoice_id: str) -> None:
    """Ask Stripe sync to take the voided invoice out of Stripe (``logic.stripe.void_sync``), until it has:
    a retry of the request sends again; the sync does each Stripe call once."""
    from neruba.logic.billing import sync_due
    from neruba.logic.stripe.void_sync import DONE
    from neruba.observability import logger

    stored = ctx.invoices.get(invoice_id)
    if (
        not ctx.sync_queue_url
        or stored is None
        or ((stored.stripe or {}).get("void") or {}).get("status") in DONE
    ):
        return
    if not sync_due.send_void(ctx, invoice_id):
        logger.error(
            "void not sent to stripe sync: its marker stays, the scheduler sends it",
            extra={"invoice_id": invoice_id},
        )


def answer(ctx: Billing, stored: dict[str, Any]) -> dict[str, Any]:
    voided = get_invoice(ctx.invoices, str(stored["invoice_id"]))
    replacement = get_invoice(ctx.invoices, str(stored["replaced_by"]))
    return {"object": "invoice_void", "invoice": public(voided), "replacement": public(replacement)}
