"""Committing a backfill: its held events counted once, the invoices they change corrected once.

Steps (docs/billing.md, "Backfills"), each safe to run again:

1. ``open`` -> ``committing``: one transaction, conditional on the backfill being open, with the audit
   record (``backfill.commit``), refused first while a backfill it contends with over its range is
   committing or reverting (``backfill_order.check_not_busy``). From here on the held events are final
   (holding one is conditional on the backfill being open).
2. Correct under the stored ids (``logic.billing.backfill_supersede``): a held event whose transaction
   id's stored line ends in a voided event, or (``mode: replace``) in an accepted one with other content,
   is counted as an amend's corrected copy of that end, under a key of its own (once). Then, for a
   replace, the range's stored events are voided (``logic.billing.backfill_replace``). Then count: the
   held events, in key order, go through the ingest worker's own counting
   (``logic.ingest.worker.IngestBatch``) as queue messages whose ids and copy ids follow from the
   backfill (``{backfill_id}:{n}``), in batches of 100. A batch's id follows from its message ids, so a
   second run writes the same event items and the same day contributions, which are put only if absent:
   an event is counted once however many times the step runs, and an event whose transaction id was
   already stored (sent live) is a duplicate or a conflict and is not counted again.
3. Correct: every usage invoice of the backfill's customers whose window holds one of its events is
   rerun (``logic.billing.admin.rerun_invoice``) with the Idempotency-Key ``backfill:{id}:{invoice}``: a
   draft is recomputed in place, a finalized invoice gets adjustment lines on the subscription's next
   invoice (a negative one is a credit there), or a correction invoice or credit note when its billing has
   ended. The adjustment lines name the backfill in their source (explain shows it). A second run finds
   the stored rerun answer and writes nothing.
4. ``committing`` -> ``committed`` with what the commit did (conditional: once).

A backfill of more than ``INLINE_EVENTS`` events (held, and for a replace the stored events of its range it
voids, counted from the range's contributions), a commit whose step is left for later, or one that
reaches the request's time budget (``INLINE_SECONDS``), is finished by the billing worker: a
``{"backfill": id}`` message on BillingQueue (:func:`resume`). Every run has a deadline (:class:`Budget`):
the request's budget, or the worker's invocation's remaining time less a reserve
(``logic.billing.backfill_budget``); each step stops between two units of work (an event to void or
restore, a batch to count, an invoice to rerun) once it is past, its progress kept, and the worker then
sends the message again for the next invocation. A step left for later is retried by SQS, and after its
receives lands in BillingDLQ. A process that stops anywhere leaves the backfill ``committing``; the next
``commit`` call (any key) or delivery of the message resumes at step 2 and does only what is left. Two
commits at once run the same idempotent steps.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap, jsonutil
from neruba.dal.backfills import HeldEvent
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing import (
    backfill_ids,
    backfill_order,
    backfill_reach,
    backfill_replace,
    backfill_supersede,
    backfill_unbilled,
)
from neruba.logic.billing.backfill_budget import Budget, CommitIncompleteError, DeadlineReachedError
from neruba.logic.billing.backfill_preview import affected_invoices, refuse_withheld
from neruba.logic.billing.backfills import audit_customer, backfills, get_backfill, refuse_advance
from neruba.logic.billing.context import Billing
from neruba.logic.billing.correction_sources import reported
from neruba.models.backfills import BackfillAction
from neruba.models.billing import RerunRequest
from neruba.timefmt import iso, parse_ts, ts

# The Idempotency-Key of a backfill's commit or revert names one request (idempotency.claim): one scope for
# both actions, the action in the fingerprint, so a commit's key cannot revert nor a revert's key commit.
KEY_SCOPE = "backfill"


def key_request(body: BackfillAction, backfill_id: str, action: str) -> str:
    """The fingerprint a commit's or revert's key is tied to: the body, the backfill and the action."""
    return idempotency.fingerprint(body.model_dump(mode="json"), f"{backfill_id}/{action}")


BATCH = 100  # events counted per ingest batch (the ingest queue's batches are at most this)
INLINE_EVENTS = 50  # a commit or revert of more events is run by the billing worker, not by the request
INLINE_SECONDS = 10  # the request starts no unit of work past this (the API's Timeout is 30 s)

__all__ = ["Budget", "CommitIncompleteError", "DeadlineReachedError"]  # where the steps' callers find them


def commit_backfill(
    ctx: Billing,
    backfill_id: str,
    body: BackfillAction,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/backfills/{id}/commit``: the backfill, ``committed``, or ``committing`` when the
    billing worker finishes it (a backfill of more than ``INLINE_EVENTS`` events, held and, for a
    replace, stored in the range to void (``backfill_replace.count_to_replace``), a step left for
    later, or the request's ``INLINE_SECONDS`` reached)."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    found = get_backfill(ctx, backfill_id)
    idempotency.claim(ctx.billing, KEY_SCOPE, key, key_request(body, backfill_id, "commit"))
    if found.status in ("committed", "reverting", "reverted"):
        return found.document
    if found.status == "cancelled":
        raise ConflictError("The backfill was cancelled; it cannot be committed.", code="backfill_cancelled")
    if found.status == "open":
        backfill_order.check_not_busy(ctx, found)  # refused before anything is written
        guards = backfill_order.guards(ctx, found, commit=True)
        doc = found.document
        refuse_advance(ctx, list(doc["customer_ids"]), list(doc["meter_codes"]), parse_ts(doc["start"]),
                       parse_ts(doc["end"]))  # fmt: skip
        held = backfills(ctx).held_events(backfill_id)
        backfill_ids.require_countable(ctx, backfill_id, found.document, held)
        if found.document.get("mode") == "replace":
            backfill_replace.check(ctx, backfill_id, found.document, held, now)
            backfill_supersede.check(ctx, backfill_id, found.document, held, now)
        refuse_withheld(ctx, backfill_id)  # never a correction against a line rated 0 as unbillable
        start(ctx, backfill_id, body, actor, key, request_id, now, guards)
    work = found.held  # the events to count and, for a replace, to void
    if found.document.get("mode") == "replace" and work <= INLINE_EVENTS:
        work += backfill_replace.count_to_replace(ctx, found.document, INLINE_EVENTS - work)
    if work > INLINE_EVENTS:
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document
    try:
        return run_steps(ctx, backfill_id, actor, request_id, now, Budget.inline(INLINE_SECONDS))
    except CommitIncompleteError:
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document


def run_steps(
    ctx: Billing,
    backfill_id: str,
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Steps 2 to 4 on a ``committing`` backfill (each a no-op where an earlier run did it); for
    ``mode: replace``, the stored events of the range voided first (``logic.billing.backfill_replace``).
    Raises ``DeadlineReachedError`` when ``budget`` runs out before the end."""
    budget = budget or Budget()
    found = get_backfill(ctx, backfill_id)
    # where its events may lie, before any is counted or voided: the index reruns find it by
    backfill_reach.record(backfills(ctx), backfill_id, found.document)
    held = backfills(ctx).held_events(backfill_id)
    replaced: list[HeldEvent] = []
    # held events under the id of a stored event they correct: counted as its corrected copy (first, so
    # the range's voids below find those events in their corrected state)
    superseded = backfill_supersede.correct(
        ctx, backfill_id, found.document, held, actor, request_id, now, budget
    )
    if found.document.get("mode") == "replace":
        since = parse_ts(found.committing_at) if found.committing_at else now
        try:
            voided = backfill_replace.void_replaced(
                ctx, backfill_id, found.document, held, since, actor, request_id, now, budget
            )
        except backfill_replace.ReplaceIncompleteError as exc:
            raise CommitIncompleteError(backfill_id) from exc
        replaced = backfill_replace.as_held(voided)
    count_events(ctx, backfill_id, held, now, budget)
    touched = held + replaced + backfill_replace.as_held(superseded)  # a superseded one may be elsewhere
    corrected = correct_invoices(ctx, backfill_id, touched, actor, request_id, now, budget=budget)
    return finish(ctx, backfill_id, held, corrected, now, replaced=len(replaced), superseded=len(superseded))


