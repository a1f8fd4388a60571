"""Reverting a committed backfill: exactly what its commit added taken back, once.

Steps (docs/billing.md, "Reverting a backfill"), each safe to run again:

1. ``committed`` -> ``reverting``: first the revert is refused while a later replace backfill stands over the
   range or the events (``backfill_order.check_not_superseded``: 409 ``backfill_superseded``), and every event
   the commit counted (with an operator's amended copies of them: ``taken_back``) is checked as the backfill's
   void would check it (``logic.ingest.voids.check_voidable``; the void horizon does not apply: step 4
   corrects the invoices whatever their age) and, for ``mode: replace``, every event it replaced as its
   restore would (``logic.ingest.restores.check_restorable``); a refusal refuses the whole revert and nothing
   is written. Then one transaction, conditional on ``committed`` and on the backfills over the range keeping
   their status (``backfill_order.guards``), moves the backfill with the audit record (``backfill.revert``)
   and the revert's reason.
2. Restore: each event the commit voided (a replace's events of the range, and the events any backfill's
   held events superseded under their own ids, ``backfill_supersede.originals_to_restore``) is given back
   (``backfill_replace.restore_replaced``: one conditional transaction per event, its cell recomputed);
   a run again finds the restored ones marked and restores the rest once.
3. Void: each event the commit counted (its copy id is the commit's ``{backfill_id}:{n}``, under the held
   id or as a corrected copy of a stored event; a held event
   whose id was already stored was not counted and is left alone), and the corrected copy of each one an
   operator amended since, is voided through the event-void
   mechanism (``logic.ingest.voids.void_event``) under the Idempotency-Key
   ``backfill-revert:{id}:{digest}``: one transaction per event, its cell recomputed from the surviving
   events. A retry replays the stored answer and finishes what is left; an event voided meanwhile by an
   operator is already out of the usage.
4. Correct: the invoices the commit corrected (of the held and the replaced events) are rerun again
   (``backfill_commit.correct_invoices``), under the keys ``backfill-revert:{id}:{invoice}`` (distinct
   from the commit's): the rerun bills the difference back as the commit billed it, whatever the
   invoice's age.
5. ``reverting`` -> ``reverted`` with what the revert did (conditional: once).

A revert of more than ``backfill_commit.INLINE_EVENTS`` events (held and replaced), one whose step is
left for later (a void whose cell could not be recomputed yet, an invoice changing under its rerun), or
one that reaches the request's time budget (``backfill_commit.INLINE_SECONDS``), is finished by the
billing worker with the commit's own ``{"backfill": id}`` message (:func:`resume` dispatches on the
status), and the ``billing`` sweep re-sends that message for a backfill left ``reverting``. Steps 2 to 4
honour the run's deadline as the commit's do (``backfill_budget.Budget``): they stop between two events
or invoices, and the worker sends the message again for its next invocation.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.backfills import HeldEvent
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.dal.usage import StoredEvent
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing import (
    backfill_commit,
    backfill_ids,
    backfill_order,
    backfill_replace,
    backfill_supersede,
)
from neruba.logic.billing.backfill_budget import Budget, CommitIncompleteError
from neruba.logic.billing.backfill_commit import correct_invoices, enqueue
from neruba.logic.billing.backfills import audit_customer, backfills, get_backfill
from neruba.logic.billing.context import Billing
from neruba.logic.ingest.restores import check_restorable
from neruba.logic.ingest.voids import VoidRequest, check_voidable, void_event
from neruba.models.backfills import BackfillAction
from neruba.timefmt import iso, ts


def revert_backfill(
    ctx: Billing,
    backfill_id: str,
    body: BackfillAction,
    actor: str,
    idempotency_key: str | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /admin/backfills/{id}/revert``: the backfill, ``reverted``, or ``reverting`` when the billing
    worker finishes it."""
    now = now or datetime.now(UTC)
    key = idempotency.require_key(idempotency_key)
    found = get_backfill(ctx, backfill_id)
    idempotency.claim(
        ctx.billing, backfill_commit.KEY_SCOPE, key, backfill_commit.key_request(body, backfill_id, "revert")
    )
    if found.status == "reverted":
        return found.document
    if found.status not in ("committed", "reverting"):
        raise ConflictError(
            f"Only a committed backfill can be reverted; this one is {found.status}.",
            code="backfill_not_committed",
        )
    held = backfills(ctx).held_events(backfill_id)
    if found.status == "committed":
        start(ctx, backfill_id, held, body, actor, key, request_id, now)
    committed = found.document.get("committed") or {}
    replaced = int(committed.get("events_replaced") or 0) + int(committed.get("events_superseded") or 0)
    if len(held) + replaced > backfill_commit.INLINE_EVENTS:  # the events to void and to give back
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document
    try:
        budget = Budget.inline(backfill_commit.INLINE_SECONDS)
        return run_steps(ctx, backfill_id, actor, request_id, now, budget)
    except CommitIncompleteError:
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document


