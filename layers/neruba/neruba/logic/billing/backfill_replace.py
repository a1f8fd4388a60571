"""``mode: replace``: the stored events a backfill's commit replaces, and their voids.

The events replaced are the stored events of the backfill's range, customers and meters that counting
listed (``UsageRepository.list_events``), received before the commit started (``since``: events sent
live afterwards are counted on top), other than the backfill's own (its copy ids ``{backfill_id}:{n}``)
and other than those whose transaction id the backfill holds (the stored event stands for the held one,
as in add mode). Each is voided through the event-void mechanism (``logic.ingest.voids.void_event``)
under the Idempotency-Key ``backfill-replace:{id}:{digest}`` with the reason ``replaced by backfill
{id}: ...``; that reason marks it, so a later run finds the events it voided and voids the rest once.
The voids are the backfill's own (``VoidRequest.backfill``): not held to the void horizon, as the commit
reruns every invoice of the replaced events under its keys. A revert of the backfill gives those events
back (:func:`restore_replaced`, through ``logic.ingest.restores``). Rules: docs/billing.md, "Replacing the
events of a range" and "Reverting a replace".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from neruba import jsonutil
from neruba.dal.backfills import HeldEvent
from neruba.dal.usage import StoredEvent
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing.backfill_budget import Budget
from neruba.logic.billing.context import Billing
from neruba.logic.ingest.restores import restore_event, restored_by
from neruba.logic.ingest.voids import VoidRequest, check_voidable, void_event
from neruba.timefmt import parse_ts

PAGE = 500


class ReplaceIncompleteError(Exception):
    """A void's correction is still pending: the commit stays ``committing``."""


def marker(backfill_id: str) -> str:
    return f"replaced by backfill {backfill_id}"


def replaced_events(
    ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent], since: datetime
) -> list[StoredEvent]:
    """The events the commit replaces: accepted ones still to void and those it voided already. The
    events a held one stands for or corrects (the end of its transaction id's line,
    ``backfill_ids.line_ends``: the stored event itself, or an amend's corrected copy) are not replaced."""
    from neruba.logic.billing.backfill_ids import line_ends

    held_keys = {(e.customer_id, e.transaction_id) for e in held}
    kept = held_keys | {(e.customer_id, e.transaction_id) for e in line_ends(ctx, held_keys).values()}
    return _range_events(ctx, doc, lambda e: _replaced(e, backfill_id, kept, since))


def _range_events(
    ctx: Billing, doc: dict[str, Any], keep: Callable[[StoredEvent], bool]
) -> list[StoredEvent]:
    """The stored events of the backfill's customers, meters and range that ``keep`` keeps."""
    start, end = parse_ts(str(doc["start"])), parse_ts(str(doc["end"]))
    found: list[StoredEvent] = []
    for customer_id in doc["customer_ids"]:
        cursor: str | None = None
        while True:
            page = ctx.usage.list_events(customer_id, list(doc["meter_codes"]), start, end, PAGE, cursor)
            found += [e for e in page.events if keep(e)]
            cursor = page.next_cursor
            if cursor is None:
                break
    return found


def count_to_replace(ctx: Billing, doc: dict[str, Any], stop_after: int) -> int:
    """At most how many stored events the commit voids, from the range's contributions (no event read:
    the events voided already are counted too); stops once past ``stop_after``."""
    start, end = parse_ts(str(doc["start"])), parse_ts(str(doc["end"]))
    total = 0
    for customer_id in doc["customer_ids"]:
        meters = list(doc["meter_codes"])
        total += ctx.usage.count_listed(customer_id, meters, start, end, stop_after - total)
        if total > stop_after:
            break
    return total


def _voided_by(event: StoredEvent, backfill_id: str) -> bool:
    """The event is voided by the backfill's replace (its void record's reason carries the marker)."""
    if event.status != "voided" or not event.void_json:
        return False
    return str(jsonutil.loads(event.void_json).get("reason", "")).startswith(marker(backfill_id))


