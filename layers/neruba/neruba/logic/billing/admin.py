"""The operator actions on billing: trigger a run, rerun an invoice (reads: ``logic.billing.invoices``).

Operator actions are audited (actor, action, reason, ticket, before/after, time) in the same transaction as
what they write, and take an ``Idempotency-Key``: a retry with the same key returns the first result and
writes nothing; the same key with another body is a 409 ``idempotency_conflict``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing import correction_sources, correction_waits, sync_due, unbillable
from neruba.logic.billing.adjustment_terms import added_tax, adjustment_record
from neruba.logic.billing.context import Billing
from neruba.logic.billing.corrections import answer as correction_answer
from neruba.logic.billing.corrections import (
    billing_ended,
    consumed,
    correction_invoice,
    issue_now,
    send_credit_notes,
)
from neruba.logic.billing.deltas import line_deltas, rated_lines
from neruba.logic.billing.document import CARRIED_KINDS, DERIVED_KINDS
from neruba.logic.billing.finalize import UNRATED_KINDS
from neruba.logic.billing.invoices import get_invoice, public
from neruba.models.billing import BillingRunRequest, RerunRequest
from neruba.timefmt import parse_ts


def trigger_run(
    ctx: Billing,
    body: BillingRunRequest,
    actor: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/billing-runs``: run the scheduler now (optionally for one customer or as of a time)."""
    from neruba.logic.billing.scheduler import RunOptions, run_billing

    now = now or datetime.now(UTC)
    request = body.model_dump(mode="json")
    fingerprint = idempotency.fingerprint(request, "billing-runs")
    replayed = idempotency.replay(ctx.billing, "billing-run", idempotency_key, fingerprint)
    if replayed is not None:
        return dict(replayed)
    at = body.at.astimezone(UTC) if body.at else None
    if at is not None and at > now:
        raise InvalidRequestError("A run cannot bill the future.", code="invalid_run_time", param="at")
    plans = ctx.plans
    if body.customer_id and plans.get_customer(body.customer_id) is None:
        raise NotFoundError(
            f"No customer {body.customer_id!r}.", code="customer_not_found", param="customer_id"
        )
    options = RunOptions(
        trigger="manual",
        customer_id=body.customer_id,
        at=at,
        backfill=body.backfill,
        actor=actor,
        reason=body.reason,
        clock=lambda: now,
    )
    run = run_billing(ctx, bootstrap.locks(), plans, options)
    if run.status == "skipped_locked":
        raise ConflictError(
            "Another billing run holds the lock; try again shortly.", code="billing_run_locked"
        )
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "billing_run.create",
        run.id,
        customer_id=body.customer_id,
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        after={"status": run.status, "enqueued": run.enqueued},
        idempotency_key=idempotency_key,
    )
    actions = idempotency.record_items(
        ctx.billing, audit, "billing-run", idempotency_key, fingerprint, run.document
    )
    commit(Transaction(actions))
    return run.document


def rerun_done(ctx: Billing, invoice_id: str, body: RerunRequest, idempotency_key: str) -> bool:
    """A rerun of ``invoice_id`` under this key and body was answered already (a repeat only reads)."""
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"), invoice_id)
    return idempotency.replay(ctx.billing, "invoice-rerun", idempotency_key, fingerprint) is not None