def counted_keys(ctx: Billing, backfill_id: str, held: list[HeldEvent]) -> list[tuple[str, str]]:
    """The events the commit counted (stored with its copy id: under a held id, or as the corrected copy
    of a stored event, ``backfill_ids.counted``), whatever their status now."""
    return sorted(backfill_ids.counted(ctx, backfill_id, held))


def taken_back(ctx: Billing, backfill_id: str, held: list[HeldEvent]) -> list[StoredEvent]:
    """The events the revert takes back: those the commit counted and the corrected copies of those an
    operator amended since (``backfill_order.lineage``), whatever their status now."""
    return backfill_order.lineage(ctx, counted_keys(ctx, backfill_id, held), owner=backfill_id)


def to_restore(
    ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent]
) -> list[StoredEvent]:
    """The events the commit voided and the revert gives back: a replace's events of the range, and the
    events its held ones superseded (wherever their time)."""
    found = {
        (e.customer_id, e.transaction_id): e
        for e in backfill_supersede.originals_to_restore(ctx, backfill_id, held)
    }
    if doc.get("mode") == "replace":
        found.update(
            {
                (e.customer_id, e.transaction_id): e
                for e in backfill_replace.events_to_restore(ctx, backfill_id, doc)
            }
        )
    return [found[k] for k in sorted(found)]


def start(
    ctx: Billing,
    backfill_id: str,
    held: list[HeldEvent],
    body: BackfillAction,
    actor: str,
    key: str,
    request_id: str | None,
    now: datetime,
) -> None:
    """Step 1: every counted event checked as its void would be (and every replaced one as its restore),
    then ``committed`` -> ``reverting`` with its audit record (id follows from the backfill: one revert
    is audited once)."""
    found = get_backfill(ctx, backfill_id)
    events = taken_back(ctx, backfill_id, held)
    backfill_order.check_not_superseded(ctx, found, events)
    guards = backfill_order.guards(ctx, found)
    check_voidable([(e.customer_id, e.transaction_id) for e in events], now, backfill=backfill_id)
    restoring = to_restore(ctx, backfill_id, found.document, held)
    backfill_order.check_not_relinked(ctx, found, restoring)
    check_restorable(restoring, now)
    revert = {"reason": body.reason, "ticket": body.ticket, "by": actor, "at": iso(now)}
    audit = idempotency.audit_put(
        bootstrap.audit(),
        idempotency.Actor(actor, request_id),
        "backfill.revert",
        backfill_id,
        customer_id=audit_customer(found.document),
        reason=body.reason,
        ticket=body.ticket,
        at=now,
        before={"status": "committed"},
        after={"status": "reverting", "idempotency_key": key},
        idempotency_key=f"revert:{backfill_id}",
    )
    moved = backfills(ctx).move_item(
        backfill_id, ("committed",), "reverting", revert=revert, reverting_at=ts(now)
    )
    try:
        commit(Transaction([moved, audit, *guards]))
    except Cancelled as exc:
        if get_backfill(ctx, backfill_id).status == "committed":  # a backfill over the range moved
            raise ConflictError(
                "A backfill over the same range changed meanwhile; try again.", code="backfill_conflict"
            ) from exc
        # another revert moved it first: this one resumes its steps


