"""Restoring an event a backfill's ``mode: replace`` voided, when that backfill is reverted: the opposite
move of a void, exactly once.

One transaction per event: the event turns ``voided`` -> ``accepted`` on condition that it still holds
the very void record the replace wrote (``dal.voids.VoidsRepository.restore_update``), keeping a restore
record (the backfill, reason, ticket, when, by whom, the void undone); its entry in the customer's void
list is deleted (invoice explain no longer cites it); the limit counter of its period goes back up by
what the event adds (``voids.counter_action``: conditional on the counter's version, as a void lowers
it); an open void; the audit record ``event.restore``. Then the void's own finish
(``logic.ingest.voids.finish``) recomputes the event's cell from its surviving events, the restored one
among them (its batch's contribution still names it), and deletes the open void; a run stopped before
that leaves the open void to the ``voids`` sweep check or to the next run.

A second run finds the event accepted with the backfill's restore record: nothing is written again, and
an open void left is finished. Rules: docs/billing.md, "Reverting a replace".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neruba import bootstrap, jsonutil
from neruba.dal.transaction import Cancelled, Transaction, commit
from neruba.dal.usage import StoredEvent
from neruba.dal.voids import OpenVoid
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.ingest.voids import ATTEMPTS, catalog_lookup, counter_action, finish
from neruba.timefmt import iso


def restored_by(event: StoredEvent) -> str | None:
    """The backfill whose revert restored the event, if any."""
    if not event.restored_json:
        return None
    return str(jsonutil.loads(event.restored_json).get("backfill") or "") or None


def check_restorable(events: list[StoredEvent], now: datetime) -> None:
    """The refusal a restore of one of these voided events would meet now (a customer's limits counting
    the meter in money: ``event_void_amount_limits``), raised before anything is written."""
    lookup = catalog_lookup()
    for event in events:
        if event.status == "voided":
            counter_action(lookup({event.customer_id}, {event.meter_code}), event, now, sign=1)


def restore_event(
    event: StoredEvent,
    backfill_id: str,
    reason: str,
    ticket: str | None,
    actor: str,
    request_id: str | None,
    now: datetime,
) -> bool:
    """Give ``event`` (voided by the backfill's replace) its usage back; True when its cell is
    recomputed, False when the ``voids`` sweep check or the next run must finish it."""
    usage, voids, lookup = bootstrap.usage(), bootstrap.voids(), catalog_lookup()
    left = voids.open_void(event.customer_id, event.transaction_id)
    if left is not None and not finish(usage, lookup, voids, left, now):
        return False  # the replace's own void is not finished yet: restore after it
    for _ in range(ATTEMPTS):
        current = usage.get_event(event.customer_id, event.transaction_id)
        if current is None or restored_by(current) == backfill_id or current.status != "voided":
            break  # restored already (by an earlier run, or another revert at once)
        catalog = lookup({current.customer_id}, {current.meter_code})
        record: dict[str, Any] = {
            "backfill": backfill_id,
            "reason": reason,
            "ticket": ticket,
            "at": iso(now),
            "actor": actor,
            "void": jsonutil.loads(current.void_json or "{}"),
        }
        actions = [
            voids.restore_update(current, jsonutil.dumps(record)),
            voids.entry_delete(current),
            voids.open_put(OpenVoid(current.customer_id, current.transaction_id, None, None, iso(now))),
        ]
        counter = counter_action(catalog, current, now, sign=1)
        if counter is not None:
            actions.append(counter)
        digest = idempotency.digest([current.customer_id, current.transaction_id], 32)
        actions.append(
            idempotency.audit_put(
                bootstrap.audit(),
                idempotency.Actor(actor, request_id),
                "event.restore",
                current.transaction_id,
                customer_id=current.customer_id,
                reason=reason,
                ticket=ticket,
                at=now,
                before={"status": "voided"},
                after={"status": "accepted", "backfill": backfill_id},
                idempotency_key=f"restore:{backfill_id}:{digest}",
            )
        )
        try:
            commit(Transaction(actions))
        except Cancelled:
            continue  # restored meanwhile (next read sees it) or the counter moved (decided again)
        break
    else:
        raise ConflictError(
            "The event kept changing while it was restored; try again.", code="event_void_conflict"
        )
    open_void = voids.open_void(event.customer_id, event.transaction_id)
    return open_void is None or finish(usage, lookup, voids, open_void, now)