def rerun_invoice(
    ctx: Billing,
    invoice_id: str,
    body: RerunRequest,
    actor: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
    backfill_id: str | None = None,
    withhold: bool = False,
) -> dict[str, Any]:
    """Recompute a draft in place, or correct a finalized invoice.

    A difference against a line re-rated 0 as unbillable is never applied (``logic.billing.unbillable``):
    the rerun is refused with 409 ``correction_unbillable``, or with ``withhold`` (a backfill's own
    reruns, whose commit was checked before it began) applied without it and reported.

    Each adjustment line names the backfills whose events it carries, with their shares, and each
    backfill's part is recorded with the rerun (``logic.billing.correction_sources``): decided from the
    events, whoever runs the rerun; ``backfill_id`` (a backfill's own commit or revert) is always
    considered.

    A finalized invoice is never edited: the differences between its lines (plus earlier corrections) and
    a fresh rating become ``pending`` adjustment lines that the subscription's next invoice carries; when
    the subscription's billing has ended there is no next invoice, so they are billed at once on a
    correction invoice or credit note of their own (``logic.billing.corrections``).
    """
    from neruba.logic.billing.finalize import recompute_draft

    now = now or datetime.now(UTC)
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"), invoice_id)
    replayed = idempotency.replay(ctx.billing, "invoice-rerun", idempotency_key, fingerprint)
    if replayed is not None:
        _issue_correction(ctx, replayed, now)  # the first attempt may have stopped before issuing it
        return dict(replayed)
    invoice = get_invoice(ctx.invoices, invoice_id)
    from neruba.observability import logger

    logger.append_keys(customer_id=invoice.customer_id, subscription_id=invoice.subscription_id)
    if invoice.status == "void":
        raise ConflictError(  # a state the invoice reached: 409, as every action on a void invoice
            f"Invoice {invoice.id} is void; it cannot be recomputed (rerun its replacement).",
            code="invoice_void",
        )
    if invoice.kind in UNRATED_KINDS and invoice.status != "draft":
        raise InvalidRequestError(
            "A top-up, correction or one-off invoice has no usage to recompute (a correction: rerun the "
            "invoice it corrects).",
            code="invoice_not_rated",
        )
    actions: list[dict[str, Any]]
    correction: dict[str, Any] | None = None  # a correction after the end (its invoice, its credit)
    draft_gross = 0
    if invoice.status == "draft":
        try:
            revised, actions = recompute_draft(ctx, invoice, now)
        except unbillable.WithheldError as exc:
            if not withhold:
                raise
            unbillable.report(exc.withheld, "rerun", invoice_id=invoice_id)
            revised, actions = None, []
        after = revised or invoice
        draft_gross = _usage_amount(after) - _usage_amount(invoice)
        parts = _attribution(ctx, invoice, after, backfill_id) if revised else None
        result: dict[str, Any] = {
            "object": "invoice_rerun",
            "invoice_id": invoice_id,
            "action": "draft_recomputed" if revised else "unchanged",
            "invoice": public(after),
            "correction": None,
            "difference": _difference(
                after.subtotal_minor - invoice.subtotal_minor,
                int(after.document.get("tax_minor") or 0) - int(invoice.document.get("tax_minor") or 0),
            ),
        }
    else:
        subscription_id = str(invoice.subscription_id)
        subscription = ctx.subscription(subscription_id).timeline
        rate = ctx.rate_opening if invoice.kind == "opening" else ctx.rate_window
        rerated = rated_lines(
            rate(subscription, parse_ts(invoice.period_start), parse_ts(invoice.period_end))
        )
        deltas, withheld = unbillable.split(
            line_deltas(invoice, rerated, ctx.billing.adjustments_of(subscription_id, invoice.id))
        )
        if withhold:  # a backfill's own rerun, checked before its commit began: the rest is applied
            unbillable.report(withheld, "rerun", invoice_id=invoice_id)
        else:
            unbillable.refuse(withheld)
        parts = correction_sources.Attribution(ctx, invoice, rerated, backfill_id) if deltas else None
        if parts is not None:
            parts.name_lines(deltas)
        if billing_ended(ctx, subscription_id):
            # no next invoice will ever exist: bill the differences (and anything left pending) now
            correction, actions = correction_invoice(ctx, invoice, deltas, now, actor)
            # a difference the cap cuts to nothing (already given back) issues nothing: unchanged, its
            # adjustment records kept, applied to the corrected invoice
            issued = (
                correction
                if correction
                and (correction["invoice"] or correction["credit_notes"] or correction["grant_restorations"])
                else None
            )
            result = {
                "object": "invoice_rerun",
                "invoice_id": invoice_id,
                "action": "correction_invoiced" if issued else "unchanged",
                "invoice": public(invoice),
                "correction": correction_answer(issued) if issued else None,
                "difference": _difference(sum(int(d["amount_minor"]) for d in deltas), added_tax(deltas)),
            }
        else:
            actions = [
                ctx.billing.adjustment_put_item(subscription_id, adjustment_record(d, "pending", None, now))
                for d in deltas
            ]
            waits = _waiting(ctx, invoice.customer_id, subscription_id, deltas)
            actions += [ctx.billing.state_unchanged_item(subscription_id)] if deltas else []
            result = {
                "object": "invoice_rerun",
                "invoice_id": invoice_id,
                "action": "adjustment_pending" if deltas else "unchanged",
                "invoice": public(invoice),
                "correction": {
                    "type": "adjustment",
                    "applies_to": "the subscription's next invoice",
                    "lines": deltas,
                    "amount_minor": sum(int(d["amount_minor"]) for d in deltas),
                    "waiting": waits,
                }
                if deltas
                else None,
                "difference": _difference(sum(int(d["amount_minor"]) for d in deltas), added_tax(deltas)),
            }
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "invoice.rerun",
        invoice_id,
        customer_id=invoice.customer_id,
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        before={"subtotal_minor": invoice.subtotal_minor, "rev": invoice.rev},
        after={
            "action": result["action"],
            "grant_restorations": _restorations(invoice, result),
            **(parts.audited() if parts is not None else {}),
        },
        idempotency_key=idempotency_key,
    )
    actions += idempotency.record_items(
        ctx.billing, audit, "invoice-rerun", idempotency_key, fingerprint, result
    )
    if parts is not None:
        # one record per rerun: a keyed rerun writes once; one without a key is a rerun of its own
        rerun = idempotency.digest({"rerun": [invoice_id, idempotency_key or secrets.token_hex(16)]}, 16)
        actions += parts.items(ctx, rerun, result, draft_gross)
    try:
        commit(Transaction(actions))
    except Cancelled as exc:
        raise ConflictError("The invoice changed meanwhile; try again.", code="invoice_conflict") from exc
    if invoice.status == "draft":  # the credit notes a revision below zero issued (a correction's: below)
        sync_due.send_written(ctx, actions)
    elif result["action"] == "correction_invoiced":
        consumed(ctx, correction, actions, now)  # its credit applied: balance alerts, auto top-up
    _issue_correction(ctx, result, now)
    return result