def run_steps(
    ctx: Billing,
    backfill_id: str,
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Steps 2 to 5 on a ``reverting`` backfill (each a no-op where an earlier run did it). Raises
    ``DeadlineReachedError`` when ``budget`` runs out before the end, all done so far kept."""
    budget = budget or Budget()
    found = get_backfill(ctx, backfill_id)
    if found.status != "reverting":
        return found.document
    revert = dict(found.document.get("revert") or {})
    held = backfills(ctx).held_events(backfill_id)
    replaced = to_restore(ctx, backfill_id, found.document, held)
    if replaced:
        restored = backfill_replace.restore_replaced(
            ctx, backfill_id, replaced, revert, actor, request_id, now, budget
        )
        if not restored:
            raise CommitIncompleteError(backfill_id)
    events = taken_back(ctx, backfill_id, held)
    voided, already = void_events(ctx, backfill_id, events, revert, actor, request_id, now, budget)
    copies = [e for e in events if e.amends]  # corrected copies (an operator's or the backfill's own)
    touched = held + backfill_replace.as_held(replaced + copies)  # a copy may be in another window
    corrected = correct_invoices(
        ctx, backfill_id, touched, actor, request_id, now, revert=revert, budget=budget
    )
    summary = {
        "events_voided": voided,
        "events_already_voided": already,
        "events_restored": len(replaced),
        "invoices": corrected,
    }
    moved = backfills(ctx).move_item(
        backfill_id, ("reverting",), "reverted", reverted=summary, reverted_at=ts(now)
    )
    with contextlib.suppress(Cancelled):  # another run finished first: its record stands
        commit(Transaction([moved]))
    return get_backfill(ctx, backfill_id).document


def void_events(
    ctx: Billing,
    backfill_id: str,
    events: list[StoredEvent],
    revert: dict[str, Any],
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> tuple[int, int]:
    """Step 3: void every event the commit counted and every operator's corrected copy of one
    (``taken_back``; one void each, under its own key); how many this revert voided (a run again replays
    the voids of an earlier run under their keys: they count) and how many were void already (an
    operator's void or amend). Raises ``CommitIncompleteError`` when a void's correction is still pending
    (its cell not recomputed yet), ``DeadlineReachedError`` when ``budget`` runs out between two voids (a
    void done replays its answer on the next run)."""
    budget = budget or Budget()
    ticket = revert.get("ticket") or f"backfill {backfill_id}"
    reason = f"revert of backfill {backfill_id}: {revert.get('reason', '')}"[:500]
    pending, voided, already = False, 0, 0
    keys = [(e.customer_id, e.transaction_id) for e in events]
    for event, (customer_id, transaction_id) in zip(events, keys, strict=True):
        todo = event.status == "accepted"  # one voided already replays its answer (a read)
        if todo:
            budget.check(backfill_id)
        key = "backfill-revert:" + backfill_id + ":" + idempotency.digest([customer_id, transaction_id], 32)
        try:
            request = VoidRequest(customer_id, transaction_id, reason, ticket, backfill=backfill_id)
            answer = void_event(request, actor, key, request_id, now)
        except ConflictError as exc:
            if exc.code != "event_already_voided":
                raise CommitIncompleteError(backfill_id) from exc
            already += 1
            continue  # voided by an operator meanwhile: its usage is out already
        if todo:
            budget.spent()
        voided += 1
        pending = pending or answer.get("correction") != "completed"
    if pending:
        raise CommitIncompleteError(backfill_id)
    return voided, already


def resume(ctx: Billing, body: str, now: datetime, deadline: datetime | None = None) -> str:
    """The billing worker's part for a ``{"backfill": id}`` message: the rest of a commit or of a revert,
    by the backfill's status, starting no unit of work past ``deadline`` once one is done. Raises
    ``DeadlineReachedError`` when the deadline came first (the worker sends the message again),
    ``CommitIncompleteError`` when a step is still left (SQS delivers the message again)."""
    from neruba import jsonutil

    backfill_id = str(jsonutil.loads(body)["backfill"])
    found = get_backfill(ctx, backfill_id)
    if found.status != "reverting":
        return backfill_commit.resume(ctx, body, now, deadline)
    actor = str((found.document.get("revert") or {}).get("by") or "system")
    return str(run_steps(ctx, backfill_id, actor, None, now, Budget(deadline))["status"])