def enqueue(ctx: Billing, backfill_id: str) -> bool:
    """Hand the rest of the commit (or revert) to the billing worker (``{"backfill": id}`` on
    BillingQueue); False when it could not be sent. A send that fails leaves the backfill ``committing``
    (``reverting``): the next call resumes it, or the ``billing`` sweep re-sends the message."""
    from neruba.dal.queue import send_batch

    if not ctx.billing_queue_url:
        return False
    return not send_batch(ctx.billing_queue_url, [("0", message(backfill_id))])


def message(backfill_id: str) -> str:
    """The billing queue message that resumes a backfill's commit."""
    return jsonutil.dumps({"backfill": backfill_id})


def resume(ctx: Billing, body: str, now: datetime, deadline: datetime | None = None) -> str:
    """The billing worker's part: run the steps left of the commit the message names, starting no unit
    of work past ``deadline`` once one is done. Raises ``DeadlineReachedError`` when the deadline came
    first (the worker sends the message again), ``CommitIncompleteError`` when a step is still left
    (SQS delivers the message again; after the queue's receives, to BillingDLQ). Answers the backfill's
    status."""
    backfill_id = str(jsonutil.loads(body)["backfill"])
    found = get_backfill(ctx, backfill_id)
    if found.status != "committing":
        return found.status  # done (or never started): nothing to do
    actor = found.committing_by or "system"
    return str(run_steps(ctx, backfill_id, actor, None, now, Budget(deadline))["status"])