def _restorations(invoice: Any, result: dict[str, Any]) -> list[dict[str, Any]]:
    """What the rerun gave back to the grants that paid the corrected lines (its audit record): the
    correction's after the end, or what the draft's revision added to the draft's."""
    if result.get("correction"):
        return [dict(r) for r in result["correction"].get("grant_restorations") or []]
    had = invoice.document.get("grant_restorations") or []
    return [dict(r) for r in (result["invoice"].get("grant_restorations") or []) if r not in had]


def _usage_amount(invoice: Any) -> int:
    """What the invoice's rated lines bill before discounts."""
    return sum(line.amount_minor for line in invoice.lines if line.kind == "usage")


def _attribution(
    ctx: Billing, invoice: Any, after: Any, backfill_id: str | None
) -> correction_sources.Attribution:
    """A recomputed draft's parts: its window as rated now (the rated lines it has after the recompute;
    its discount, tax and carried lines are no usage a backfill's events rate)."""
    rated = {
        line.line_id: dict(line.document)
        for line in after.lines
        if line.kind not in (*CARRIED_KINDS, *DERIVED_KINDS)
    }
    return correction_sources.Attribution(ctx, invoice, rated, backfill_id)


def _waiting(
    ctx: Billing, customer_id: str, subscription_id: str, deltas: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Which of a rerun's pending differences the next window will hold for an open dispute
    (``correction_waits.waiting``, netted with those pending already: a rerun adding to a difference
    held is held too)."""
    if not deltas:
        return []
    pending = [a.line for a in ctx.billing.pending_adjustments(subscription_id)]
    return correction_waits.waiting(ctx, customer_id, deltas, pending)


def _difference(subtotal: int, tax: int) -> dict[str, int]:
    """A rerun's ``difference``: after the invoice's discounts, its exclusive tax, and both."""
    return {"subtotal_minor": subtotal, "tax_minor": tax, "total_minor": subtotal + tax}


def _issue_correction(ctx: Billing, result: dict[str, Any], now: datetime) -> None:
    """Finalize and send to Stripe the correction invoice a rerun wrote (nothing for other answers)."""
    correction = result.get("correction") or {}
    if correction.get("type") in ("correction_invoice", "credit_note") and correction.get("invoice_id"):
        issue_now(ctx, str(correction["invoice_id"]), now)
    send_credit_notes(ctx, correction)
