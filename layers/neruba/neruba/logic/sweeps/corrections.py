"""The ``corrections`` sweep check: late events on ended subscriptions are billed, never left unbilled.

For every customer, ``logic.billing.corrections.late_corrections`` re-rates the finalized usage invoices
of its ended subscriptions whose period ended within the ingest's late-event limit, and bills any
difference on a correction invoice (or credit note), issued at once and sent to Stripe. Each one is a
repair of the report (``correction_invoiced``). A difference against a line re-rated 0 as unbillable is
found but not billed (``details.withheld``, ``logic.billing.unbillable``). A difference a draft invoice
(a window in its grace period) carries is left for a run after it is finalized, and one taking back usage
of an invoice with a dispute open for a run after it is decided (``details.deferred``, with ``reason``);
differences a final window left pending for a dispute are billed once it is decided.
A second sweep finds nothing (the adjustments are recorded with the invoice, in one transaction).

Cost: per customer one query of its subscriptions and one state read each; for the subscriptions whose
billing ended after the late-event horizon, one paged query of the customer's invoices from the horizon
less the interval's longest period on (by-list; none without such a subscription), and one rating and
one query of its own adjustments per invoice still correctable; per such subscription without a
difference, one query of its pending adjustments.
"""

from __future__ import annotations

from typing import Any

from neruba.logic.sweeps.runner import CheckResult, SweepContext


def corrections_check(ctx: SweepContext) -> CheckResult:
    """Bill late events after the end (see the module docstring)."""
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.logic.billing.corrections import late_corrections
    from neruba.observability import logger

    billing = ctx.billing()
    result = CheckResult("corrections", checked={"customers": 0})
    failed: list[dict[str, Any]] = []
    withheld: list[dict[str, Any]] = []  # differences against an unbillable re-rating: reported, not billed
    deferred: list[dict[str, Any]] = []  # a draft or a dispute holds them: left for the next run
    for customer_id in customer_ids(ctx.settings.catalog_table):
        result.checked["customers"] += 1
        try:
            issued = late_corrections(billing, customer_id, ctx.now, withheld, deferred)
        except Exception as exc:  # one customer's failure must not stop the others
            logger.exception("late corrections failed", extra={"customer_id": customer_id})
            failed.append({"customer_id": customer_id, "error": type(exc).__name__})
            continue
        for one in issued:
            result.found += 1
            result.repaired += 1
            result.repairs.append({"kind": "correction_invoiced", "customer_id": customer_id, **one})
    result.found += len(failed) + len(withheld) + len(deferred)
    result.details = {"failed": failed, "withheld": withheld, "deferred": deferred}
    return result
