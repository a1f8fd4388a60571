"""Mark the credit notes and voids written before the owed-sync mark whose Stripe sync did nothing yet.

Credit notes and voids now carry, from their own transaction, a mark in the billing table's ``by-due``
index until their Stripe sync message is sent (docs/billing.md, "Every committed document reaches
Stripe"); the scheduler and the sweep send what a stopped writer left. Older ones carry no mark: each
credit note without a Stripe id, and each void invoice whose void sync has recorded nothing, is marked now
(``due_at`` its creation or void time), so a message lost before this release is sent too. A message sent
again for a document already in Stripe makes nothing twice (the sync's stored ids and Stripe idempotency
keys).

Idempotent: the mark is set only where no ``due_shard`` is stored (``maintenance.set_missing``); a writer
that clears a mark first makes this set it again at worst, and the second message is harmless.
"""

from __future__ import annotations

import json
from typing import Any

from neruba.dal import maintenance
from neruba.dal.credit_notes import SYNC_DUE
from neruba.dal.due_index import shard_of
from neruba.dal.invoices import VOID_SYNC_DUE
from neruba.migrations import MigrationContext


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value or {})


def apply(ctx: MigrationContext) -> dict[str, Any]:
    table = ctx.settings.billing_table
    notes = voids = 0
    for item in maintenance.scan(table, "begins_with(pk, :c) AND sk = :s", {":c": "CN#", ":s": "#"}):
        if _json(item.get("stripe")).get("credit_note_id") or not item.get("created_at"):
            continue
        note_id = str(item["pk"]).removeprefix("CN#")
        mark = {"due_shard": shard_of(note_id, SYNC_DUE), "due_at": str(item["created_at"])}
        notes += maintenance.set_missing(table, item, mark)
    for item in maintenance.scan(table, "begins_with(pk, :i) AND sk = :s", {":i": "INV#", ":s": "#"}):
        if item.get("status") != "void" or _json(item.get("stripe")).get("void") or not item.get("voided_at"):
            continue
        invoice_id = str(item["pk"]).removeprefix("INV#")
        mark = {"due_shard": shard_of(invoice_id, VOID_SYNC_DUE), "due_at": str(item["voided_at"])}
        voids += maintenance.set_missing(table, item, mark)
    return {"credit_notes": notes, "voids": voids}