def start(
    ctx: Billing,
    backfill_id: str,
    body: BackfillAction,
    actor: str,
    key: str,
    request_id: str | None,
    now: datetime,
    guards: list[dict[str, Any]] | None = None,
) -> None:
    """Step 1: ``open`` -> ``committing`` with its audit record (the record's id follows from the
    backfill, so one commit is audited once), conditional on the backfills over its range it contends with
    (a replace: all; an add: the replaces) keeping their status (``backfill_order.guards``)."""
    found = get_backfill(ctx, backfill_id)
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "backfill.commit",
        backfill_id,
        customer_id=audit_customer(found.document),
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        before={"status": "open", "events_held": found.held},
        after={"status": "committing", "idempotency_key": key},
        idempotency_key=f"commit:{backfill_id}",
    )
    moved = backfills(ctx).move_item(
        backfill_id, ("open",), "committing", committing_at=ts(now), committing_by=actor
    )
    try:
        commit(Transaction([moved, audit, *(guards or [])]))
    except Cancelled as exc:
        again = get_backfill(ctx, backfill_id)
        if again.status == "cancelled":
            raise ConflictError(
                "The backfill was cancelled; it cannot be committed.", code="backfill_cancelled"
            ) from exc
        if again.status == "open":  # a backfill over the range moved meanwhile
            raise ConflictError(
                "A backfill over the same range changed meanwhile; try again.", code="backfill_conflict"
            ) from exc
        # another commit moved it first: this one resumes the same steps


def records(backfill_id: str, held: list[HeldEvent], received_at: str) -> list[list[dict[str, Any]]]:
    """The held events as ingest queue records, in batches: the n-th event (in key order) is message
    ``{backfill_id}:{n}`` with copy id ``{backfill_id}:{n}``."""
    out: list[dict[str, Any]] = []
    for n, event in enumerate(held):
        body = {"v": 1, "rid": backfill_id, "i": n, "rt": received_at, "e": event.event}
        out.append({"messageId": f"{backfill_id}:{n}", "body": jsonutil.dumps(body)})
    return [out[i : i + BATCH] for i in range(0, len(out), BATCH)]


def count_events(
    ctx: Billing, backfill_id: str, held: list[HeldEvent], now: datetime, budget: Budget | None = None
) -> None:
    """Step 2: count the held events through the ingest worker's counting, batch by batch (none is
    started past the budget's deadline once one was: the rest is left for the next run, which runs the
    counted batches again, their items put only if absent, without counting them against its time)."""
    from neruba.logic.ingest.worker import IngestBatch

    budget = budget or Budget()
    received_at = iso(parse_ts(str(get_backfill(ctx, backfill_id).document["created_at"])))
    left: list[str] = []
    thresholds: set[str] = set()
    stored = ctx.usage.get_events((e.customer_id, e.transaction_id) for e in held)
    reached = False
    for n, chunk in enumerate(records(backfill_id, held, received_at)):
        ours = held[n * BATCH : (n + 1) * BATCH]
        fresh = not all((e.customer_id, e.transaction_id) in stored for e in ours)
        if fresh:  # a batch an earlier run counted is run again (puts only if absent) but costs no time
            try:
                budget.check(backfill_id)
            except DeadlineReachedError:
                reached = True
                break
        lookup = bootstrap.ingest_worker_catalog().lookup
        batch = IngestBatch(usage=ctx.usage, lookup=lookup, now=now)
        batch.begin(chunk)
        for record in chunk:
            try:
                batch.process_record(record)
            except Exception:
                left.append(str(record["messageId"]))
        left += batch.finish()
        if fresh:
            budget.spent()
        thresholds.update(batch.threshold_customers())
    if thresholds and ctx.billing_queue_url:  # as after a live batch: their invoice thresholds are checked
        from neruba.logic.billing.threshold_invoices import enqueue_checks

        enqueue_checks(ctx.billing_queue_url, sorted(thresholds))
    if reached:
        raise DeadlineReachedError(backfill_id)
    if left:
        from neruba.observability import logger

        logger.warning("backfill events left to count", extra={"backfill_id": backfill_id, "left": left[:20]})
        raise CommitIncompleteError(backfill_id)


