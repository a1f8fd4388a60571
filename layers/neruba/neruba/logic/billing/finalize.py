"""Drafts become finalized invoices: re-rated once more after the grace period, numbered without gaps,
then handed to Stripe sync.

- A draft is due for finalization at ``created_at + billing_grace_seconds`` (sparse index ``fin#n``).
- Finalizing first re-rates the window; if late events changed a line, the draft is revised (a new
  ``rev``) and the difference is posted to the ledger as revision ``rev`` of the invoice's posting. A
  revision below zero settles the draft's negative adjustments by credit notes in the same transaction,
  as its window would have (``correction_credits.settled_below_zero``; docs/billing.md, "A draft revised
  below zero when finalized").
- The number comes from the ``SEQ#INV`` counter, moved in the same transaction as the status change
  (condition: the counter still holds the value read, the invoice is still this draft revision), so a
  number is taken exactly when an invoice is finalized: no gaps, no duplicates. Only the scheduler that
  holds the lock finalizes, and every one of these transactions carries its fencing check.
- A finalized invoice stays in the ``sync#n`` index until its ``{"invoice_id"}`` message is sent to
  StripeSyncQueue; a crash before the send leaves it there for the next run (a re-send is harmless).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.billing import DUE_SHARDS, TransactionCancelledError
from neruba.dal.locks import LockLostError
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.logic.billing import sync_due, unbillable
from neruba.logic.billing.context import Billing, PostingRequest
from neruba.logic.billing.deltas import line_deltas, rated_lines
from neruba.logic.billing.discounts import revised
from neruba.logic.billing.document import (
    CARRIED_KINDS,
    DERIVED_KINDS,
    EVENT_KEYS,
    EXTRA_TOTALS,
    AmountTooLargeError,
    event_totals,
    invoice_event,
    invoice_totals,
)
from neruba.timefmt import iso, parse_ts

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice
    from neruba.logic.billing.correction_credits import Settlement

Fence = Callable[[], list[dict[str, Any]]]
# invoices without a window of usage to rate
UNRATED_KINDS = ("topup", "correction", "credit_note", "one_off", "advance", "threshold")


def no_fence() -> list[dict[str, Any]]:
    """Writes that do not depend on holding the scheduler's lock (operator actions)."""
    return []


def fenced(actions: list[dict[str, Any]], fence: Fence) -> None:
    """Run ``actions`` with the fence appended; LockLostError when the fence is what failed."""
    try:
        commit(Transaction(actions).extend(fence(), name="fence"))
    except Cancelled as exc:
        if exc.failed("fence"):
            raise LockLostError("a newer scheduler holds the billing lock") from exc
        raise


