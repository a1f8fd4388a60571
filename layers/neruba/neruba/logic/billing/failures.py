"""A billing job given up: its last receive failed, so SQS parks it in BillingDLQ next.

:func:`job_failed` counts the failure on the job's run and writes the ``billing_run.failed`` webhook event
in one transaction, once per ``attempt`` (the message id and its receive count): a handler that dies
after the commit and is given the same receive again writes neither twice. (A message redriven from the
DLQ that fails its last receive again is a new failure and is reported again.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from neruba.dal.transaction import Cancelled, Transaction
from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.logic.billing.context import Billing
    from neruba.models.billing import BillingJob


def job_failed(ctx: Billing, job: BillingJob, error: BaseException, now: datetime, attempt: str) -> bool:
    """Record the given-up job (run counter and event together); False when ``attempt`` was recorded."""
    from neruba.logic.billing.windows import invoice_id_for
    from neruba.logic.webhooks.outbox import once_actions

    data = {
        "subscription_id": job.subscription_id,
        "customer_id": job.customer_id,
        "window_id": job.window_id,
        "invoice_id": invoice_id_for(job.window_id),
        "kind": job.kind,
        "run_id": job.run_id,
        "error": f"{type(error).__name__}: {error}"[:500],
        "failed_at": iso(now),
    }
    event = once_actions("billing_run.failed", job.customer_id, data, now, attempt)
    counted = [ctx.billing.run_counter_item(job.run_id, "failed")] if job.run_id else []
    for actions in ([*event, *counted], event):  # without the counter when the run is gone
        unit = Transaction()
        unit.extend(actions[:1], name="event").extend(actions[1:2], name="mark").extend(
            actions[2:], name="run"
        )
        try:
            unit.commit()
        except Cancelled as exc:
            if exc.failed("mark"):
                return False
            if exc.failed("run"):
                continue
            raise
        return True
    return False
