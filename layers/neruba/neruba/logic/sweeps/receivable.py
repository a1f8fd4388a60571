"""The ``receivable`` sweep check: every invoice's status agrees with what the customer owes on it.

For each customer, each invoice's share of the ``receivable`` account is read from the ledger: the
receivable movement of every posting that names the invoice (its invoice postings and revisions, the
grant posting of a top-up invoice, the payments booked against it). The invoice document says what should
be owed on it: its ``total_minor`` less the ``amount_paid_minor`` it records (an invoice marked ``paid``
before that field existed counts as fully paid). Reported as failures (``found``, never repaired: money is
an operator's call):

* ``receivable_differs``: the ledger's amount owed on the invoice is not what the invoice says (a ``paid``
  invoice with money still owed on it, an open invoice whose payments the invoice does not record, ...);
* ``paid_but_owed`` / ``open_but_settled``: the status disagrees with the invoice's own remaining amount;
* ``payment_for_unknown_invoice``: a payment names an invoice that is not one of the customer's (cash
  credited to the wrong customer).

A void invoice is expected to owe nothing. Only customers with a posting in the sweep's window are
compared (a payment, an invoice, a refund is what changes what is owed; a longer window, e.g.
``neruba sweep --check receivable --from ...``, compares more). Cost: one bounded query of the window's
postings per customer; for those with postings, one paged query of their invoices (by-list) and one of
all their postings.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from neruba import bootstrap
from neruba.logic.stripe.checks import amount_due, paid_level
from neruba.logic.sweeps.runner import CheckResult, SweepContext

if TYPE_CHECKING:
    from neruba.dal.invoices import Invoice

OPEN = ("draft", "finalized", "payment_failed")


def invoice_owed(invoice: Invoice) -> int:
    """What the invoice document says is still owed on it (0 for a void invoice).

    Example:
        >>> from neruba.dal.invoices import invoice_record
        >>> doc = {"id": "in_1", "status": "finalized", "total_minor": 2000, "amount_paid_minor": 1500}
        >>> invoice_owed(invoice_record(doc))
        500
    """
    if invoice.status == "void":
        return 0
    doc = invoice.document  # credit notes take off what was due and what they gave as customer credit
    credited = int(doc.get("pre_payment_credited_minor") or 0) + int(doc.get("credited_balance_minor") or 0)
    return invoice.total_minor - paid_level(invoice) - credited


def status_problem(invoice: Invoice) -> str | None:
    """``paid_but_owed`` / ``open_but_settled`` when the status disagrees with the remaining amount."""
    remaining = amount_due(invoice) - paid_level(invoice)
    if invoice.status == "paid" and remaining > 0:
        return "paid_but_owed"
    if invoice.status in ("finalized", "payment_failed") and amount_due(invoice) > 0 >= remaining:
        return "open_but_settled"
    return None


def receivable_by_invoice(postings: list[Any]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Per invoice id, the receivable movement of the postings naming it; and the (posting id, invoice id)
    of every payment, for the caller to check the invoice is the customer's."""
    owed: dict[str, int] = defaultdict(int)
    payments: list[tuple[str, str]] = []
    for posting in postings:
        split = posting.metadata.get("receivable_by_invoice")
        if split:  # one posting for several invoices (a void and its replacement): each its own part
            for each, amount in split.items():
                owed[str(each)] += int(amount)
            continue
        invoice_id = posting.metadata.get("invoice_id")
        if invoice_id is None and posting.source == "invoice":
            invoice_id = posting.source_id
        if not invoice_id:
            continue
        owed[str(invoice_id)] += int(posting.deltas().get("receivable", 0))
        if posting.reason == "payment":
            payments.append((posting.posting_id, str(invoice_id)))
    return dict(owed), payments


def receivable_check(ctx: SweepContext) -> CheckResult:
    """Compare each invoice's status and remaining amount with the customer's receivable postings."""
    from neruba.dal.sweep_repairs import customer_ids
    from neruba.observability import logger

    invoices = bootstrap.invoices()
    ledger = bootstrap.ledger()
    result = CheckResult(
        "receivable", checked={"customers": 0, "customers_with_postings": 0, "invoices": 0, "payments": 0}
    )
    failures: list[dict[str, Any]] = []
    for customer_id in customer_ids(ctx.settings.catalog_table):
        result.checked["customers"] += 1
        if not ledger.posting_docs_between(customer_id, ctx.start, ctx.end):
            continue  # nothing posted in the window: nothing changed what is owed
        result.checked["customers_with_postings"] += 1
        docs = invoices.of_customer(customer_id)
        owed, payments = receivable_by_invoice(_all_postings(ledger, customer_id))
        result.checked["invoices"] += len(docs)
        result.checked["payments"] += len(payments)
        for invoice in docs:
            ids = {"customer_id": customer_id, "invoice_id": invoice.id, "status": invoice.status}
            expected, booked = invoice_owed(invoice), owed.get(invoice.id, 0)
            if expected != booked:
                failures.append(
                    {"kind": "receivable_differs", **ids, "invoice_owed": expected, "ledger_owed": booked}
                )
            problem = status_problem(invoice)
            if problem is not None:
                failures.append(
                    {"kind": problem, **ids, "remaining_minor": amount_due(invoice) - paid_level(invoice)}
                )
        known = {doc.id for doc in docs}
        for posting_id, invoice_id in payments:
            if invoice_id not in known:
                failures.append(
                    {
                        "kind": "payment_for_unknown_invoice",
                        "customer_id": customer_id,
                        "invoice_id": invoice_id,
                        "posting_id": posting_id,
                    }
                )
    for failure in failures:
        logger.error("invoice and receivable disagree", extra=failure)
    result.found = len(failures)
    result.details = {"failures": failures}
    return result


def _all_postings(repo: Any, customer_id: str) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while True:
        page, cursor = repo.postings(customer_id, limit=100, cursor=cursor)
        found += page
        if cursor is None:
            return found
