"""Part of the ``billing`` sweep check: credit notes and voids whose Stripe sync message was never sent.

The transaction that writes a credit note, or voids an invoice, marks the document owed to Stripe
(``logic.billing.sync_due``); the writer sends the message after its commit and removes the marker. A
process that stops in between leaves the marker, whatever the document came from (an operator's credit
note, a correction settled by credit notes, a void). Each marker older than ``LAG`` (so a send in flight
is not doubled) is claimed (``OpsRepository.claim_resend``, kind ``credit_note`` or ``void_sync``,
cool-down as the billing check's) and its message sent (repairs ``credit_note_sync_sent``,
``void_sync_sent``), which removes the marker. The sync is idempotent (the stored Stripe state and the
Stripe idempotency keys), so a second message creates nothing.

Cost: one index query per shard and kind, returning only owed documents.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neruba.dal.ops import OpsRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.sweeps.runner import CheckResult, SweepContext

LAG = timedelta(minutes=15)
CLAIMS = {"credit_note": "credit_note", "void": "void_sync"}


def owed_syncs(
    ctx: SweepContext,
    billing: Billing,
    ops: OpsRepository,
    result: CheckResult,
    details: dict[str, Any],
    cooldown: timedelta,
) -> None:
    from neruba.logic.billing.sync_due import owed, send

    try:
        found = owed(billing, ctx.now - LAG)
    except Exception as exc:
        result.fail("owed_syncs", exc)
        return
    result.checked["owed_syncs"] = len(found)
    for one in found:
        ids = {"credit_note_id" if one.kind == "credit_note" else "invoice_id": one.document_id}
        result.found += 1
        try:
            if not ops.claim_resend(CLAIMS[one.kind], one.document_id, ctx.now, cooldown):
                details["in_flight"].append({"kind": f"{one.kind}_sync", **ids})
                continue
            if not send(billing, one):
                result.fail("send", "StripeSyncQueue refused the message", **ids)
                continue
            result.repaired += 1
            result.repairs.append({"kind": f"{one.kind}_sync_sent", **ids})
        except Exception as exc:
            result.fail(f"{one.kind}_sync", exc, **ids)
