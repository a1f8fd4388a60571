"""Property on the real repository (moto): random grants, invoices with credit, payments, refunds
(some from a stale read of the payment, as a concurrent refund would be), disputes, corrections,
expiries and retries keep the materialised balances equal to the entries, grants at or above zero,
cash at or above zero, refunds and disputes within what each payment collected, and each idempotency
key to one posting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neruba.dal.ledger import LedgerConflictError
from neruba.dal.payments import PaymentsRepository
from neruba.domain.credits import Line, allocate
from neruba.domain.ledger import natural
from neruba.domain.payments import RefundableExceededError
from neruba.logic.ledger.credits import create_grant, expire_due
from neruba.logic.ledger.postings import (
    adjust_balance,
    invoice_posting,
    record_dispute,
    record_payment,
    record_refund,
)

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"),
            st.sampled_from(["purchased", "promotional"]),
            st.integers(1, 3000),
            st.one_of(st.none(), st.integers(1, 48)),
        ),
        st.tuples(st.just("invoice"), st.integers(1, 4000)),
        st.tuples(st.just("payment"), st.integers(1, 3000)),
        st.tuples(st.just("refund"), st.integers(1, 1500), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("dispute"), st.integers(1, 1500), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("correction"), st.integers(-1000, 1000).filter(bool)),
        st.tuples(st.just("wait"), st.integers(1, 24)),
        st.tuples(
            st.just("retry"),
        ),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_sequences_reconcile(ledger: Any, ops: list[tuple[Any, ...]]) -> None:
    # GIVEN a fresh customer for this example
    customer = "c" + uuid.uuid4().hex[:12]
    now = datetime.now(UTC) + timedelta(days=1)  # ahead of the clock that guards consumption
    keys: set[str] = set()
    replay: list[Any] = []
    payments = PaymentsRepository(ledger.table_name)
    paid_ids: list[str] = []
    stale: dict[str, Any] = {}
    # WHEN the operations run, each write retried right away once
    for n, op in enumerate(ops):
        key = f"{op[0]}:{n}"
        if op[0] == "grant":
            expires = now + timedelta(hours=op[3]) if op[3] else None
            call = lambda k=key, o=op, e=expires, t=now: create_grant(  # noqa: E731
                ledger,
                customer_id=customer,
                kind=o[1],
                amount_minor=o[2],
                currency="USD",
                idempotency_key=k,
                actor="t",
                at=t,
                expires_at=e,
            )
        elif op[0] == "invoice":
            apps = allocate(ledger.grants(customer, "USD", now), [Line("l", None, op[1])], now)
            posting = invoice_posting(customer, key, "USD", op[1], apps, now)
            items = ledger.grant_consumption_items(apps, at=now)
            call = lambda p=posting, i=items: ledger.post(p, i)  # noqa: E731
            key = posting.idempotency_key
        elif op[0] == "payment":
            call = lambda k=key, o=op, t=now: record_payment(  # noqa: E731
                ledger,
                customer_id=customer,
                currency="USD",
                amount_minor=o[1],
                payment_id=k,
                idempotency_key=k,
                source="payment",
                actor="t",
                at=t,
            )
        elif op[0] in ("refund", "dispute"):
            if not paid_ids:
                continue
            payment_id = paid_ids[op[2] % len(paid_ids)]
            # a stale read: the record as it was before the latest refund or dispute of that payment
            record = stale.get(payment_id) if op[3] else None
            record = record or payments.get(customer, payment_id)
            stale[payment_id] = payments.get(customer, payment_id)
            if op[0] == "refund":
                call = lambda k=key, o=op, t=now, r=record: record_refund(  # noqa: E731
                    ledger,
                    customer_id=customer,
                    currency="USD",
                    amount_minor=o[1],
                    refund_id=k,
                    idempotency_key=k,
                    source="operator",
                    actor="t",
                    payment=r,
                    at=t,
                )
            else:
                call = lambda k=key, o=op, t=now, r=record: record_dispute(  # noqa: E731
                    ledger,
                    customer_id=customer,
                    currency="USD",
                    dispute_id=k.replace(":", "_"),
                    status="created",
                    amount_minor=o[1],
                    idempotency_key=k,
                    source="operator",
                    actor="t",
                    payment=r,
                    at=t,
                )
        elif op[0] == "correction":
            call = lambda k=key, o=op, t=now: adjust_balance(  # noqa: E731
                ledger,
                customer_id=customer,
                currency="USD",
                amount_minor=o[1],
                reason_code="correction",
                idempotency_key=k,
                actor="t",
                at=t,
            )
        elif op[0] == "wait":
            now += timedelta(hours=op[1])
            expire_due(ledger, now)
            continue
        else:
            for earlier in replay[-2:]:
                earlier()
            continue
        try:
            call()
            call()
        except (LedgerConflictError, RefundableExceededError):
            continue
        keys.add(key)
        replay.append(call)
        if op[0] == "payment":
            paid_ids.append(key)
    # THEN one posting per key (expiries add theirs), balances equal entries, grants never below zero
    postings, _ = ledger.postings(customer, 100)
    assert {p.idempotency_key for p in postings if not p.idempotency_key.startswith("expiry:")} == keys
    assert len(postings) == len({p.idempotency_key for p in postings})
    assert ledger.reconcile(customer) == []
    balances = ledger.balances(customer).get("USD", {})
    assert sum(balances.values()) == 0
    assert balances.get("cash", 0) >= 0
    taken: dict[str, int] = {}
    for posting in postings:
        if posting.reason in ("refund", "dispute_created"):
            payment_id = str(posting.metadata["payment_id"])
            taken[payment_id] = taken.get(payment_id, 0) + posting.total_minor
    for payment_id in paid_ids:
        record = payments.get(customer, payment_id)
        assert record is not None and 0 <= record.refundable_minor <= record.paid_minor
        assert record.refunded_minor + record.disputed_minor == taken.get(payment_id, 0)
    for grant in ledger.grants(customer, None):
        assert grant.remaining_minor >= 0
        assert (
            natural("prepaid_credit", balances.get(f"prepaid_credit#{grant.grant_id}", 0))
            == grant.remaining_minor
        )
