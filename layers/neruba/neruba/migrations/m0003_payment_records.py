"""Write a payment record (what is still refundable) for every payment posted before payment records
existed, so refunds and disputes against those payments follow the rules of docs/ledger.md.

For each ``payment`` posting without a record: paid = its amount; refunded = the refund postings naming
that payment (or, when their payment id names none, its invoice); disputed = the open and lost disputes
naming it. A payment already over-refunded (possible before the rules) is recorded with nothing left
refundable (counted as ``over_refunded``). Each record is written with its open disputes marked as
counted in it, in one transaction conditional on the record being absent and each dispute unchanged.
Idempotent: a payment that has a record (written by this migration or by a live payment) is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neruba import bootstrap
from neruba.dal import maintenance
from neruba.dal.disputes import Dispute
from neruba.domain.ledger import Posting
from neruba.domain.payments import PaymentRecord
from neruba.migrations import MigrationContext


def legacy_record(
    payment: Posting, refunds: list[Posting], disputes: list[Dispute]
) -> tuple[PaymentRecord, bool]:
    """The record of ``payment`` given what was taken back from it, and whether that was more than paid.

    Example:
        >>> from datetime import UTC, datetime
        >>> from neruba.domain.ledger import credit, debit
        >>> p = Posting.build(idempotency_key="k", customer_id="c", currency="USD", reason="payment",
        ...     entries=[debit("cash", 100), credit("receivable", 100)], source="stripe", source_id="ch_1",
        ...     actor="t", at=datetime(2026, 1, 1, tzinfo=UTC))
        >>> from neruba.dal.disputes import dispute_record
        >>> lost = dispute_record({"id": "dp_1", "customer_id": "c", "currency": "USD", "amount_minor": 30,
        ...     "status": "lost"})
        >>> legacy_record(p, [], [lost])[0].refundable_minor
        70
    """
    paid = payment.total_minor
    disputed = sum(d.amount_minor for d in disputes if d.status in ("open", "lost"))
    lost = sum(d.amount_minor for d in disputes if d.status == "lost")
    refunded = sum(r.total_minor for r in refunds)
    kept_disputed = min(disputed, paid)
    kept_refunded = min(refunded, paid - kept_disputed)
    record = PaymentRecord(
        payment.customer_id,
        str(payment.source_id),
        payment.metadata.get("invoice_id"),
        payment.currency,
        paid_minor=paid,
        refunded_minor=kept_refunded,
        disputed_minor=kept_disputed,
        lost_minor=min(lost, kept_disputed),
    )
    return record, (refunded, disputed) != (kept_refunded, kept_disputed)


def apply(ctx: MigrationContext) -> dict[str, Any]:
    payments_repo, disputes_repo = bootstrap.payments(), bootstrap.disputes()
    postings = list(bootstrap.ledger().all_postings())
    payments = [p for p in postings if p.reason == "payment" and p.source_id]
    refunds: dict[tuple[str, str], list[Posting]] = defaultdict(list)
    known = {(p.customer_id, str(p.source_id)) for p in payments}
    by_invoice = {(p.customer_id, str(p.metadata.get("invoice_id"))): str(p.source_id) for p in payments}
    for posting in postings:
        if posting.reason != "refund":
            continue
        named = (posting.customer_id, str(posting.metadata.get("payment_id")))
        target = named if named in known else None
        if target is None and (posting.customer_id, str(posting.metadata.get("invoice_id"))) in by_invoice:
            target = (
                posting.customer_id,
                by_invoice[(posting.customer_id, str(posting.metadata["invoice_id"]))],
            )
        if target is not None:
            refunds[target].append(posting)
    disputes: dict[tuple[str, str], list[Dispute]] = defaultdict(list)
    for dispute in disputes_repo.all():
        if not dispute.payment_tracked:
            disputes[(dispute.customer_id, str(dispute.payment_id))].append(dispute)
    written = skipped = over_refunded = 0
    for payment in payments:
        key = (payment.customer_id, str(payment.source_id))
        for _ in range(5):
            if payments_repo.get(*key) is not None:
                skipped += 1
                break
            record, over = legacy_record(payment, refunds[key], disputes[key])
            marks = [disputes_repo.tracked_item(d) for d in disputes[key] if d.status == "open"]
            if maintenance.transact([*payments_repo.create_items(record), *marks]):
                written += 1
                over_refunded += over
                break
            # a dispute closed meanwhile (or the record appeared): read the disputes again and decide again
            fresh = [disputes_repo.get(d.id) for d in disputes[key]]
            disputes[key] = [d for d in fresh if d is not None and not d.payment_tracked]
        else:
            raise RuntimeError(f"payment {key[1]} of {key[0]} kept changing; run the migration again")
    return {"payments": len(payments), "written": written, "skipped": skipped, "over_refunded": over_refunded}
