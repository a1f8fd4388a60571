"""Invoice reads and explanations, and the operator actions on billing: trigger a run, rerun an invoice.

Operator actions are audited (actor, action, reason, ticket, before/after, time) in the same transaction as
what they write, and take an ``Idempotency-Key``: a retry with the same key returns the first result and
writes nothing; the same key with another body is a 409 ``idempotency_conflict``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba.dal.audit import GLOBAL_AUDIT
from neruba.dal.billing import transact
from neruba.dal.cursors import InvalidCursorError
from neruba.dal.invoices import InvoicesRepository
from neruba.dal.locks import parse_ts
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic import idempotency
from neruba.logic.billing_corrections import answer as correction_answer
from neruba.logic.billing_corrections import billing_ended, correction_invoice, issue_now
from neruba.logic.billing_finalize import UNRATED_KINDS
from neruba.logic.billing_worker import Billing, adjustment_record, line_deltas, rated_lines
from neruba.logic.stripe_checks import amount_due, paid_level
from neruba.models.billing import BillingRunRequest, RerunRequest

_ctx: Billing | None = None


def billing() -> Billing:
    """The billing context of this process (tests and the wiring replace ``_ctx``)."""
    global _ctx
    if _ctx is None:
        _ctx = Billing.from_settings()
    return _ctx


def list_invoices(
    repo: InvoicesRepository, customer_id: str, status: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A Stripe-style list of a customer's invoices, newest period first."""
    try:
        docs, next_cursor = repo.list(customer_id, status, limit, cursor)
    except InvalidCursorError as exc:
        raise InvalidRequestError(
            "The cursor is not one this API returned.", code="invalid_cursor", param="starting_after"
        ) from exc
    return {
        "object": "list",
        "data": [public(d) for d in docs],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def get_invoice(repo: InvoicesRepository, invoice_id: str) -> dict[str, Any]:
    invoice = repo.get(invoice_id)
    if invoice is None:
        raise NotFoundError(f"No invoice {invoice_id!r}.", code="invoice_not_found", param="invoice_id")
    return invoice


def public(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice as the API shows it (internal bookkeeping fields left out)."""
    hidden = {"window", "rev", "finalize_at", "seq"}
    doc = {k: v for k, v in invoice.items() if k not in hidden}
    doc["object"] = "invoice"
    doc["revision"] = int(invoice.get("rev", 0))
    # what it received and what is left, also before a first payment records them (docs/stripe.md)
    paid = paid_level(invoice)
    doc["amount_paid_minor"] = paid
    doc["amount_remaining_minor"] = (
        0 if invoice.get("status") == "void" else max(amount_due(invoice) - paid, 0)
    )
    return doc


def explain(invoice: dict[str, Any]) -> dict[str, Any]:
    """Per line: meter, aggregate, hours and events behind it, price version and tiers, credits applied.

    Example:
        >>> explain({"id": "in_1", "lines": [], "applications": []})["lines"]
        []
    """
    by_line: dict[str, list[dict[str, Any]]] = {}
    for application in invoice.get("applications") or []:
        by_line.setdefault(str(application["line_id"]), []).append(application)
    lines = []
    for line in invoice.get("lines") or []:
        source = line.get("source") or {}
        applied = by_line.get(str(line["line_id"]), [])
        lines.append(
            {
                "line_id": line["line_id"],
                "kind": line.get("kind"),
                "description": line.get("description"),
                "meter_code": line.get("meter_code"),
                "group": line.get("group") or {},
                "aggregate": {"aggregation": source.get("aggregation"), "quantity": line.get("quantity")},
                "hours": source.get("hours"),
                "events": source.get("events"),
                **(adjustment_figures(line) if line.get("kind") == "adjustment" else {}),
                "price": {
                    "plan_code": line.get("plan_code"),
                    "plan_version": line.get("plan_version"),
                    "unit_price": line.get("unit_price"),
                    "tiers": line.get("tiers") or [],
                },
                "amount_minor": line.get("amount_minor"),
                "credits_applied": [
                    {"grant_id": a["grant_id"], "amount_minor": a["amount_minor"]} for a in applied
                ],
                "credits_applied_minor": sum(int(a["amount_minor"]) for a in applied),
                "references": line.get("references"),
                **_original(line),
            }
        )
    return {
        "object": "invoice_explanation",
        "invoice_id": invoice["id"],
        "number": invoice.get("number"),
        "status": invoice.get("status"),
        "period_start": invoice.get("period_start"),
        "period_end": invoice.get("period_end"),
        "subtotal_minor": invoice.get("subtotal_minor"),
        "credits_applied_minor": invoice.get("credits_applied_minor"),
        "total_minor": invoice.get("total_minor"),
        "corrects": invoice.get("corrects"),
        "lines": lines,
    }


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
    return {**diff, "adjustment": {"billed": billed, "rerated": rerated, "difference": difference}}


def _original(line: dict[str, Any]) -> dict[str, Any]:
    """For an adjustment line: the finalized invoice and line it corrects (its quantity and amount are
    the adjustment's own units, not the original's)."""
    references = line.get("references") or {}
    if line.get("kind") != "adjustment" or not references.get("invoice_id"):
        return {}
    keys = ("invoice_id", "number", "line_id")
    return {"original": {key: references.get(key) for key in keys}}


def _audit(
    ctx: Billing,
    actor: str,
    action: str,
    customer_id: str | None,
    target: str,
    reason: str,
    ticket: str | None,
    now: datetime,
    request_id: str | None,
    before: Any = None,
    after: Any = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The audit record's Put (``neruba.dal.audit``), committed in the action's own transaction.

    A run for every customer is recorded under ``AUD#_global``.
    """
    from neruba.dal.audit import AuditRepository

    return AuditRepository(ctx.ops_table).record_item(
        actor=actor,
        action=action,
        customer_id=customer_id or GLOBAL_AUDIT,
        target=target,
        reason=reason,
        ticket=ticket,
        before=before,
        after=after,
        at=now,
        request_id=request_id,
        idempotency_key=idempotency_key,
    )


def trigger_run(
    ctx: Billing,
    body: BillingRunRequest,
    actor: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/billing-runs``: run the scheduler now (optionally for one customer or as of a time)."""
    from neruba.dal.locks import LockRepository
    from neruba.dal.plans import PlansRepository
    from neruba.logic.billing_scheduler import RunOptions, run_billing

    now = now or datetime.now(UTC)
    request = body.model_dump(mode="json")
    fingerprint = idempotency.fingerprint(request, "billing-runs")
    replayed = idempotency.replay(ctx.billing, "billing-run", idempotency_key, fingerprint)
    if replayed is not None:
        return dict(replayed)
    at = body.at.astimezone(UTC) if body.at else None
    if at is not None and at > now:
        raise InvalidRequestError("A run cannot bill the future.", code="invalid_run_time", param="at")
    plans = PlansRepository(ctx.catalog_table)
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
    run = run_billing(ctx, LockRepository(ctx.billing.table_name), plans, options)
    if run["status"] == "skipped_locked":
        raise ConflictError(
            "Another billing run holds the lock; try again shortly.", code="billing_run_locked"
        )
    actions = [
        _audit(
            ctx,
            actor,
            "billing_run.create",
            body.customer_id,
            run["id"],
            body.reason,
            body.ticket,
            now,
            request_id,
            after={"status": run["status"], "enqueued": run.get("enqueued")},
            idempotency_key=idempotency_key,
        )
    ]
    if idempotency_key:
        actions.append(ctx.billing.idempotency_put_item("billing-run", idempotency_key, fingerprint, run))
    transact(actions)
    return run


def rerun_invoice(
    ctx: Billing,
    invoice_id: str,
    body: RerunRequest,
    actor: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Recompute a draft in place, or correct a finalized invoice.

    A finalized invoice is never edited: the differences between its lines (plus earlier corrections) and
    a fresh rating become ``pending`` adjustment lines that the subscription's next invoice carries; when
    the subscription's billing has ended there is no next invoice, so they are billed at once on a
    correction invoice or credit note of their own (``logic.billing_corrections``).
    """
    from neruba.logic.billing_finalize import recompute_draft

    now = now or datetime.now(UTC)
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"), invoice_id)
    replayed = idempotency.replay(ctx.billing, "invoice-rerun", idempotency_key, fingerprint)
    if replayed is not None:
        _issue_correction(ctx, replayed, now)  # the first attempt may have stopped before issuing it
        return dict(replayed)
    invoice = get_invoice(ctx.invoices, invoice_id)
    from neruba.observability import logger

    logger.append_keys(customer_id=invoice.get("customer_id"), subscription_id=invoice.get("subscription_id"))
    if invoice["status"] == "void":
        raise InvalidRequestError("A void invoice cannot be recomputed.", code="invoice_void")
    if invoice.get("kind") in UNRATED_KINDS and invoice["status"] != "draft":
        raise InvalidRequestError(
            "A top-up or correction invoice has no usage to recompute; rerun the invoice it corrects.",
            code="invoice_not_rated",
        )
    actions: list[dict[str, Any]]
    if invoice["status"] == "draft":
        revised, actions = recompute_draft(ctx, invoice, now)
        result: dict[str, Any] = {
            "object": "invoice_rerun",
            "invoice_id": invoice_id,
            "action": "draft_recomputed" if revised else "unchanged",
            "invoice": public(revised or invoice),
            "correction": None,
        }
    else:
        subscription = ctx.subscription(str(invoice["subscription_id"]))
        rate = ctx.deps.rate_opening if invoice["kind"] == "opening" else ctx.deps.rate_window
        rerated = rated_lines(
            rate(subscription, parse_ts(invoice["period_start"]), parse_ts(invoice["period_end"]))
        )
        deltas = line_deltas(invoice, rerated, ctx.billing.adjustments(str(invoice["subscription_id"])))
        if billing_ended(ctx, str(invoice["subscription_id"])):
            # no next invoice will ever exist: bill the differences (and anything left pending) now
            correction, actions = correction_invoice(ctx, invoice, deltas, now)
            result = {
                "object": "invoice_rerun",
                "invoice_id": invoice_id,
                "action": "correction_invoiced" if correction else "unchanged",
                "invoice": public(invoice),
                "correction": correction_answer(correction) if correction else None,
            }
        else:
            actions = [
                ctx.billing.adjustment_put_item(
                    str(invoice["subscription_id"]), adjustment_record(d, "pending", None, now)
                )
                for d in deltas
            ]
            actions += [ctx.billing.state_unchanged_item(str(invoice["subscription_id"]))] if deltas else []
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
                }
                if deltas
                else None,
            }
    actions.append(
        _audit(
            ctx,
            actor,
            "invoice.rerun",
            str(invoice["customer_id"]),
            invoice_id,
            body.reason,
            body.ticket,
            now,
            request_id,
            before={"subtotal_minor": invoice["subtotal_minor"], "rev": invoice.get("rev")},
            after={"action": result["action"]},
            idempotency_key=idempotency_key,
        )
    )
    if idempotency_key:
        actions.append(
            ctx.billing.idempotency_put_item("invoice-rerun", idempotency_key, fingerprint, result)
        )
    from neruba.dal.billing import TransactionCancelledError

    try:
        transact(actions)
    except TransactionCancelledError as exc:
        raise ConflictError("The invoice changed meanwhile; try again.", code="invoice_conflict") from exc
    _issue_correction(ctx, result, now)
    return result


def _issue_correction(ctx: Billing, result: dict[str, Any], now: datetime) -> None:
    """Finalize and send to Stripe the correction invoice a rerun wrote (nothing for other answers)."""
    correction = result.get("correction") or {}
    if correction.get("type") in ("correction_invoice", "credit_note"):
        issue_now(ctx, str(correction["invoice_id"]), now)