def events_to_restore(ctx: Billing, backfill_id: str, doc: dict[str, Any]) -> list[StoredEvent]:
    """For a revert: the events the backfill's commit replaced, those still voided by it and those a
    revert restored already."""
    return _range_events(ctx, doc, lambda e: _voided_by(e, backfill_id) or restored_by(e) == backfill_id)


def _replaced(event: StoredEvent, backfill_id: str, held_keys: set[tuple[str, str]], since: datetime) -> bool:
    if (event.customer_id, event.transaction_id) in held_keys:
        return False
    if event.copy_id and event.copy_id.startswith(f"{backfill_id}:"):
        return False  # the backfill's own, counted by its commit
    if event.received_at and parse_ts(event.received_at) >= since:
        return False  # sent after the commit started: counted on top
    return event.status == "accepted" or _voided_by(event, backfill_id)


def check(ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent], now: datetime) -> None:
    """Before the commit starts: the refusal a void of one of the events to replace would meet (the void
    horizon aside: the voids are the backfill's)."""
    events = replaced_events(ctx, backfill_id, doc, held, now)
    check_voidable([(e.customer_id, e.transaction_id) for e in events], now, backfill=backfill_id)


def void_replaced(
    ctx: Billing,
    backfill_id: str,
    doc: dict[str, Any],
    held: list[HeldEvent],
    since: datetime,
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> list[StoredEvent]:
    """Void the events to replace (one void each, under its own key); the events replaced. Raises
    ``ReplaceIncompleteError`` when a void's correction is pending or refused, and
    ``backfill_budget.DeadlineReachedError`` when ``budget`` runs out between two voids (the voided ones
    carry the marker: the next run voids the rest)."""
    reason = f"{marker(backfill_id)}: {doc['reason']}"[:500]
    ticket = str(doc.get("ticket") or f"backfill {backfill_id}")
    events = replaced_events(ctx, backfill_id, doc, held, since)
    pending = False
    for event in events:
        if event.status != "accepted":
            continue
        if budget is not None:
            budget.check(backfill_id)
        key = "backfill-replace:" + backfill_id + ":"
        key += idempotency.digest([event.customer_id, event.transaction_id], 32)
        request = VoidRequest(event.customer_id, event.transaction_id, reason, ticket, backfill=backfill_id)
        try:
            answer = void_event(request, actor, key, request_id, now)
        except ConflictError as exc:
            raise ReplaceIncompleteError(backfill_id) from exc
        if budget is not None:
            budget.spent()
        pending = pending or answer.get("correction") != "completed"
    if pending:
        raise ReplaceIncompleteError(backfill_id)
    return events


def as_held(events: list[StoredEvent]) -> list[HeldEvent]:
    """Stored events in the shape of held ones (for the invoices they touch and the preview's cells)."""
    return [
        HeldEvent(
            e.customer_id,
            e.transaction_id,
            e.fingerprint or "",
            {
                "transaction_id": e.transaction_id,
                "customer_id": e.customer_id,
                "code": e.meter_code,
                "timestamp": e.timestamp,
                "properties": jsonutil.loads(e.properties_json),
            },
        )
        for e in events
    ]


def restore_replaced(
    ctx: Billing,
    backfill_id: str,
    events: list[StoredEvent],
    revert: dict[str, Any],
    actor: str,
    request_id: str | None,
    now: datetime,
    budget: Budget | None = None,
) -> bool:
    """A revert's step: give back every event the replace voided (one restore each, once); True when
    every restored event's cell is recomputed. Raises ``backfill_budget.DeadlineReachedError`` when
    ``budget`` runs out between two restores (the restored ones are marked: the next run does the rest)."""
    reason = f"revert of backfill {backfill_id}: {revert.get('reason', '')}"[:500]
    ticket = revert.get("ticket") or f"backfill {backfill_id}"
    done = True
    for event in events:
        todo = restored_by(event) != backfill_id  # one restored already is only finished (if need be)
        if todo and budget is not None:
            budget.check(backfill_id)
        done = restore_event(event, backfill_id, reason, ticket, actor, request_id, now) and done
        if todo and budget is not None:
            budget.spent()
    return done