def correct_invoices(
    ctx: Billing,
    backfill_id: str,
    held: list[HeldEvent],
    actor: str,
    request_id: str | None,
    now: datetime,
    revert: dict[str, Any] | None = None,
    budget: Budget | None = None,
) -> list[dict[str, Any]]:
    """Step 3: rerun every invoice whose window holds one of the events (once each: its key). A revert
    (``revert``: its reason and ticket) runs the same reruns under keys of its own. None is started past
    the budget's deadline once some work was done (a rerun answered already is only read)."""
    from neruba.logic.billing.admin import rerun_done, rerun_invoice

    budget = budget or Budget()
    doc = get_backfill(ctx, backfill_id).document
    why, ticket = (revert["reason"], revert.get("ticket")) if revert else (doc["reason"], doc.get("ticket"))
    prefix = "backfill-revert" if revert else "backfill"
    reason = f"{'revert of ' if revert else ''}backfill {backfill_id}: {why}"[:500]
    corrected = []
    for invoice in affected_invoices(ctx, held):
        request, key = RerunRequest(reason=reason, ticket=ticket), f"{prefix}:{backfill_id}:{invoice.id}"
        done = rerun_done(ctx, invoice.id, request, key)
        if not done:
            budget.check(backfill_id)
        try:
            rerun_invoice(
                ctx,
                invoice.id,
                request,
                actor,
                idempotency_key=key,
                request_id=request_id,
                now=now,
                backfill_id=backfill_id,
                withhold=True,  # checked before the commit began (refuse_withheld); a revert must finish
            )
        except ConflictError as exc:
            raise CommitIncompleteError(backfill_id) from exc
        if not done:
            budget.spent()
        # the money this backfill's own events changed on the invoice, whichever rerun carried them (its
        # own, or one that ran first: another backfill's, an operator's): logic.billing.correction_sources
        corrected.append(reported(ctx, invoice.id, backfill_id, "revert" if revert else "commit"))
    return corrected


def finish(
    ctx: Billing,
    backfill_id: str,
    held: list[HeldEvent],
    corrected: list[dict[str, Any]],
    now: datetime,
    replaced: int = 0,
    superseded: int = 0,
) -> dict[str, Any]:
    """Step 4: ``committing`` -> ``committed``, recording what the commit counted (under the held ids or
    as corrected copies) and corrected."""
    mine = backfill_ids.counted_held(ctx, backfill_id, held, "accepted")
    unbilled = backfill_unbilled.unbilled(ctx, mine)
    counted = {(e.customer_id, e.transaction_id) for e in mine}
    left = [e for e in held if (e.customer_id, e.transaction_id) not in counted]
    conflicting, named = backfill_ids.other_content(ctx, left) if left else (0, [])
    summary = {
        "events_counted": len(mine),
        "events_not_counted": len(held) - len(mine),
        "events_conflicting": conflicting,
        "conflicting": named,
        "events_replaced": replaced,
        "events_superseded": superseded,
        "events_unbilled": sum(int(u["events"]) for u in unbilled),
        "unbilled": unbilled,
        "invoices": corrected,
    }
    moved = backfills(ctx).move_item(
        backfill_id, ("committing",), "committed", committed=summary, committed_at=ts(now)
    )
    with contextlib.suppress(Cancelled):  # another run finished first: its record stands
        commit(Transaction([moved]))
    return get_backfill(ctx, backfill_id).document