def recompute_draft(
    ctx: Billing, invoice: Invoice, now: datetime
) -> tuple[Invoice | None, list[dict[str, Any]]]:
    """Re-rate a draft's window; (revised invoice, its actions) or (None, []) if nothing changed.

    A ``topup`` invoice, a correction invoice or a credit note has no window to rate: it is finalized as
    created, and so is the replacement of a voided invoice (``regenerated_from``: its lines are the
    voided invoice's, or were rated when it was made; late usage of its window is the look-back's). A
    revision that would bring a line to 0 because it is unbillable raises ``unbillable.WithheldError``
    (``logic.billing.unbillable``): the draft is not revised."""
    from neruba.logic.billing.grant_restores import usable_again
    from neruba.logic.billing.revision_credit import revised_credit

    if invoice.kind in UNRATED_KINDS or invoice.document.get("regenerated_from"):
        return None, []
    subscription = ctx.subscription(str(invoice.subscription_id)).timeline
    rate = ctx.rate_opening if invoice.kind == "opening" else ctx.rate_window
    rerated = rated_lines(rate(subscription, parse_ts(invoice.period_start), parse_ts(invoice.period_end)))
    held = {line.line_id: line for line in invoice.lines if line.kind not in (*CARRIED_KINDS, *DERIVED_KINDS)}
    same = set(held) == set(rerated) and all(
        (held[k].quantity, held[k].amount_minor) == (rerated[k]["quantity"], int(rerated[k]["amount_minor"]))
        for k in held
    )
    if same:
        return None, []
    unbillable.refuse(unbillable.split(line_deltas(invoice, rerated, []))[1])
    carried = [line.document for line in invoice.lines if line.kind in CARRIED_KINDS]
    # the discounts and rates it stored, each discount's period record moved by what it now takes
    lines, uses = revised(ctx.billing.discounts, invoice.document, [*rerated.values(), *carried], invoice.id)
    settled, moves = _settled(ctx, invoice, lines, carried, now)
    if settled is not None:  # revised below zero: its negative adjustments credited as a window's are
        others = [line for line in carried if line.get("kind") != "adjustment"]
        lines, uses = revised(
            ctx.billing.discounts, invoice.document, [*rerated.values(), *others, *settled.lines], invoice.id
        )
        uses += [*settled.actions, *moves]
    rev = invoice.rev
    # the credit usable now pays what the revision adds; what it takes away goes back to the grants
    back = usable_again(settled.restored) if settled is not None else None
    credit = revised_credit(ctx, invoice, lines, rev + 1, now, back)
    totals = invoice_totals(lines, credit.applied_minor if credit else invoice.credits_applied_minor)
    subtotal = totals["subtotal_minor"]
    kept = {k: v for k, v in invoice.document.items() if k not in EXTRA_TOTALS}  # stored when not all 0
    doc = {**kept, "lines": lines, **totals, "revised_at": iso(now)}
    if credit is not None:
        doc["applications"] = credit.applications
    if settled is not None and settled.restored:  # which grants the revision gave back to
        doc["grant_restorations"] = [*(kept.get("grant_restorations") or []), *settled.restored]
    before = {"subtotal_minor": invoice.subtotal_minor, "total_minor": invoice.total_minor}
    actions = [
        ctx.invoices.revise_item(doc, rev),
        invoice_event("invoice.updated", doc, now, revised_at=iso(now), previous_attributes=before),
        *uses,
    ]
    delta = subtotal - invoice.subtotal_minor
    tax = {k: int(totals.get(k) or 0) - int(invoice.document.get(k) or 0) for k in EXTRA_TOTALS[1:]}
    if delta or any(tax.values()):  # the change, posted as this revision (tax included)
        request = PostingRequest(
            invoice.customer_id, invoice.id, invoice.currency, delta, [], now, rev + 1, **tax
        )
        actions += ctx.invoice_posting_items(request)
    actions += credit.actions if credit else []
    if settled is not None or credit is not None:  # the postings move the same balances: one move each
        actions = ctx.ledger.combine_grant_moves(ctx.ledger.combine_balance_moves(actions))
    from neruba.dal.invoices import invoice_record

    return invoice_record({**doc, "rev": rev + 1}), actions


def _settled(ctx: Billing, invoice: Invoice, lines: list[dict[str, Any]], carried: list[dict[str, Any]],
             now: datetime) -> tuple[Settlement | None, list[dict[str, Any]]]:  # fmt: skip
    """A draft revised below zero settles its negative adjustments as its window would have
    (``correction_credits.settled_below_zero``): the settlement and the moves of the adjustment records
    it credited from the draft to the notes. A draft settled when created no longer carries what its
    notes took, so nothing is credited twice."""
    from neruba.logic.billing.correction_credits import settled_below_zero
    from neruba.logic.billing.discounts import CORRECTED
    from neruba.logic.billing.grant_restores import REVISION

    adjustments = [  # as the window found them: unpriced (a corrected line keeps its own tax)
        line if line.get(CORRECTED) else {k: v for k, v in line.items() if k not in ("tax", "gross_minor")}
        for line in carried
        if line.get("kind") == "adjustment"
    ]
    source = f"{invoice.id}{REVISION}{invoice.rev + 1}"  # the revision carries what grants take back
    settled = settled_below_zero(ctx, invoice.customer_id, invoice.id, lines, adjustments, now, source)
    if settled is None or not invoice.subscription_id:
        return None, []
    from neruba.logic.billing.adjustment_terms import adjustment_record

    kept = {str(line["line_id"]) for line in settled.lines}
    moves = [
        ctx.billing.adjustment_move_item(
            invoice.subscription_id, adjustment_record(line, "applied", None, now).key, invoice.id, to
        )
        for line in adjustments
        if str(line["line_id"]) not in kept
        and (to := settled.credited_by.get(str(line["line_id"]), invoice.id)) != invoice.id
    ]
    return settled, moves


