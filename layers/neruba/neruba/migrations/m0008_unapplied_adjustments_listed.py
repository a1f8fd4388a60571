"""List the adjustments written before the list of those not applied yet, so corrections find them.

A correction after the end (``logic.billing.corrections.correction_invoice``) now reads the
subscription's pending adjustments through the ``by-list`` index (``list_pk = ADJP#{subscription}``,
``list_sk`` the adjustment's key; ``dal.billing.BillingRepository.pending_adjustments``), not its whole
``ADJ#`` partition. An adjustment is listed by the put that writes it pending and taken out by the update
applying it; older pending ones carry no list keys: each is listed now.

Idempotent: the keys are set only where none is stored (``maintenance.set_missing``). One applied
between the scan and the update is listed although applied: the reader keeps only the items still
pending, so it costs a read, never a second billing.
"""

from __future__ import annotations

from typing import Any

from neruba.dal import maintenance
from neruba.dal.billing import PENDING
from neruba.migrations import MigrationContext


def apply(ctx: MigrationContext) -> dict[str, Any]:
    table = ctx.settings.billing_table
    listed = 0
    for item in maintenance.scan(table, "begins_with(pk, :a)", {":a": "ADJ#"}):
        if item.get("status") != "pending" or item.get("list_pk"):
            continue
        subscription_id = str(item["pk"]).removeprefix("ADJ#")
        mark = {"list_pk": f"{PENDING}{subscription_id}", "list_sk": str(item["sk"])}
        listed += maintenance.set_missing(table, item, mark)
    return {"pending_adjustments": listed}
