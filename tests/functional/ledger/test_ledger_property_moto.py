"""Property on the real repository (moto): random grants, invoices with credit, payments, refunds,
corrections, expiries and retries keep the materialised balances equal to the entries, grants at or
above zero, and each idempotency key to one posting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neruba.dal.ledger import LedgerConflictError
from neruba.domain.credits import Line, allocate
from neruba.domain.ledger import natural
from neruba.logic.credits import create_grant, expire_due
from neruba.logic.ledger import adjust_balance, invoice_posting, record_payment, record_refund

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
        st.tuples(st.just("refund"), st.integers(1, 1000)),
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
        elif op[0] == "refund":
            call = lambda k=key, o=op, t=now: record_refund(  # noqa: E731
                ledger,
                customer_id=customer,
                currency="USD",
                amount_minor=o[1],
                refund_id=k,
                idempotency_key=k,
                source="operator",
                actor="t",
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
        except LedgerConflictError:
            continue
        keys.add(key)
        replay.append(call)
    # THEN one posting per key (expiries add theirs), balances equal entries, grants never below zero
    postings, _ = ledger.postings(customer, 100)
    assert {p.idempotency_key for p in postings if not p.idempotency_key.startswith("expiry:")} == keys
    assert len(postings) == len({p.idempotency_key for p in postings})
    assert ledger.reconcile(customer) == []
    balances = ledger.balances(customer).get("USD", {})
    assert sum(balances.values()) == 0
    for grant in ledger.grants(customer, None):
        assert grant.remaining_minor >= 0
        assert (
            natural("prepaid_credit", balances.get(f"prepaid_credit#{grant.grant_id}", 0))
            == grant.remaining_minor
        )
