"""A backfill's corrections under the events' own transaction ids: one amend per held event.

A held event whose stored line (``backfill_ids.resolve``) ends in an accepted event with other content
(``mode: replace``: ``supersede``) or in a voided event (any mode: ``relink``) is counted as a corrected
copy of that end, through the event amend (``logic.ingest.voids.void_event`` with ``amend``): one
transaction voids the end (a relink: only names the copy in its void record, its usage is out already)
and writes the copy, accepted, with ``amends`` naming the end, the transaction id
``backfill_ids.copy_transaction_id`` and the copy id ``{backfill_id}:{n}`` (the link back to the
backfill); the void's finish recomputes the end's cell and counts the copy. The Idempotency-Key
``backfill-correct:{id}:{digest}`` makes each one happen once: a run again finds the copy stored and
replays the stored answer under that key, which also finishes a void an earlier run left open.

The void is the backfill's (``VoidRequest.backfill``): not held to the void horizon, as the commit reruns
the invoices of both the end (wherever its timestamp lies) and the copy under its keys. A revert gives
the superseded ends back (:func:`originals_to_restore`, through ``logic.ingest.restores``) and voids the
copies (they are among the events its commit counted). Rules: docs/billing.md, "Held events under a
stored transaction id".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neruba import jsonutil
from neruba.dal.backfills import HeldEvent
from neruba.dal.usage import StoredEvent, UsageRepository
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing import backfill_ids, backfill_reach
from neruba.logic.billing.backfill_budget import Budget, CommitIncompleteError
from neruba.logic.billing.context import Billing
from neruba.logic.ingest.restores import restored_by
from neruba.logic.ingest.voids import VoidRequest, check_voidable, void_event
from neruba.timefmt import parse_ts

CORRECTING = ("supersede", "relink", "done")


def reason(backfill_id: str, doc: dict[str, Any]) -> str:
    return f"corrected by backfill {backfill_id}: {doc['reason']}"[:500]


def _key(backfill_id: str, held: HeldEvent) -> str:
    digest = idempotency.digest([held.customer_id, held.transaction_id], 32)
    return f"backfill-correct:{backfill_id}:{digest}"


def to_supersede(
    ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent]
) -> list[StoredEvent]:
    """The accepted events the commit would void as superseded (for its checks and its preview)."""
    found = backfill_ids.resolve(ctx, backfill_id, str(doc.get("mode") or "add"), held)
    return [r.target for r in found.values() if r.kind == "supersede" and r.target is not None]


def check(ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent], now: datetime) -> None:
    """Before the commit starts: the refusal a void of one of the events to supersede would meet."""
    events = to_supersede(ctx, backfill_id, doc, held)
    check_voidable([(e.customer_id, e.transaction_id) for e in events], now, backfill=backfill_id)


def superseded_by(event: StoredEvent | None, backfill_id: str) -> bool:
    """``event`` was an accepted event the backfill voided as superseded (still voided so, or restored by
    its revert)."""
    if event is None:
        return False
    if restored_by(event) == backfill_id:
        return True
    record = jsonutil.loads(event.void_json) if event.void_json else {}
    return event.status == "voided" and record.get("backfill") == backfill_id and "linked" not in record


def correct(
    ctx: Billing,
    backfill_id: str,
    doc: dict[str, Any],
    held: list[HeldEvent],
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> list[StoredEvent]:
    """The commit's step: each held event to count as a corrected copy, amended once; the events it
    superseded (voided with their usage, for the invoices to rerun). Raises ``CommitIncompleteError`` when
    an amend is refused meanwhile or its correction is pending, ``DeadlineReachedError`` when ``budget``
    runs out between two events (the done ones replay on the next run)."""
    budget = budget or Budget()
    found = backfill_ids.resolve(ctx, backfill_id, str(doc.get("mode") or "add"), held)
    ticket = str(doc.get("ticket") or f"backfill {backfill_id}")
    superseded: list[StoredEvent] = []
    pending = False
    for n, event in enumerate(held):
        resolved = found.get((event.customer_id, event.transaction_id))
        if resolved is None or resolved.kind not in CORRECTING or resolved.target is None:
            continue
        target, todo = resolved.target, resolved.kind != "done"
        if todo:
            budget.check(backfill_id)
        if resolved.kind == "relink" and not _void_finished(target, now):
            raise CommitIncompleteError(backfill_id)  # its own void is not finished yet: correct it after
        request = VoidRequest(
            event.customer_id,
            target.transaction_id,
            reason(backfill_id, doc),
            ticket,
            properties=dict(event.event["properties"]),
            timestamp=parse_ts(str(event.event["timestamp"])),
            amend=True,
            backfill=backfill_id,
            copy_transaction_id=backfill_ids.copy_transaction_id(backfill_id, event),
            copy_id=f"{backfill_id}:{n}",
        )
        if resolved.kind == "supersede":  # where the reruns find it: recorded before its void
            backfill_reach.record_event(ctx.billing.backfills, backfill_id, doc, target)
        try:
            answer = void_event(request, actor, _key(backfill_id, event), request_id, now)
        except ConflictError as exc:  # the line changed meanwhile: the next run decides again
            raise CommitIncompleteError(backfill_id) from exc
        if todo:
            budget.spent()
        pending = pending or answer.get("correction") != "completed"
        if resolved.kind == "supersede" or (resolved.kind == "done" and superseded_by(target, backfill_id)):
            superseded.append(target)
    if pending:
        raise CommitIncompleteError(backfill_id)
    return superseded


def _void_finished(event: StoredEvent, now: datetime) -> bool:
    """The void of ``event`` is finished (its open void, if one is left, finished now)."""
    from neruba import bootstrap
    from neruba.logic.ingest.voids import catalog_lookup, finish

    voids = bootstrap.voids()
    left = voids.open_void(event.customer_id, event.transaction_id)
    return left is None or finish(bootstrap.usage(), catalog_lookup(), voids, left, now)


def originals_to_restore(ctx: Billing, backfill_id: str, held: list[HeldEvent]) -> list[StoredEvent]:
    """For a revert: the events the commit superseded (still voided by it, or restored by a run of this
    revert already). A relinked event was voided before the backfill and stays voided."""
    return superseded_originals(ctx.usage, backfill_id, held)


def superseded_originals(
    usage: UsageRepository, backfill_id: str, held: list[HeldEvent]
) -> list[StoredEvent]:
    """:func:`originals_to_restore` read from the usage table alone (a migration has no billing context)."""
    keys = [(e.customer_id, backfill_ids.copy_transaction_id(backfill_id, e)) for e in held]
    copies = [c for c in usage.get_events(keys).values() if (c.copy_id or "").startswith(f"{backfill_id}:")]
    originals = usage.get_events((c.customer_id, str(c.amends)) for c in copies if c.amends)
    return [e for _, e in sorted(originals.items()) if superseded_by(e, backfill_id)]
