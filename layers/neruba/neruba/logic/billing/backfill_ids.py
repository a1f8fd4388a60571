"""Held events whose transaction id a stored event already takes in a way the commit could not count.

A commit counts each held event once per ``(customer_id, transaction_id)``: where the id is stored
already, the stored event stands and the held one is not counted. That is right for a copy of the same
event, and wrong where the stored event is voided (the held event would be dropped, not counted) or, in
a ``mode: replace`` backfill, holds other content (the correction would never reach the usage). Such an
event is refused explicitly instead of ending silently "not counted":

- when it is sent (``POST /admin/backfills/{id}/events``): ``rejected`` with
  ``event_id_taken_by_voided_event`` or ``event_id_stored_with_other_content``;
- at preview and commit, for held events whose stored event changed since (another replace voided it,
  a live copy with other content arrived): ``409 backfill_event_ids_taken`` naming them in ``details``,
  nothing written. Send those events under new transaction ids in a new backfill.

Rules: docs/billing.md, "Held events under a stored transaction id".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from neruba.dal.backfills import HeldEvent
from neruba.dal.usage import StoredEvent
from neruba.errors import ConflictError
from neruba.logic.billing.context import Billing

VOIDED = "event_id_taken_by_voided_event"
OTHER_CONTENT = "event_id_stored_with_other_content"
MESSAGES = {
    VOIDED: "The transaction_id belongs to a voided event; its id cannot be counted again. "
    "Send the event under a new transaction_id.",
    OTHER_CONTENT: "The transaction_id belongs to a stored event with other content, which a replace "
    "keeps as it is. Send the corrected event under a new transaction_id.",
}


def problem(stored: StoredEvent | None, held: HeldEvent, backfill_id: str, mode: str) -> str | None:
    """Why the commit could not count ``held`` over ``stored`` (None when it can, or when the stored
    event stands for it: the same content, or the backfill's own copy)."""
    if stored is None or (stored.copy_id or "").startswith(f"{backfill_id}:"):
        return None
    if stored.status == "voided":
        return VOIDED
    other = stored.fingerprint is not None and stored.fingerprint != held.fingerprint
    if mode == "replace" and stored.status == "accepted" and other:
        return OTHER_CONTENT
    return None


def problems(
    ctx: Billing, backfill_id: str, mode: str, held: Iterable[HeldEvent]
) -> dict[tuple[str, str], str]:
    """Per ``(customer_id, transaction_id)`` of ``held``, why it could not be counted (one batch read)."""
    held = list(held)
    if not held:
        return {}
    stored = ctx.usage.get_events((e.customer_id, e.transaction_id) for e in held)
    found: dict[tuple[str, str], str] = {}
    for event in held:
        key = (event.customer_id, event.transaction_id)
        why = problem(stored.get(key), event, backfill_id, mode)
        if why is not None:
            found[key] = why
    return found


def require_countable(ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent]) -> None:
    """Before a preview or a commit of an open backfill: 409 ``backfill_event_ids_taken`` when a held
    event could not be counted under its transaction id."""
    found = problems(ctx, backfill_id, str(doc.get("mode") or "add"), held)
    if not found:
        return
    details = [{"customer_id": c, "transaction_id": t, "code": why} for (c, t), why in sorted(found.items())]
    raise ConflictError(
        f"{len(details)} held event(s) of backfill {backfill_id} cannot be counted: their transaction id "
        "belongs to a stored event that is voided or holds other content (see details). Nothing was "
        "written. Cancel this backfill and send its events again in a new backfill, those under new "
        "transaction ids.",
        code="backfill_event_ids_taken",
        details=details,
    )
