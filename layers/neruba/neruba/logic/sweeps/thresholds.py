"""The ``thresholds`` sweep check: the backstop of threshold invoicing.

After ingest counts a batch, each customer of it with an invoice threshold (its own
``invoice_threshold_minor`` or a plan version's default) gets a threshold check through the billing queue
(``logic.billing.threshold``). This check evaluates every customer with a threshold again, so a crossing
whose check was lost (a message not sent, a batch that failed after counting, a threshold set while the
ingest catalog cache still held the old record) is invoiced by the next sweep, from the subscription's
start (before its opening invoice too). Each threshold invoice issued is a repair of the report
(``threshold_invoiced``); a second sweep finds nothing (the evaluation is idempotent).

Cost: per customer one read of its record; per customer with a threshold, its subscriptions' listing
and per active subscription one state read and one rating of its open period to now.
"""

from __future__ import annotations

from neruba.logic.sweeps.runner import CheckResult, SweepContext


def thresholds_check(ctx: SweepContext) -> CheckResult:
    """Evaluate every customer with an invoice threshold (see the module docstring)."""
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.logic.billing.threshold_invoices import customer_thresholds, evaluate_customer

    billing = ctx.billing()
    result = CheckResult("thresholds", checked={"customers": 0, "subscriptions": 0})
    for customer_id in customer_ids(ctx.settings.catalog_table):
        try:
            threshold = customer_thresholds(billing, customer_id)
            if threshold is None or not threshold.any(ctx.now):
                continue
            result.checked["customers"] += 1
            found = evaluate_customer(billing, customer_id, ctx.now, threshold)
        except Exception as exc:  # one customer's failure must not stop the others
            result.fail("threshold_evaluation", exc, customer_id=customer_id)
            continue
        result.checked["subscriptions"] += len(found)
        for one in found:
            if one.outcome == "issued":
                result.found += 1
                result.repaired += 1
                result.repairs.append(
                    {
                        "kind": "threshold_invoiced",
                        "customer_id": customer_id,
                        "subscription_id": one.subscription_id,
                        "invoice_id": one.invoice_id,
                    }
                )
    return result
