"""Part of the ``billing`` sweep check: backfills left ``committing`` (or ``reverting``) without a message
to finish them.

A commit hands its rest to the billing worker with a ``{"backfill": id}`` message on BillingQueue
(``logic.billing.backfill_commit``); a process that stops between the commit's first step and that send,
or a send that fails, leaves the backfill ``committing`` with nothing to resume it but the next commit
call. Each backfill ``committing`` for longer than ``LAG`` is claimed (``OpsRepository.claim_resend``,
kind ``backfill``, the billing check's cool-down) and its message sent again (repair
``backfill_commit_resent``). A revert (``logic.billing.backfill_revert``) uses the same message: one
left ``reverting`` for longer than ``LAG`` gets it again (``backfill_revert_resent``). Every step is
idempotent, so a message that was not lost after all only makes the worker find less to do.

Cost: one Query of the backfills' partition.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from neruba.timefmt import parse_ts

if TYPE_CHECKING:
    from neruba.dal.ops import OpsRepository
    from neruba.logic.billing.context import Billing
    from neruba.logic.sweeps.runner import CheckResult, SweepContext

LAG = timedelta(minutes=15)  # longer than a commit runs in a request, shorter than the worker's retries


def stuck_backfills(
    ctx: SweepContext,
    billing: Billing,
    ops: OpsRepository,
    result: CheckResult,
    details: dict[str, Any],
    cooldown: timedelta,
) -> None:
    from neruba.dal.queue import send_batch
    from neruba.logic.billing.backfill_commit import message

    result.checked["backfills_committing"] = 0
    try:
        found = billing.billing.backfills.all()
    except Exception as exc:
        result.fail("backfills", exc)
        return
    result.checked["backfills_reverting"] = 0
    for backfill in found:
        if backfill.status not in ("committing", "reverting"):
            continue
        action = "commit" if backfill.status == "committing" else "revert"
        result.checked[f"backfills_{backfill.status}"] += 1
        ids = {"backfill_id": backfill.id}
        since = backfill.committing_at if action == "commit" else backfill.reverting_at
        if since and parse_ts(since) > ctx.now - LAG:
            continue  # its commit (or revert) may still be running
        result.found += 1
        try:
            if not ops.claim_resend("backfill", backfill.id, ctx.now, cooldown):
                details["in_flight"].append({"kind": f"backfill_{action}", **ids})
                continue
            if send_batch(billing.billing_queue_url, [("0", message(backfill.id))]):
                result.fail("send", "BillingQueue refused the message", **ids)
                continue
            result.repaired += 1
            result.repairs.append({"kind": f"backfill_{action}_resent", **ids})
        except Exception as exc:
            result.fail(f"backfill_{action}", exc, **ids)
