"""The ``ledger`` sweep check: every posting of the window balances, every materialised balance matches
its entries.

Each customer is checked on its own: a failure (a read, a reconciliation that cannot run) is recorded in
the result's ``failures`` with the customer's id and the check goes on with the next customer.

For each catalog customer, the postings with ``at`` in the window are read as stored (one query bounded
by the sort key ``PST#{at}``). A posting whose debits differ from its credits (or with a malformed entry)
is reported loudly, as an ``ERROR`` log line with its ids and the ``LedgerUnbalancedPostings`` metric, and
never edited: postings are immutable, a correction is a new posting made by an operator.

Customers with postings in the window (and none unbalanced) are then reconciled with
``LedgerRepository.reconcile``: every balance recomputed from all the customer's postings. A drifted
balance is rebuilt from the entries, conditionally: the balance item is read before and after the
reconciliation and the repair is written only if both reads agree (same ``bal`` and ``postings`` counter)
and the item still holds them at the write, so a posting committed meanwhile is never overwritten (the
next sweep looks again). A grant whose ``remaining_minor`` disagrees with its ledger balance is reported,
not repaired (which side is wrong needs an operator).

Cost per run: one catalog query per 100 customers, one ledger query per customer (returning only the
window's postings), and for each customer with postings in the window a reconciliation (every posting of
that customer, its balances twice, its grants). Customers without activity in the window cost one query;
``neruba sweep --check ledger --from ... --to ...`` reconciles a longer history.
"""

from __future__ import annotations

from typing import Any

from neruba import bootstrap
from neruba.logic.sweeps.runner import CheckResult, SweepContext


def posting_problem(doc: dict[str, Any]) -> str | None:
    """Why a stored posting document is not a valid double entry (None when it balances).

    Example:
        >>> posting_problem({"entries": [{"account": "cash", "debit_minor": 5},
        ...                              {"account": "receivable", "credit_minor": 4}]})
        'debits 5 != credits 4'
    """
    debits = credits = 0
    entries = doc.get("entries")
    if not isinstance(entries, list) or len(entries) < 2:
        return "fewer than two entries"
    for entry in entries:
        debit, credit = entry.get("debit_minor", 0), entry.get("credit_minor", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (debit, credit)):
            return f"entry {entry.get('account')!r} has a non-integer or negative amount"
        if (debit > 0) == (credit > 0):
            return f"entry {entry.get('account')!r} is not exactly one of debit or credit"
        debits += debit
        credits += credit
    if debits != credits:
        return f"debits {debits} != credits {credits}"
    return None


def ledger_check(ctx: SweepContext) -> CheckResult:
    """Check the window's postings and reconcile the balances of the customers they belong to."""
    from neruba.dal.sweep_repairs import customer_ids

    repo = bootstrap.ledger()
    result = CheckResult(
        "ledger", checked={"customers": 0, "postings": 0, "balances": 0, "customers_reconciled": 0}
    )
    details: dict[str, list[dict[str, Any]]] = {
        "unbalanced_postings": [],
        "grant_drift": [],
        "not_reconciled": [],
        "balance_changed_meanwhile": [],
    }
    for customer_id in customer_ids(ctx.settings.catalog_table):
        result.checked["customers"] += 1
        try:  # one customer's failure is reported and never stops the others
            _check_customer(ctx, repo, customer_id, result, details)
        except Exception as exc:
            result.fail("customer", exc, customer_id=customer_id)
    result.details = {**details, "window_start": ctx.start.isoformat(), "window_end": ctx.end.isoformat()}
    return result


def _check_customer(
    ctx: SweepContext,
    repo: Any,
    customer_id: str,
    result: CheckResult,
    details: dict[str, list[dict[str, Any]]],
) -> None:
    docs = repo.posting_docs_between(customer_id, ctx.start, ctx.end)
    if not docs:
        return
    result.checked["postings"] += len(docs)
    unbalanced = [_report_unbalanced(customer_id, doc) for doc in docs if posting_problem(doc)]
    if unbalanced:
        result.found += len(unbalanced)
        details["unbalanced_postings"] += unbalanced
        details["not_reconciled"].append({"customer_id": customer_id, "reason": "unbalanced posting"})
        return  # balances computed from bad entries would be wrong too: an operator must look
    _reconcile(ctx, repo, customer_id, result, details)


def _report_unbalanced(customer_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    from neruba.observability import logger, metrics

    problem = {
        "customer_id": customer_id,
        "posting_id": doc.get("id"),
        "idempotency_key": doc.get("idempotency_key"),
        "currency": doc.get("currency"),
        "at": doc.get("at"),
        "problem": posting_problem(doc),
    }
    metrics.add_metric(name="LedgerUnbalancedPostings", unit="Count", value=1)
    logger.error("unbalanced ledger posting (left as written)", extra=problem)
    return problem


def _reconcile(
    ctx: SweepContext,
    repo: Any,
    customer_id: str,
    result: CheckResult,
    details: dict[str, list[dict[str, Any]]],
) -> None:
    from neruba.dal.sweep_repairs import RepairConflictError, rebuild_balance
    from neruba.domain.ledger import LedgerRuleError
    from neruba.observability import logger

    before = repo.balance_records(customer_id)
    try:
        differences = repo.reconcile(customer_id)
    except LedgerRuleError as exc:  # an invalid posting outside the window
        result.found += 1
        details["not_reconciled"].append({"customer_id": customer_id, "reason": str(exc)})
        result.fail("reconcile", exc, customer_id=customer_id)
        return
    after = repo.balance_records(customer_id)
    result.checked["customers_reconciled"] += 1
    result.checked["balances"] += len(after)
    for difference in differences:
        result.found += 1
        if difference.kind == "grant":
            details["grant_drift"].append({"customer_id": customer_id, **difference.view()})
            logger.error("credit grant remainder differs from the ledger", extra={"customer_id": customer_id})
            continue
        key = (difference.currency, difference.key)
        if before.get(key) != after.get(key) or (after.get(key) or (0, 0))[0] != difference.stored:
            details["balance_changed_meanwhile"].append({"customer_id": customer_id, **difference.view()})
            continue
        try:
            rebuild_balance(
                ctx.settings.ledger_table,
                customer_id,
                difference.currency,
                difference.key,
                expected=after.get(key),
                value=difference.computed,
                at=ctx.now,
            )
        except RepairConflictError:
            details["balance_changed_meanwhile"].append({"customer_id": customer_id, **difference.view()})
            continue
        result.repaired += 1
        result.repairs.append(
            {
                "kind": "balance_rebuilt",
                "customer_id": customer_id,
                "currency": difference.currency,
                "balance": difference.key,
                "before": difference.stored,
                "after": difference.computed,
            }
        )
