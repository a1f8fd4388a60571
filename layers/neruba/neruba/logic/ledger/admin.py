"""Operator money actions (admin scope): each audited in the same transaction, each idempotent.

The ``Idempotency-Key`` header is required. The ledger idempotency key is ``op:{action}:{header}``
scoped to the customer; the posting stores a fingerprint of the request, so a retry with the same key
and body returns the first result and writes nothing, and the same key with another body is 409
``idempotency_conflict``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.dal.audit import AuditRepository
from neruba.dal.ledger import LedgerConflictError, LedgerRepository
from neruba.domain.ledger import Posting, summarise
from neruba.domain.payments import PaymentRecord
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic.idempotency import audit_put, check_same, digest, require_key
from neruba.models.catalog import Customer
from neruba.models.ledger import (
    AutoTopUpRuleIn,
    BalanceAdjustment,
    DisputeClose,
    DisputeCreate,
    GrantCreate,
    GrantVoid,
    RefundCreate,
)
from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.disputes import Dispute
    from neruba.dal.invoices import Invoice
    from neruba.domain.credits import CreditGrant
    from neruba.logic.limits.balance import BalanceWatch


@dataclass(frozen=True, slots=True)
class Operator:
    """Who acts, with which request id and Idempotency-Key header."""

    actor: str
    request_id: str | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class Stores:
    ledger: LedgerRepository
    audit: AuditRepository
    customer: Callable[[str], Customer | None]
    invoice: Callable[[str], Invoice | None] = lambda _: None
    balance_watch: Callable[[str], BalanceWatch | None] = lambda _: None  # logic.limits.balance
    # the customer and its balance watch in one read (a grant raising a watched balance moves its version)
    customer_watch: Callable[[str], tuple[Customer | None, BalanceWatch | None]] | None = None


def _hash(*parts: Any) -> str:
    return digest(list(parts), 32)


def _customer(stores: Stores, customer_id: str) -> Customer:
    customer = stores.customer(customer_id)
    if customer is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    return customer


def _currency(customer: Customer, requested: str | None) -> str:
    if requested is not None and requested != customer.currency:
        raise InvalidRequestError(
            f"Currency {requested} differs from the customer's {customer.currency}.",
            code="currency_mismatch",
            param="currency",
        )
    return customer.currency


def _key(op: Operator, action: str) -> str:
    return f"op:{action}:{require_key(op.idempotency_key)}"


def _check_same(posting: Posting, fingerprint: str) -> Posting:
    """The posting an Idempotency-Key wrote (its guard is the key's record), if it was this request."""
    check_same(posting.metadata.get("request_hash"), fingerprint)
    return posting


def _replay(stores: Stores, customer_id: str, key: str, fingerprint: str) -> Posting | None:
    stored = stores.ledger.stored_posting(customer_id, key)
    return _check_same(stored, fingerprint) if stored is not None else None


def balance_view(stores: Stores, customer_id: str, currency: str) -> dict[str, Any]:
    return summarise(stores.ledger.balances(customer_id).get(currency, {}))


def _audit_for(
    stores: Stores,
    op: Operator,
    *,
    action: str,
    customer_id: str,
    currency: str,
    target: str | Callable[[Posting], str],
    body: Any,
    extra_before: dict[str, Any] | None = None,
    extra_after: Callable[[Posting], dict[str, Any]] | None = None,
) -> Callable[[Posting], Sequence[dict[str, Any]]]:
    """Items for the audit record of a posting: balances before, and after = before + the posting."""
    raw = dict(stores.ledger.balances(customer_id).get(currency, {}))

    def items(posting: Posting) -> list[dict[str, Any]]:
        after: dict[str, int] = defaultdict(int, raw)
        for key, delta in posting.deltas().items():
            after[key] += delta
        return [
            audit_put(
                stores.audit,
                op,
                action,
                target(posting) if callable(target) else target,
                customer_id=customer_id,
                reason=body.reason,
                ticket=body.ticket,
                before={"balance": summarise(raw), **(extra_before or {})},
                after={"balance": summarise(after), **(extra_after(posting) if extra_after else {})},
                at=posting.at,
                idempotency_key=posting.idempotency_key,
            )
        ]

    return items


def _meta(body: Any, fingerprint: str) -> dict[str, Any]:
    return {"request_hash": fingerprint, "note": body.reason, "ticket": body.ticket}


def grant_credits(stores: Stores, op: Operator, customer_id: str, body: GrantCreate) -> dict[str, Any]:
    from neruba.logic.ledger.credits import create_grant

    found, watch = (
        stores.customer_watch(customer_id) if stores.customer_watch else (stores.customer(customer_id), None)
    )
    if found is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    customer = found
    currency = _currency(customer, body.currency)
    key = _key(op, "grant")
    fingerprint = _hash("grant", customer_id, body.model_dump(mode="json"))
    stored = _replay(stores, customer_id, key, fingerprint)
    if stored is None:
        _not_expired(body)
        audit = _audit_for(
            stores,
            op,
            action="credit_grant.create",
            customer_id=customer_id,
            currency=currency,
            target=lambda p: p.source_id or "",
            body=body,
            extra_after=lambda p: {"grant": {"id": p.source_id, "remaining_minor": body.amount_minor}},
        )
        _, stored = create_grant(
            stores.ledger,
            customer_id=customer_id,
            kind=body.kind,
            amount_minor=body.amount_minor,
            currency=currency,
            idempotency_key=key,
            actor=op.actor,
            priority=body.priority,
            effective_at=body.effective_at,
            expires_at=body.expires_at,
            meter_codes=body.meter_codes,
            source="operator",
            metadata=_meta(body, fingerprint),
            items_for=audit,
            extra_items=[watch.raised()] if watch is not None else (),
        )
        _check_same(stored, fingerprint)
    grant = stores.ledger.grant(stored.source_id or "")
    assert grant is not None
    return {**grant.to_dict(), "posting_id": stored.posting_id}


def _not_expired(body: GrantCreate, now: datetime | None = None) -> None:
    """A new grant must be usable for some time: 400 ``grant_expired`` when ``expires_at`` has passed.
    (A retry of a grant created in time replays it, whatever the clock says now.)"""
    if body.expires_at is not None and body.expires_at <= (now or datetime.now(UTC)):
        raise InvalidRequestError(
            "expires_at has already passed: a credit grant must expire in the future.",
            code="grant_expired",
            param="expires_at",
        )


def void_grant(stores: Stores, op: Operator, grant_id: str, body: GrantVoid) -> dict[str, Any]:
    grant = stores.ledger.grant(grant_id)
    if grant is None:
        raise NotFoundError(f"No credit grant {grant_id!r}.", code="credit_grant_not_found", param="grant_id")
    key = _key(op, "void")
    fingerprint = _hash("void", grant_id, body.model_dump(mode="json"))
    stored = _replay(stores, grant.customer_id, key, fingerprint)
    if stored is None:
        if grant.status != "active":
            raise ConflictError(
                f"Credit grant {grant_id!r} is {grant.status}.", code="credit_grant_not_active"
            )
        if grant.remaining_minor == 0:
            raise ConflictError(f"Credit grant {grant_id!r} has no remainder.", code="credit_grant_empty")
        stored = _void_posting(stores, op, grant, key, fingerprint, body)
    current = stores.ledger.grant(grant_id) or grant
    return {**current.to_dict(), "posting_id": stored.posting_id}


VOID_ATTEMPTS = 3


def _void_posting(
    stores: Stores, op: Operator, grant: CreditGrant, key: str, fingerprint: str, body: GrantVoid
) -> Posting:
    """Post the void; when only the customer's balance version moved meanwhile (another change of its
    balance committed and the grant is as read), decide again from the balance read again."""
    from neruba.logic.ledger.credits import close_remainder

    grant_id = grant.grant_id
    before = {"grant": {"id": grant_id, "status": grant.status, "remaining_minor": grant.remaining_minor}}
    after = {"grant": {"id": grant_id, "status": "voided", "remaining_minor": 0}}
    for attempt in range(VOID_ATTEMPTS):
        watch = stores.balance_watch(grant.customer_id)  # read before the balance it guards
        audit = _audit_for(
            stores,
            op,
            action="credit_grant.void",
            customer_id=grant.customer_id,
            currency=grant.currency,
            target=grant_id,
            body=body,
            extra_before=before,
            extra_after=lambda _: after,
        )
        try:
            posted = close_remainder(
                stores.ledger,
                grant,
                "voided",
                idempotency_key=key,
                actor=op.actor,
                source="operator",
                metadata=_meta(body, fingerprint),
                items_for=audit,
                watch=watch,
            )
        except LedgerConflictError as exc:
            if watch is not None and attempt < VOID_ATTEMPTS - 1 and stores.ledger.grant(grant_id) == grant:
                continue
            raise ConflictError(
                "The grant changed meanwhile; try again.", code="credit_grant_changed"
            ) from exc
        assert posted is not None
        return _check_same(posted, fingerprint)
    raise ConflictError("The grant changed meanwhile; try again.", code="credit_grant_changed")


def _money_action(
    stores: Stores,
    op: Operator,
    customer_id: str,
    body: Any,
    action: str,
    run: Callable[..., Posting],
    target_prefix: str,
) -> tuple[Posting, str, str]:
    customer = _customer(stores, customer_id)
    currency = _currency(customer, getattr(body, "currency", None))
    key = _key(op, action)
    fingerprint = _hash(action, customer_id, body.model_dump(mode="json"))
    target = target_prefix + hashlib.sha256(f"{customer_id}\x1f{key}".encode()).hexdigest()[:24]
    stored = _replay(stores, customer_id, key, fingerprint)
    if stored is None:
        audit = _audit_for(
            stores,
            op,
            action=action,
            customer_id=customer_id,
            currency=currency,
            target=target,
            body=body,
        )
        try:
            stored = run(
                currency=currency, key=key, meta=_meta(body, fingerprint), target=target, audit=audit
            )
        except LedgerConflictError as exc:
            raise ConflictError(
                "The request conflicts with the current state.", code="ledger_conflict"
            ) from exc
        _check_same(stored, fingerprint)
    return stored, currency, target


def adjust(stores: Stores, op: Operator, customer_id: str, body: BalanceAdjustment) -> dict[str, Any]:
    from neruba.logic.ledger.postings import AdjustmentDirectionError, adjust_balance

    def run(*, currency: str, key: str, meta: dict[str, Any], target: str, audit: Any) -> Posting:
        try:
            return adjust_balance(
                stores.ledger,
                customer_id=customer_id,
                currency=currency,
                amount_minor=body.amount_minor,
                reason_code=body.reason_code,
                idempotency_key=key,
                actor=op.actor,
                metadata=meta,
                items_for=audit,
            )
        except AdjustmentDirectionError as exc:
            raise InvalidRequestError(
                f"{str(exc)[0].upper()}{str(exc)[1:]} (only a correction may raise it, with a negative"
                " amount_minor).",
                code="adjustment_direction_invalid",
                param="amount_minor",
            ) from exc

    posting, currency, _ = _money_action(stores, op, customer_id, body, "balance_adjustment", run, "adj_")
    return {**posting.to_dict(), "balance": balance_view(stores, customer_id, currency)}


def _payment_for(
    stores: Stores, customer_id: str, currency: str, body: RefundCreate | DisputeCreate, action: str
) -> PaymentRecord:
    """The payment the refund or dispute takes back from (rules in ``neruba.logic.ledger.payments``)."""
    from neruba.logic.ledger.payments import PaymentTargetError, resolve_payment

    try:
        return resolve_payment(
            stores.ledger.payments,
            customer_id=customer_id,
            currency=currency,
            amount_minor=body.amount_minor,
            action="refund" if action == "refund" else "dispute",
            payment_id=body.payment_id,
            invoice_id=body.invoice_id,
            invoice=stores.invoice,
            credit_balance=_credit_balance(stores) if getattr(body, "credit_balance", False) else None,
        )
    except PaymentTargetError as exc:
        error = {"not_found": NotFoundError, "conflict": ConflictError}.get(exc.kind, InvalidRequestError)
        raise error(exc.message, code=exc.code, param=exc.param) from exc


def _take_back(
    stores: Stores, customer_id: str, currency: str, body: Any, action: str, write: Callable[..., Posting]
) -> Posting:
    """Resolve the payment, write; when the conditional write lost a race, say which rule it broke."""
    payment = _payment_for(stores, customer_id, currency, body, action)
    try:
        return write(payment)
    except LedgerConflictError:
        _payment_for(stores, customer_id, currency, body, action)  # raises when the payment has too little
        raise ConflictError(
            f"The {action} would take the customer's cash below zero.",
            code="cash_would_go_negative",
            param="amount_minor",
        ) from None


def _credit_balance(stores: Stores) -> Callable[[str], int]:
    """What is left of the customer credit credit notes gave on an invoice (``credited_balance_minor``)."""

    def left(invoice_id: str) -> int:
        found = stores.invoice(invoice_id)
        return int((found.document.get("credited_balance_minor") or 0) if found else 0)

    return left


def _balance_items(stores: Stores, payment: PaymentRecord, amount_minor: int) -> list[dict[str, Any]]:
    """The invoice's credit balance lowered by a payout, conditional on the invoice as read (a credit
    note or another payout meanwhile cancels the write)."""
    from neruba import bootstrap

    found = stores.invoice(payment.invoice_id or "")
    assert found is not None  # resolve_payment found its balance
    read = {**found.document, "amount_paid_minor": found.amount_paid_minor or 0}
    left = int(found.document.get("credited_balance_minor") or 0) - amount_minor
    notes = bootstrap.billing_records().credit_notes
    return [notes.invoice_credit_item(found.id, read=read, changes={"credited_balance_minor": left})]


def refund(stores: Stores, op: Operator, customer_id: str, body: RefundCreate) -> dict[str, Any]:
    """A refund of what is still refundable of a payment or, with ``credit_balance``, a payout of the
    customer credit that credit notes after payment left on its invoice (docs/ledger.md, "Paying out a
    credit balance")."""
    from neruba.logic.ledger.postings import record_balance_payout, record_refund

    def run(*, currency: str, key: str, meta: dict[str, Any], target: str, audit: Any) -> Posting:
        if body.credit_balance:
            return _take_back(
                stores,
                customer_id,
                currency,
                body,
                "refund",
                lambda payment: record_balance_payout(
                    stores.ledger,
                    customer_id=customer_id,
                    currency=currency,
                    amount_minor=body.amount_minor,
                    refund_id=target,
                    idempotency_key=key,
                    actor=op.actor,
                    payment=payment,
                    metadata=meta,
                    extra_items=_balance_items(stores, payment, body.amount_minor),
                    items_for=audit,
                ),
            )
        return _take_back(
            stores,
            customer_id,
            currency,
            body,
            "refund",
            lambda payment: record_refund(
                stores.ledger,
                customer_id=customer_id,
                currency=currency,
                amount_minor=body.amount_minor,
                refund_id=target,
                idempotency_key=key,
                source="operator",
                actor=op.actor,
                payment=payment,
                metadata=meta,
                items_for=audit,
            ),
        )

    posting, currency, refund_id = _money_action(stores, op, customer_id, body, "refund", run, "re_")
    return {
        "id": refund_id,
        "object": "refund",
        "customer_id": customer_id,
        "currency": currency,
        "amount_minor": body.amount_minor,
        "payment_id": posting.metadata.get("payment_id"),
        "invoice_id": posting.metadata.get("invoice_id"),
        "credit_balance": bool(posting.metadata.get("credit_balance")),
        "posting_id": posting.posting_id,
        "created_at": iso(posting.at),
    }


def open_dispute(stores: Stores, op: Operator, customer_id: str, body: DisputeCreate) -> dict[str, Any]:
    from neruba.logic.ledger.postings import record_dispute

    def run(*, currency: str, key: str, meta: dict[str, Any], target: str, audit: Any) -> Posting:
        return _take_back(
            stores,
            customer_id,
            currency,
            body,
            "dispute",
            lambda payment: record_dispute(
                stores.ledger,
                customer_id=customer_id,
                currency=currency,
                dispute_id=target,
                status="created",
                amount_minor=body.amount_minor,
                idempotency_key=key,
                source="operator",
                actor=op.actor,
                payment=payment,
                metadata=meta,
                items_for=audit,
            ),
        )

    posting, _, dispute_id = _money_action(stores, op, customer_id, body, "dispute", run, "dp_")
    return _dispute_answer(stores.ledger.disputes.get(dispute_id), posting.posting_id)


def close_dispute(stores: Stores, op: Operator, dispute_id: str, body: DisputeClose) -> dict[str, Any]:
    from neruba.logic.ledger.postings import DisputeStateError, record_dispute

    disputes = stores.ledger.disputes
    dispute = disputes.get(dispute_id)
    if dispute is None:
        raise NotFoundError(f"No dispute {dispute_id!r}.", code="dispute_not_found", param="dispute_id")
    customer_id = dispute.customer_id
    key = f"dispute:{dispute_id}:close"
    fingerprint = _hash("dispute_close", dispute_id, body.outcome)
    stored = stores.ledger.stored_posting(customer_id, key)
    if stored is None:
        audit = _audit_for(
            stores,
            op,
            action="dispute.close",
            customer_id=customer_id,
            currency=dispute.currency,
            target=dispute_id,
            body=body,
            extra_before={"dispute": {"status": dispute.status}},
            extra_after=lambda _: {"dispute": {"status": body.outcome}},
        )
        try:
            stored = record_dispute(
                stores.ledger,
                customer_id=customer_id,
                currency=dispute.currency,
                dispute_id=dispute_id,
                status=body.outcome,
                idempotency_key=key,
                source="operator",
                actor=op.actor,
                metadata=_meta(body, fingerprint),
                items_for=audit,
            )
        except (DisputeStateError, LedgerConflictError) as exc:
            raise ConflictError(str(exc), code="dispute_closed") from exc
    if stored.metadata.get("request_hash") != fingerprint:
        raise ConflictError(f"Dispute {dispute_id!r} is already {stored.reason[8:]}.", code="dispute_closed")
    return _dispute_answer(disputes.get(dispute_id), stored.posting_id)


def _dispute_answer(dispute: Dispute | None, posting_id: str) -> dict[str, Any]:
    """The dispute as stored, with the posting that opened or closed it."""
    return {**(dispute.document if dispute is not None else {}), "posting_id": posting_id}


def put_auto_top_up(stores: Stores, op: Operator, customer_id: str, body: AutoTopUpRuleIn) -> dict[str, Any]:
    from neruba.dal.transaction import Transaction, commit
    from neruba.domain.credits import AutoTopUpRule

    customer = _customer(stores, customer_id)
    currency = _currency(customer, body.currency)
    rules = stores.ledger.top_ups
    before = rules.rule(customer_id, currency)
    rule = AutoTopUpRule(customer_id, currency, body.threshold_minor, body.amount_minor, body.enabled)
    view = {
        "threshold_minor": rule.threshold_minor,
        "amount_minor": rule.amount_minor,
        "enabled": rule.enabled,
    }
    audit = audit_put(
        stores.audit,
        op,
        "auto_top_up.update",
        f"auto_top_up:{currency}",
        customer_id=customer_id,
        reason=body.reason,
        ticket=body.ticket,
        before={
            "rule": None
            if before is None
            else {
                "threshold_minor": before.threshold_minor,
                "amount_minor": before.amount_minor,
                "enabled": before.enabled,
            }
        },
        after={"rule": view},
        at=datetime.now(UTC),
    )
    commit(Transaction([rules.rule_item(rule), audit]))
    return {"object": "auto_top_up", "customer_id": customer_id, "currency": currency, **view}
