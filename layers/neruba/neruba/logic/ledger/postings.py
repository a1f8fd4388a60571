"""Ledger use cases: the postings of invoices, payments, refunds, disputes and balance adjustments.

Builders (``*_posting``) are pure and return a validated :class:`Posting`; ``record_*`` build and write
it idempotently through ``LedgerRepository.post`` (a retry with the same idempotency key writes nothing
and returns the stored posting). Signs and accounts are described in docs/ledger.md.

Example::

    repo = bootstrap.ledger()
    record_payment(repo, customer_id="acme", currency="USD", amount_minor=1200, payment_id="pay_1",
                   invoice_id="in_1", idempotency_key="payment:pay_1", source="stripe",
                   actor="stripe:evt_1")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from neruba.dal.ledger import LedgerRepository
from neruba.domain.credits import CreditApplication, CreditGrant, with_kinds
from neruba.domain.ledger import Entry, Posting, credit, debit
from neruba.domain.payments import PaymentRecord
from neruba.timefmt import iso

DisputeStatus = Literal["created", "won", "lost"]
AdjustmentReason = Literal["goodwill", "correction", "refund", "dispute"]
ADJUSTMENT_ACCOUNTS: dict[str, str] = {
    "goodwill": "goodwill_expense",
    "correction": "revenue",
    "refund": "refunds",
    "dispute": "dispute_losses",
}
LOWERS_ONLY: frozenset[str] = frozenset({"goodwill", "refund", "dispute"})
"""Reason codes that only ever lower the amount due (a positive ``amount_minor``): goodwill, a refund
given as balance and a balance written off as disputed cannot make the customer owe more. Only
``correction`` goes both ways (negative: the customer was under-billed)."""


ItemsFor = Callable[[Posting], Sequence[dict[str, Any]]]
"""Builds transaction items that depend on the posting (e.g. an audit record with the balance after)."""


class EmptyPostingError(ValueError):
    """Nothing to post (an invoice of subtotal 0 with no credit applied)."""


class AdjustmentDirectionError(ValueError):
    """The sign of an adjustment contradicts its reason code (e.g. goodwill raising the amount due)."""


class DisputeStateError(ValueError):
    """The dispute is unknown, or already in another state."""


def _positive(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError("amount_minor is a positive integer")
    return amount_minor


def invoice_posting(
    customer_id: str,
    invoice_id: str,
    currency: str,
    subtotal_minor: int,
    applications: Sequence[CreditApplication],
    at: datetime,
    *,
    grants: Mapping[str, CreditGrant] | None = None,
    actor: str = "system:billing",
    idempotency_key: str | None = None,
) -> Posting:
    """The posting of a finalized invoice: revenue for the subtotal, credits applied, receivable for the rest.

    Entries: credit ``revenue`` subtotal; per grant applied debit ``prepaid_credit#{grant}``; for
    promotional credit also credit ``promotional_allowance`` and debit ``promotional_credit_expense``
    (contra-revenue, so net revenue counts only what was paid for); debit ``receivable`` for the amount
    due. An invoice whose total is 0 after credits still posts its credit use. Idempotency key:
    ``invoice:{invoice_id}``. Raises EmptyPostingError when the subtotal is 0.

    Example:
        >>> t = datetime(2026, 2, 1, tzinfo=UTC)
        >>> p = invoice_posting("acme", "in_1", "USD", 1000,
        ...                     [CreditApplication("cg_1", "l1", 300, "promotional")], t)
        >>> sorted((e.account, e.signed) for e in p.entries)[:2]
        [('prepaid_credit', 300), ('promotional_allowance', -300)]
    """
    if subtotal_minor < 0:
        raise ValueError("an invoice subtotal is not negative")
    resolved = with_kinds(applications, grants)
    applied = sum(_positive(a.amount_minor) for a in resolved)
    if applied > subtotal_minor:
        raise ValueError("credits applied exceed the subtotal")
    if subtotal_minor == 0:
        raise EmptyPostingError("an invoice of subtotal 0 posts nothing")
    per_grant: dict[str, int] = {}
    promotional = 0
    for app in resolved:
        per_grant[app.grant_id] = per_grant.get(app.grant_id, 0) + app.amount_minor
        if app.kind == "promotional":
            promotional += app.amount_minor
    entries: list[Entry] = [credit("revenue", subtotal_minor)]
    entries += [debit("prepaid_credit", amount, grant_id=g) for g, amount in sorted(per_grant.items())]
    if promotional:
        entries += [
            credit("promotional_allowance", promotional),
            debit("promotional_credit_expense", promotional),
        ]
    if subtotal_minor - applied:
        entries.append(debit("receivable", subtotal_minor - applied))
    return Posting.build(
        idempotency_key=idempotency_key or f"invoice:{invoice_id}",
        customer_id=customer_id,
        currency=currency,
        entries=entries,
        reason="invoice",
        source="invoice",
        source_id=invoice_id,
        actor=actor,
        at=at,
        metadata={"subtotal_minor": subtotal_minor, "credits_applied_minor": applied},
    )


def invoice_reduction_posting(
    customer_id: str,
    invoice_id: str,
    currency: str,
    amount_minor: int,
    at: datetime,
    *,
    idempotency_key: str,
    actor: str = "system:billing",
    reason: str = "invoice_reduction",
) -> Posting:
    """The posting of an invoice amount going DOWN: a draft revised lower, or an invoice whose adjustment
    lines (a late correction of an earlier, finalized invoice) outweigh its charges.

    Postings are never edited: the reduction is its own posting, the reverse of an invoice's revenue
    entry: debit ``revenue`` and credit ``receivable`` for ``amount_minor`` (positive, the size of the
    reduction). A receivable that goes negative is a balance in the customer's favour.

    Example:
        >>> t = datetime(2026, 2, 1, tzinfo=UTC)
        >>> p = invoice_reduction_posting("acme", "in_1", "USD", 250, t, idempotency_key="invoice:in_1:rev1")
        >>> sorted((e.account, e.signed) for e in p.entries)
        [('receivable', -250), ('revenue', 250)]
    """
    size = _positive(amount_minor)
    return Posting.build(
        idempotency_key=idempotency_key,
        customer_id=customer_id,
        currency=currency,
        entries=[debit("revenue", size), credit("receivable", size)],
        reason=reason,
        source="invoice",
        source_id=invoice_id,
        actor=actor,
        at=at,
        metadata={"reduction_minor": size},
    )


def tax_posting(
    customer_id: str,
    invoice_id: str,
    currency: str,
    exclusive_minor: int,
    inclusive_minor: int,
    at: datetime,
    *,
    idempotency_key: str,
    actor: str = "system:billing",
) -> Posting | None:
    """The tax of an invoice (or the change of it in a draft's revision) as a liability; billing adds
    these entries to the invoice's own posting (``logic.billing.context.with_tax``): credit
    ``tax_payable`` for all the tax; debit ``receivable`` for the exclusive tax (added to what the
    customer owes) and ``revenue`` for the inclusive tax (the part of the price that was never revenue).
    Negative amounts (a revision lowering the tax, a credit line) reverse the sides.
    None when there is no tax.

    Example:
        >>> t = datetime(2026, 2, 1, tzinfo=UTC)
        >>> p = tax_posting("acme", "in_1", "USD", 200, 50, t, idempotency_key="invoice:in_1")
        >>> sorted((e.account, e.signed) for e in p.entries)
        [('receivable', 200), ('revenue', 50), ('tax_payable', -250)]
    """
    entries: list[Entry] = []
    for account, amount in (("receivable", exclusive_minor), ("revenue", inclusive_minor)):
        if amount:
            entries.append(debit(account, amount) if amount > 0 else credit(account, -amount))
    total = exclusive_minor + inclusive_minor
    if total:
        entries.append(credit("tax_payable", total) if total > 0 else debit("tax_payable", -total))
    if not entries:
        return None
    return Posting.build(
        idempotency_key=idempotency_key,
        customer_id=customer_id,
        currency=currency,
        entries=entries,
        reason="invoice_tax",
        source="invoice",
        source_id=invoice_id,
        actor=actor,
        at=at,
        metadata={"tax_minor": exclusive_minor, "tax_included_minor": inclusive_minor},
    )


def _post(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    entries: list[Entry],
    reason: str,
    source: str,
    source_id: str | None,
    idempotency_key: str,
    actor: str,
    at: datetime | None,
    metadata: Mapping[str, Any] | None,
    extra_items: Sequence[dict[str, Any]],
    items_for: ItemsFor | None = None,
) -> Posting:
    posting = Posting.build(
        idempotency_key=idempotency_key,
        customer_id=customer_id,
        currency=currency,
        entries=entries,
        reason=reason,
        source=source,
        source_id=source_id,
        actor=actor,
        at=at or datetime.now(UTC),
        metadata=metadata,
    )
    return repo.post(posting, [*extra_items, *(items_for(posting) if items_for else ())])


def record_payment(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    payment_id: str,
    idempotency_key: str,
    source: str,
    actor: str,
    invoice_id: str | None = None,
    at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
    credited_minor: int = 0,
) -> Posting:
    """Money received: debit ``cash``, credit ``receivable``; the payment record (what is refundable of
    it, ``neruba.dal.payments``) is written in the same transaction. ``credited_minor``: the part of it
    credit notes issued before it already gave back as customer credit balance (a payment of the whole
    invoice made before Stripe heard of a note), counted as credited from the start, as a note issued
    after the payment would have."""
    amount = _positive(amount_minor)
    record = PaymentRecord(
        customer_id, payment_id, invoice_id, currency, paid_minor=amount, credited_minor=credited_minor
    )
    return _post(
        repo,
        customer_id=customer_id,
        currency=currency,
        entries=[debit("cash", amount), credit("receivable", amount)],
        reason="payment",
        source=source,
        source_id=payment_id,
        idempotency_key=idempotency_key,
        actor=actor,
        at=at,
        metadata={"invoice_id": invoice_id, **(metadata or {})},
        extra_items=[*repo.payments.create_items(record), *extra_items],
        items_for=items_for,
    )


def record_refund(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    refund_id: str,
    idempotency_key: str,
    source: str,
    actor: str,
    payment: PaymentRecord,
    at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
) -> Posting:
    """Money given back from ``payment``: debit ``refunds`` (contra-revenue), credit ``cash``.

    Raises RefundableExceededError when the payment (as read) has less left; the write is conditional
    on what is left when it lands, and cash may not go below zero (LedgerConflictError otherwise).
    """
    amount = _positive(amount_minor)
    _same_payment(payment, customer_id, currency).refund(amount)
    payment_id, invoice_id = payment.payment_id, payment.invoice_id
    tracker = repo.payments.refund_item(payment, amount)
    return _post(
        repo,
        customer_id=customer_id,
        currency=currency,
        entries=[debit("refunds", amount), credit("cash", amount)],
        reason="refund",
        source=source,
        source_id=refund_id,
        idempotency_key=idempotency_key,
        actor=actor,
        at=at,
        metadata={"payment_id": payment_id, "invoice_id": invoice_id, **(metadata or {})},
        extra_items=[tracker, *extra_items],
        items_for=items_for,
    )


def record_balance_payout(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    refund_id: str,
    idempotency_key: str,
    actor: str,
    payment: PaymentRecord,
    metadata: Mapping[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
) -> Posting:
    """Customer credit left by credit notes after payment, paid back from ``payment``: debit
    ``receivable`` (the balance in the customer's favour shrinks), credit ``cash``; the payment record's
    credited part becomes refunded. Conditional like a refund (credited part left, cash never below 0)."""
    amount = _positive(amount_minor)
    _same_payment(payment, customer_id, currency).pay_out_credit(amount)
    tracker = repo.payments.balance_payout_item(payment, amount)
    return _post(
        repo,
        customer_id=customer_id,
        currency=currency,
        entries=[debit("receivable", amount), credit("cash", amount)],
        reason="refund",
        source="operator",
        source_id=refund_id,
        idempotency_key=idempotency_key,
        actor=actor,
        at=None,
        metadata={
            "payment_id": payment.payment_id,
            "invoice_id": payment.invoice_id,
            "credit_balance": True,
            **(metadata or {}),
        },
        extra_items=[tracker, *extra_items],
        items_for=items_for,
    )


def _same_payment(payment: PaymentRecord, customer_id: str, currency: str) -> PaymentRecord:
    if payment.customer_id != customer_id or payment.currency != currency:
        raise ValueError(f"payment {payment.payment_id} is not a {currency} payment of {customer_id}")
    return payment


def record_dispute(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    dispute_id: str,
    status: DisputeStatus,
    idempotency_key: str,
    source: str,
    actor: str,
    amount_minor: int | None = None,
    payment: PaymentRecord | None = None,
    at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
) -> Posting:
    """A dispute opens (debit ``disputes``, credit ``cash``: the funds are held), is won (the reverse)
    or lost (debit ``dispute_losses``, credit ``disputes``: written off).

    Opening needs ``amount_minor`` and the ``payment`` disputed (RefundableExceededError when it has
    less left; the payment record moves in the same transaction, conditionally); closing takes the
    amount and payment of the open dispute. Raises DisputeStateError for an unknown dispute or one
    already closed (unless this is a retry).
    """
    disputes = repo.disputes
    payments = repo.payments
    moment = at or datetime.now(UTC)
    if status == "created":
        amount = _positive(amount_minor or 0)
        if payment is None:
            raise ValueError("a dispute opens against a payment")
        _same_payment(payment, customer_id, currency).open_dispute(amount)
        payment_id: str | None = payment.payment_id
        invoice_id: str | None = payment.invoice_id
        opened: dict[str, Any] = {
            "id": dispute_id,
            "object": "dispute",
            "customer_id": customer_id,
            "currency": currency,
            "amount_minor": amount,
            "payment_id": payment_id,
            "invoice_id": invoice_id,
            "status": "open",
            "payment_tracked": True,
            "created_at": iso(moment),
        }
        entries = [debit("disputes", amount), credit("cash", amount)]
        items = [disputes.open_item(opened), payments.dispute_open_item(payment, amount)]
    else:
        stored = repo.stored_posting(customer_id, idempotency_key)
        if stored is not None:
            return stored
        record = disputes.get(dispute_id)
        if record is None or record.customer_id != customer_id:
            raise DisputeStateError(f"no dispute {dispute_id!r}")
        if record.status != "open":
            raise DisputeStateError(f"dispute {dispute_id!r} is already {record.status}")
        amount = record.amount_minor
        currency = record.currency
        payment_id, invoice_id = record.payment_id, record.invoice_id
        if status == "won":
            entries = [debit("cash", amount), credit("disputes", amount)]
        else:
            entries = [debit("dispute_losses", amount), credit("disputes", amount)]
        items = [disputes.close_item(record, status, moment)]
        disputed = payments.get(customer_id, str(payment_id)) if record.payment_tracked else None
        if disputed is not None:  # disputes recorded before payment records existed move only the ledger
            items.append(payments.dispute_close_item(disputed, amount, status))
    return _post(
        repo,
        customer_id=customer_id,
        currency=currency,
        entries=entries,
        reason=f"dispute_{status}",
        source=source,
        source_id=dispute_id,
        idempotency_key=idempotency_key,
        actor=actor,
        at=moment,
        metadata={"payment_id": payment_id, "invoice_id": invoice_id, **(metadata or {})},
        extra_items=[*items, *extra_items],
        items_for=items_for,
    )


def adjustment_entries(amount_minor: int, reason_code: AdjustmentReason) -> list[Entry]:
    """Entries of a balance correction: a positive amount lowers what the customer owes (credit
    ``receivable``, charged to the reason's account), a negative one raises it (the reverse, for
    ``correction`` only: AdjustmentDirectionError for the codes in ``LOWERS_ONLY``).

    Example:
        >>> [e.to_dict() for e in adjustment_entries(250, "goodwill")]
        [{'account': 'goodwill_expense', 'debit_minor': 250}, {'account': 'receivable', 'credit_minor': 250}]
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor == 0:
        raise ValueError("an adjustment is a non-zero integer")
    if amount_minor < 0 and reason_code in LOWERS_ONLY:
        raise AdjustmentDirectionError(
            f"a {reason_code} adjustment only lowers the amount due: amount_minor must be positive"
        )
    account = ADJUSTMENT_ACCOUNTS[reason_code]
    size = abs(amount_minor)
    if amount_minor > 0:
        return [debit(account, size), credit("receivable", size)]
    return [debit("receivable", size), credit(account, size)]


def adjust_balance(
    repo: LedgerRepository,
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    reason_code: AdjustmentReason,
    idempotency_key: str,
    actor: str,
    source: str = "operator",
    at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra_items: Sequence[dict[str, Any]] = (),
    items_for: ItemsFor | None = None,
) -> Posting:
    """Correct the amount due with a reason code (goodwill, correction, refund, dispute)."""
    return _post(
        repo,
        customer_id=customer_id,
        currency=currency,
        entries=adjustment_entries(amount_minor, reason_code),
        reason=f"adjustment_{reason_code}",
        source=source,
        source_id=None,
        idempotency_key=idempotency_key,
        actor=actor,
        at=at,
        metadata=metadata,
        extra_items=extra_items,
        items_for=items_for,
    )