def finalize_invoice(ctx: Billing, invoice: Invoice, now: datetime, fence: Fence) -> Invoice | None:
    """Re-rate, then number and finalize one draft; None if it was not a draft any more."""
    if invoice.status != "draft":
        return None
    try:
        revised, actions = recompute_draft(ctx, invoice, now)
    except AmountTooLargeError as exc:  # finalized as created: the late usage is left to the look-back
        from neruba.observability import logger, metrics

        metrics.add_metric(name="DraftRevisionsOverLineLimit", unit="Count", value=1)
        logger.error("draft not revised: an amount over the line limit", extra={**invoice_log_ids(invoice),
                     "error": exc.message, "param": exc.param})  # fmt: skip
        revised, actions = None, []
    except unbillable.WithheldError as exc:  # finalized as created: the billed usage is not dropped
        unbillable.report(exc.withheld, "finalize", **invoice_log_ids(invoice))
        revised, actions = None, []
    if revised is not None:
        try:
            fenced(actions, fence)
        except TransactionCancelledError:
            return None  # changed meanwhile (an operator rerun): the next run sees the new revision
        sync_due.send_written(ctx, actions)  # the credit notes the revision issued, if it settled
        invoice = revised
    from neruba.logic.webhooks.outbox import event_action

    event = event_action("invoice.finalized", invoice.customer_id, finalized_event(invoice, now), now)
    try:
        fenced([*ctx.invoices.finalize_items(invoice, now), event], fence)
    except TransactionCancelledError:
        return None
    return ctx.invoices.get(invoice.id)


def finalized_event(invoice: Invoice, now: datetime) -> dict[str, Any]:
    """What the ``invoice.finalized`` webhook says (its number is read with GET /v1/invoices/{id})."""
    return {
        **{k: invoice.document.get(k) for k in EVENT_KEYS},
        **event_totals(invoice.document),
        "status": "finalized",
        "finalized_at": iso(now),
    }


def finalize_due(ctx: Billing, now: datetime, fence: Fence, customer_id: str | None = None) -> list[str]:
    """Finalize every draft whose grace has passed (only ``customer_id``'s when a run is scoped to one
    customer), oldest first (numbers follow creation order, then the windows' order, so a catch-up of
    several periods is numbered period by period)."""
    drafts = [draft for shard in range(DUE_SHARDS) for draft in ctx.invoices.drafts_due(shard, now)]
    drafts = [d for d in drafts if customer_id is None or d.customer_id == customer_id]
    from neruba.observability import logger

    finalized = []
    for draft in sorted(drafts, key=_creation_order):
        done = finalize_invoice(ctx, draft, now, fence)
        if done is not None:
            finalized.append(draft.id)
            logger.info("invoice finalized", extra={**invoice_log_ids(draft), "number": done.number})
    return finalized


def _creation_order(draft: Invoice) -> tuple[str, str, int, str]:
    return (str(draft.created_at), draft.period_start, draft.seq, draft.id)


def invoice_log_ids(invoice: Invoice) -> dict[str, Any]:
    """The ids a log line about an invoice carries."""
    return {
        "invoice_id": invoice.id,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
    }


def send_pending_syncs(ctx: Billing, now: datetime) -> int:
    """Send ``{"invoice_id"}`` to StripeSyncQueue per finalized invoice not yet sent; returns how many."""
    from neruba.dal.queue import send_batch
    from neruba.observability import logger

    sent = 0
    for shard in range(DUE_SHARDS):
        pending = list(ctx.invoices.sync_pending(shard, now))
        if not pending:
            continue
        messages = [(str(i), json.dumps({"invoice_id": inv.id})) for i, inv in enumerate(pending)]
        failed = set(send_batch(ctx.sync_queue_url, messages))
        for index, invoice in enumerate(pending):
            if str(index) not in failed:
                ctx.invoices.clear_sync_due(invoice.id)
                sent += 1
                logger.info("invoice sent to stripe sync", extra=invoice_log_ids(invoice))
            else:
                logger.warning(
                    "stripe sync message not sent; next run retries", extra=invoice_log_ids(invoice)
                )
    return sent
