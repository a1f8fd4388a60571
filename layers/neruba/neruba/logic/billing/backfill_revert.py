"""Reverting a committed backfill: exactly what its commit added taken back, once.

Steps (docs/billing.md, "Reverting a backfill"), each safe to run again:

1. ``committed`` -> ``reverting``: first every event the commit counted is checked as a void would check
   it (``logic.ingest.voids.check_voidable``): one past the void horizon refuses the whole revert
   (``409 backfill_too_old_to_revert``), as does any other refusal of a void; nothing is written. Then
   one transaction, conditional on ``committed``, moves the backfill with the audit record
   (``backfill.revert``) and the revert's reason.
2. Void: each event the commit counted (its copy id is the commit's ``{backfill_id}:{n}``; a held event
   whose id was already stored was not counted and is left alone) is voided through the event-void
   mechanism (``logic.ingest.voids.void_event``) under the Idempotency-Key
   ``backfill-revert:{id}:{digest}``: one transaction per event, its cell recomputed from the surviving
   events. A retry replays the stored answer and finishes what is left; an event voided meanwhile by an
   operator is already out of the usage.
3. Correct: the invoices the commit corrected are rerun again (``backfill_commit.correct_invoices``),
   under the keys ``backfill-revert:{id}:{invoice}`` (distinct from the commit's): the rerun bills the
   negative difference as the commit billed the positive one.
4. ``reverting`` -> ``reverted`` with what the revert did (conditional: once).

A revert of more than ``backfill_commit.INLINE_EVENTS`` events, or one whose step is left for later (a
void whose cell could not be recomputed yet, an invoice changing under its rerun), is finished by the
billing worker with the commit's own ``{"backfill": id}`` message (:func:`resume` dispatches on the
status), and the ``billing`` sweep re-sends that message for a backfill left ``reverting``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from neruba import bootstrap
from neruba.dal.backfills import HeldEvent
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing import backfill_commit
from neruba.logic.billing.backfill_commit import CommitIncompleteError, correct_invoices, enqueue
from neruba.logic.billing.backfills import audit_customer, backfills, get_backfill
from neruba.logic.billing.context import Billing
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
    if found.status == "reverted":
        return found.document
    if found.status not in ("committed", "reverting"):
        raise ConflictError(
            f"Only a committed backfill can be reverted; this one is {found.status}.",
            code="backfill_not_committed",
        )
    if found.document.get("mode") == "replace" and found.status == "committed":
        raise ConflictError(
            "A replace backfill cannot be reverted: the events it replaced stay voided (a void is not "
            "undone); send them again in an add backfill, or credit the invoices.",
            code="backfill_replace_not_revertible",
        )
    held = backfills(ctx).held_events(backfill_id)
    if found.status == "committed":
        start(ctx, backfill_id, held, body, actor, key, request_id, now)
    if len(held) > backfill_commit.INLINE_EVENTS:
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document
    try:
        return run_steps(ctx, backfill_id, actor, request_id, now)
    except CommitIncompleteError:
        enqueue(ctx, backfill_id)
        return get_backfill(ctx, backfill_id).document


def counted_keys(ctx: Billing, backfill_id: str, held: list[HeldEvent]) -> list[tuple[str, str]]:
    """The events the commit counted (stored with its copy id), whatever their status now."""
    stored = ctx.usage.get_events((e.customer_id, e.transaction_id) for e in held)
    ours = {f"{backfill_id}:{n}" for n in range(len(held))}
    return sorted(k for k, event in stored.items() if event.copy_id in ours)


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
    """Step 1: every counted event checked as its void would be, then ``committed`` -> ``reverting``
    with its audit record (id follows from the backfill: one revert is audited once)."""
    try:
        check_voidable(counted_keys(ctx, backfill_id, held), now)
    except ConflictError as exc:
        if exc.code != "event_too_old_to_void":
            raise
        raise ConflictError(
            "The backfill's events are older than the void horizon: their periods are no longer "
            "re-rated, so a revert would not reach their invoices; credit the invoices instead.",
            code="backfill_too_old_to_revert",
        ) from exc
    found = get_backfill(ctx, backfill_id)
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
    with contextlib.suppress(Cancelled):  # another revert moved it first: this one resumes its steps
        commit(Transaction([moved, audit]))


def run_steps(
    ctx: Billing,
    backfill_id: str,
    actor: str,
    request_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Steps 2 to 4 on a ``reverting`` backfill (each a no-op where an earlier run did it)."""
    found = get_backfill(ctx, backfill_id)
    if found.status != "reverting":
        return found.document
    revert = dict(found.document.get("revert") or {})
    held = backfills(ctx).held_events(backfill_id)
    voided = void_events(ctx, backfill_id, held, revert, actor, request_id, now)
    corrected = correct_invoices(ctx, backfill_id, held, actor, request_id, now, revert=revert)
    summary = {"events_voided": voided, "invoices": corrected}
    moved = backfills(ctx).move_item(
        backfill_id, ("reverting",), "reverted", reverted=summary, reverted_at=ts(now)
    )
    with contextlib.suppress(Cancelled):  # another run finished first: its record stands
        commit(Transaction([moved]))
    return get_backfill(ctx, backfill_id).document


def void_events(
    ctx: Billing,
    backfill_id: str,
    held: list[HeldEvent],
    revert: dict[str, Any],
    actor: str,
    request_id: str | None,
    now: datetime,
) -> int:
    """Step 2: void every event the commit counted (one void each, under its own key); how many. Raises
    ``CommitIncompleteError`` when a void's correction is still pending (its cell not recomputed yet)."""
    ticket = revert.get("ticket") or f"backfill {backfill_id}"
    reason = f"revert of backfill {backfill_id}: {revert.get('reason', '')}"[:500]
    pending = False
    keys = counted_keys(ctx, backfill_id, held)
    for customer_id, transaction_id in keys:
        key = "backfill-revert:" + backfill_id + ":" + idempotency.digest([customer_id, transaction_id], 32)
        try:
            answer = void_event(
                VoidRequest(customer_id, transaction_id, reason, ticket), actor, key, request_id, now
            )
        except ConflictError as exc:
            if exc.code != "event_already_voided":
                raise CommitIncompleteError(backfill_id) from exc
            continue  # voided by an operator meanwhile: its usage is out already
        pending = pending or answer.get("correction") != "completed"
    if pending:
        raise CommitIncompleteError(backfill_id)
    return len(keys)


def resume(ctx: Billing, body: str, now: datetime, deadline: datetime | None = None) -> str:
    """The billing worker's part for a ``{"backfill": id}`` message: the rest of a commit or of a revert,
    by the backfill's status. Raises ``CommitIncompleteError`` when a step is still left."""
    from neruba import jsonutil

    backfill_id = str(jsonutil.loads(body)["backfill"])
    found = get_backfill(ctx, backfill_id)
    if found.status != "reverting":
        return backfill_commit.resume(ctx, body, now, deadline)
    actor = str((found.document.get("revert") or {}).get("by") or "system")
    return str(run_steps(ctx, backfill_id, actor, None, now)["status"])
