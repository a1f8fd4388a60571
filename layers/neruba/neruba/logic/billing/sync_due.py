"""Stripe sync messages owed by committed documents (docs/billing.md, "Every committed document reaches
Stripe").

A document that Stripe must hear of records that in the transaction that creates it, as a marker in the
billing table's sparse ``by-due`` index (``dal.due_index``):

==================  ===========  =========================================  ==============================
document            marker       message to StripeSyncQueue                 written by
==================  ===========  =========================================  ==============================
finalized invoice   ``sync#n``   ``{"invoice_id"}``                         the finalizing transaction
credit note         ``cnsync#n`` ``{"credit_note_id"}``                     the credit note's transaction
voided invoice      ``vsync#n``  ``{"void_invoice_id"}``                    the void's transaction
==================  ===========  =========================================  ==============================

After its transaction the writer sends the message and removes the marker (``send_credit_note``,
``send_void``; the notes a window's settlement or a draft's revision wrote: ``send_written``; invoices:
``finalize.send_pending_syncs``). A process that stops in between leaves the
marker, and the billing scheduler (``send_pending``, markers older than ``SCHEDULER_LAG``) or the billing
sweep (claimed once per cool-down) sends the message and removes it. Sending twice is harmless: the sync
reads what is stored (a Stripe id already recorded ends it) and each Stripe call carries the document's
own Stripe idempotency key, so Stripe creates each credit note once and voids each invoice once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from neruba.dal.billing import DUE_SHARDS

if TYPE_CHECKING:
    from neruba.logic.billing.context import Billing

SCHEDULER_LAG = timedelta(minutes=5)  # a writer's own send after its commit is not doubled


@dataclass(frozen=True)
class Owed:
    """One document whose sync message is owed: ``kind`` (``credit_note`` or ``void``) and its id."""

    kind: str
    document_id: str

    def body(self) -> str:
        from neruba.logic.stripe.void_sync import void_message

        if self.kind == "void":
            return void_message(self.document_id)
        return json.dumps({"credit_note_id": self.document_id})


def owed(ctx: Billing, before: datetime) -> list[Owed]:
    """Every credit note and void marked at or before ``before`` whose message is not sent yet."""
    found: list[Owed] = []
    for shard in range(DUE_SHARDS):
        found += [Owed("credit_note", i) for i in ctx.billing.credit_notes.sync_pending(shard, before)]
        found += [Owed("void", inv.id) for inv in ctx.invoices.voids_pending(shard, before)]
    return found


def send(ctx: Billing, one: Owed) -> bool:
    """Send ``one``'s message and remove its marker; False when the queue refused it (the marker stays)."""
    from neruba.dal.queue import send_batch

    if not ctx.sync_queue_url or send_batch(ctx.sync_queue_url, [("0", one.body())]):
        return False
    if one.kind == "void":
        ctx.invoices.clear_sync_due(one.document_id)
    else:
        ctx.billing.credit_notes.clear_sync_due(one.document_id)
    return True


def send_credit_note(ctx: Billing, credit_note_id: str) -> bool:
    return send(ctx, Owed("credit_note", credit_note_id))


def send_written(ctx: Billing, actions: Iterable[dict[str, Any]]) -> int:
    """After a transaction committed: send the sync message of every credit note its ``actions`` wrote
    (a window's settlement, a draft's revision); how many were sent. A note whose send fails, or a
    process stopping first, leaves its marker to the scheduler or the sweep."""
    return sum(send_credit_note(ctx, note_id) for note_id in ctx.billing.credit_notes.written_by(actions))


def send_void(ctx: Billing, invoice_id: str) -> bool:
    return send(ctx, Owed("void", invoice_id))


def send_pending(ctx: Billing, now: datetime) -> int:
    """The scheduler's drain: send every owed message marked before ``now - SCHEDULER_LAG``; how many."""
    from neruba.observability import logger

    sent = 0
    for one in owed(ctx, now - SCHEDULER_LAG):
        if send(ctx, one):
            sent += 1
            logger.info("owed stripe sync message sent", extra={"kind": one.kind, "id": one.document_id})
        else:
            logger.warning("owed stripe sync message not sent; next run retries",
                           extra={"kind": one.kind, "id": one.document_id})  # fmt: skip
    return sent
