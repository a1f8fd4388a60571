"""The order of backfills over one range: which later backfills stand over a backfill's revert, and the
events a revert takes back (docs/billing.md, "Backfills over the same range").

A revert of backfill A gives back the events A's replace voided and voids what A counted. That is exact
only while no later ``mode: replace`` backfill has been over them: B's replace voided A's counted events
(B's revert would give them back after A's revert took them out) and counts its own events where A's
restores would put the originals back (the range counted twice). So a revert is refused (409
``backfill_superseded``, the later ids in ``details``) while a replace backfill whose commit started
after A's and whose range meets A's (a customer, a meter and an hour in common) is committing, committed
or reverting, or while an event of A's (or a corrected copy of one) is voided by another backfill. In
reverse order, newest first, each revert finds the range as its commit left it.

The events a revert takes back are those its commit counted and, for each one an operator amended, the
corrected copy (copy after copy): the amend corrected the backfill's event, and its revert takes the
backfill's usage out whatever the operator did to it. An event an operator voided is out already.

A commit waits (409 ``backfill_range_busy``) while a backfill it contends with is committing or
reverting: a replace contends with every backfill over its range, an add with the replaces over its
range (:func:`contenders`). A move of a backfill to ``committing`` or ``reverting`` is conditional on
those backfills keeping the status they were read with, so two such moves over one range never both
start on a stale read (:func:`guards`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from neruba import jsonutil
from neruba.dal.backfills import Backfill
from neruba.dal.usage import StoredEvent
from neruba.errors import ConflictError
from neruba.logic.billing.backfills import backfills
from neruba.logic.billing.context import Billing
from neruba.timefmt import parse_ts

STANDING = ("committing", "committed", "reverting")  # a backfill whose events count (or are moving)


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two backfills meet: a customer and a meter in common, and their ranges share time."""
    if not set(a["customer_ids"]) & set(b["customer_ids"]):
        return False
    if not set(a["meter_codes"]) & set(b["meter_codes"]):
        return False
    start_a, end_a = parse_ts(str(a["start"])), parse_ts(str(a["end"]))
    return start_a < parse_ts(str(b["end"])) and parse_ts(str(b["start"])) < end_a


def neighbours(ctx: Billing, found: Backfill) -> list[Backfill]:
    """The other backfills whose range meets this one's."""
    return [b for b in backfills(ctx).all() if b.id != found.id and overlaps(found.document, b.document)]


def _later(found: Backfill, other: Backfill) -> bool:
    """``other``'s commit started after ``found``'s (stored times are fixed-width text; a tie: by id)."""
    return (other.committing_at or "", other.id) > (found.committing_at or "", found.id)


def _others_copy(event: StoredEvent, owner: str | None) -> bool:
    """``event`` is the corrected copy another backfill than ``owner`` counted (not an operator's)."""
    copy_id = event.copy_id or ""
    return bool(event.amends) and not copy_id.startswith("amend:") and not copy_id.startswith(f"{owner}:")


def lineage(ctx: Billing, keys: Iterable[tuple[str, str]], owner: str | None = None) -> list[StoredEvent]:
    """The stored events of ``keys`` and the corrected copies of those an operator amended, copy after
    copy (``(customer_id, transaction_id)`` keys); a copy another backfill than ``owner`` counted under
    a voided event's id is that backfill's, not followed."""
    seen: dict[tuple[str, str], StoredEvent] = {}
    todo = list(keys)
    first = set(todo)
    while todo:
        found = ctx.usage.get_events(k for k in todo if k not in seen)
        todo = []
        for key, event in found.items():
            if key not in first and _others_copy(event, owner):
                continue
            seen[key] = event
            record = jsonutil.loads(event.void_json) if event.void_json else {}
            if event.status == "voided" and record.get("amended_by"):
                todo.append((event.customer_id, str(record["amended_by"])))
    return [seen[k] for k in sorted(seen)]


def void_owner(event: StoredEvent) -> str | None:
    """The backfill whose void holds the event voided, if a backfill's."""
    if event.status != "voided" or not event.void_json:
        return None
    return str(jsonutil.loads(event.void_json).get("backfill") or "") or None


def check_not_superseded(ctx: Billing, found: Backfill, events: list[StoredEvent]) -> None:
    """409 ``backfill_superseded`` when a later backfill stands over the revert of ``found`` (its range
    or ``events``, those the revert would take back)."""
    ids = {
        b.id
        for b in neighbours(ctx, found)
        if b.status in STANDING and b.document.get("mode") == "replace" and _later(found, b)
    }
    ids |= {owner for e in events if (owner := void_owner(e)) is not None and owner != found.id}
    if ids:
        later = sorted(ids)
        raise ConflictError(
            f"Backfill {found.id} cannot be reverted yet: the later backfill(s) {', '.join(later)} replaced "
            "its range or its events since. Revert those first (newest first), then this one.",
            code="backfill_superseded",
            details=[{"backfill_id": i} for i in later],
        )


def check_not_relinked(ctx: Billing, found: Backfill, restoring: list[StoredEvent]) -> None:
    """409 ``backfill_superseded`` when an event the revert of ``found`` would give back names in its void
    record a corrected copy another backfill counted, and that backfill still stands (a later backfill
    sent a correction under its id: given back, the event would count beside that copy, or beside the
    copy that supersedes it; that backfill's revert must come first)."""
    named = {
        (e.customer_id, str(record["amended_by"]))
        for e in restoring
        if e.status == "voided" and (record := jsonutil.loads(e.void_json or "{}")).get("amended_by")
    }
    copies = ctx.usage.get_events(named)
    owners = {str(c.copy_id).split(":", 1)[0] for c in copies.values() if _others_copy(c, found.id)}
    standing = {b.id for b in backfills(ctx).all() if b.id in owners and b.status in STANDING}
    if standing:
        later = sorted(standing)
        raise ConflictError(
            f"Backfill {found.id} cannot be reverted yet: the later backfill(s) {', '.join(later)} corrected "
            "events it would give back. Revert those first (newest first), then this one.",
            code="backfill_superseded",
            details=[{"backfill_id": i} for i in later],
        )


def contenders(ctx: Billing, found: Backfill) -> list[Backfill]:
    """The backfills over ``found``'s range its commit must not run beside: for a replace, all of them
    (its voids would race with their counting or restores); for an add, the replaces (they void what it
    counts, or count where it adds). Two adds over one range count distinct events and do not meet."""
    others = neighbours(ctx, found)
    if found.document.get("mode") == "replace":
        return others
    return [b for b in others if b.document.get("mode") == "replace"]


def check_not_busy(ctx: Billing, found: Backfill) -> None:
    """409 ``backfill_range_busy`` when a backfill ``found``'s commit contends with (:func:`contenders`)
    is committing or reverting: the commit waits for it."""
    busy = sorted(b.id for b in contenders(ctx, found) if b.status in ("committing", "reverting"))
    if busy:
        raise ConflictError(
            f"The backfill(s) {', '.join(busy)} over the same range are being committed or reverted; "
            "commit this one when they are done.",
            code="backfill_range_busy",
            details=[{"backfill_id": i} for i in busy],
        )


def guards(ctx: Billing, found: Backfill, commit: bool = False) -> list[dict[str, Any]]:
    """Condition checks that the backfills over ``found``'s range whose status may still move keep the
    status read now (for a commit, those it contends with: :func:`contenders`)."""
    repo = backfills(ctx)
    moving = ("open", *STANDING)
    others = contenders(ctx, found) if commit else neighbours(ctx, found)
    return [repo.status_check(b.id, b.status) for b in others if b.status in moving]
