"""Part of the ``billing`` sweep check: credit notes whose Stripe sync message was never sent.

A credit note is sent to StripeSyncQueue after its transaction; a process that stops in between leaves it
without a message. For each catalog customer, the credit note postings of the last ``LOOKBACK`` (older
than ``LAG``, so a send in flight is not doubled) name their credit notes; each one without a Stripe id
is claimed (``OpsRepository.claim_resend``, kind ``credit_note``, cool-down as the billing check's) and
sent again as ``{"credit_note_id"}`` (repair ``credit_note_sync_sent``). The sync is idempotent (the
stored Stripe id and the Stripe idempotency key), so a second message creates nothing.

Cost: one ledger query per customer bounded to ``LOOKBACK``, one read per credit note found.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from neruba import bootstrap

if TYPE_CHECKING:
    from neruba.dal.ops import OpsRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.sweeps.runner import CheckResult, SweepContext

LOOKBACK = timedelta(days=2)
LAG = timedelta(minutes=15)


def unsynced_credit_notes(
    ctx: SweepContext,
    billing: Billing,
    ops: OpsRepository,
    result: CheckResult,
    details: dict[str, Any],
    cooldown: timedelta,
) -> None:
    from neruba.dal.queue import send_batch
    from neruba.dal.sweep_repairs import customer_ids

    ledger = bootstrap.ledger()
    notes = billing.billing.credit_notes
    result.checked["credit_notes"] = 0
    for customer_id in customer_ids(ctx.settings.catalog_table):
        try:
            docs = ledger.posting_docs_between(customer_id, ctx.now - LOOKBACK, ctx.now - LAG)
        except Exception as exc:
            result.fail("credit_note_postings", exc, customer_id=customer_id)
            continue
        for doc in docs:
            note_id = (doc.get("metadata") or {}).get("credit_note_id")
            if doc.get("reason") != "credit_note" or not note_id:
                continue
            result.checked["credit_notes"] += 1
            ids = {"customer_id": customer_id, "credit_note_id": note_id}
            try:
                note = notes.get(str(note_id))
                if note is None or (note.get("stripe") or {}).get("credit_note_id"):
                    continue
                result.found += 1
                if not ops.claim_resend("credit_note", str(note_id), ctx.now, cooldown):
                    details["in_flight"].append({"kind": "credit_note_sync", **ids})
                    continue
                if send_batch(billing.sync_queue_url, [("0", json.dumps({"credit_note_id": note_id}))]):
                    result.fail("send", "StripeSyncQueue refused the message", **ids)
                    continue
                result.repaired += 1
                result.repairs.append({"kind": "credit_note_sync_sent", **ids})
            except Exception as exc:
                result.fail("credit_note_sync", exc, **ids)
