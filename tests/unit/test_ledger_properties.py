"""Property: after any sequence of grants, invoices, payments, refunds, disputes, expiries, voids,
corrections and retries, every posting balances, balances equal the sum of entries, no grant goes
below zero or is applied after it expired, cash never goes below zero and no payment gives back more
than it collected (pure domain, no AWS)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from neruba.dal.payments import PaymentsRepository
from neruba.domain.credits import CreditGrant, Line, allocate
from neruba.domain.ledger import Book, Entry, Posting, credit, debit, natural
from neruba.domain.payments import PaymentRecord, RefundableExceededError
from neruba.logic.ledger.credits import closing_entries, grant_posting
from neruba.logic.ledger.postings import (
    LOWERS_ONLY,
    AdjustmentDirectionError,
    adjust_balance,
    invoice_posting,
    record_payment,
    record_refund,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
METERS = ["api_calls", "tokens", None]


class FakeRepo:
    """Stands in for LedgerRepository.post: an idempotent in-memory book."""

    table_name = "memory"
    payments = PaymentsRepository("memory")  # builds the payment items the posting carries (not written)

    def __init__(self, book: Book) -> None:
        self.book = book

    def post(self, posting: Posting, extra_items: Sequence[dict[str, Any]] = ()) -> Posting:
        stored = self.book.postings.get((posting.customer_id, posting.idempotency_key))
        if stored is not None:
            return stored
        self.book.apply(posting)
        return posting


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = Book()
        self.repo: Any = FakeRepo(self.book)
        self.now = T0
        self.grants: dict[str, CreditGrant] = {}
        self.history: list[Posting] = []
        self.counter = 0
        self.disputes: dict[str, tuple[str, int]] = {}
        self.payments: dict[str, PaymentRecord] = {}

    def _key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}:{self.counter}"

    def _apply(self, posting: Posting) -> None:
        self.history.append(posting)
        self.book.apply(posting)

    @rule(
        kind=st.sampled_from(["purchased", "promotional"]),
        amount=st.integers(1, 10_000),
        priority=st.integers(0, 3),
        expires_in=st.one_of(st.none(), st.integers(1, 24)),
        meter=st.sampled_from(METERS),
    )
    def grant(self, kind: str, amount: int, priority: int, expires_in: int | None, meter: str | None) -> None:
        gid = f"cg_{self.counter}"
        grant = CreditGrant(
            gid,
            "acme",
            kind,
            amount,
            amount,
            "USD",
            priority,
            self.now,  # type: ignore[arg-type]
            self.now + timedelta(hours=expires_in) if expires_in else None,
            (meter,) if meter else None,
        )
        self.grants[gid] = grant
        self._apply(grant_posting(grant, idempotency_key=self._key("grant"), actor="t", at=self.now))

    @rule(amounts=st.lists(st.tuples(st.integers(0, 5_000), st.sampled_from(METERS)), min_size=1, max_size=4))
    def invoice(self, amounts: list[tuple[int, str | None]]) -> None:
        lines = [Line(f"l{i}", meter, amount) for i, (amount, meter) in enumerate(amounts)]
        subtotal = sum(line.amount_minor for line in lines)
        apps = allocate(self.grants.values(), lines, self.now)
        for app in apps:
            grant = self.grants[app.grant_id]
            assert grant.expires_at is None or self.now < grant.expires_at, "expired credit applied"
            self.grants[app.grant_id] = grant.consumed(app.amount_minor)  # raises below zero
        if subtotal == 0:
            assert apps == []
            return
        self._apply(invoice_posting("acme", self._key("in"), "USD", subtotal, apps, self.now))

    @rule(amount=st.integers(1, 5_000))
    def payment(self, amount: int) -> None:
        key = self._key("pay")
        self.payments[key] = PaymentRecord("acme", key, None, "USD", paid_minor=amount)
        self.history.append(
            record_payment(
                self.repo,
                customer_id="acme",
                currency="USD",
                amount_minor=amount,
                payment_id=key,
                idempotency_key=key,
                source="payment",
                actor="t",
                at=self.now,
            )
        )

    @precondition(lambda self: bool(self.payments))
    @rule(amount=st.integers(1, 5_000), data=st.data())
    def refund(self, amount: int, data: st.DataObject) -> None:
        payment = self.payments[data.draw(st.sampled_from(sorted(self.payments)))]
        key = self._key("re")
        refund = lambda: record_refund(  # noqa: E731
            self.repo,
            customer_id="acme",
            currency="USD",
            amount_minor=amount,
            refund_id=key,
            idempotency_key=key,
            source="operator",
            actor="t",
            payment=payment,
            at=self.now,
        )
        if amount > payment.refundable_minor:
            before = dict(self.book.balances)
            with pytest.raises(RefundableExceededError):
                refund()
            assert dict(self.book.balances) == before
            return
        self.history.append(refund())
        self.payments[payment.payment_id] = payment.refund(amount)

    @rule(
        amount=st.integers(-5_000, 5_000).filter(bool),
        code=st.sampled_from(["goodwill", "correction", "refund", "dispute"]),
    )
    def correction(self, amount: int, code: str) -> None:
        if amount < 0 and code in LOWERS_ONLY:
            with pytest.raises(AdjustmentDirectionError):
                adjust_balance(
                    self.repo, customer_id="acme", currency="USD", amount_minor=amount,
                    reason_code=code, idempotency_key=self._key("adj"), actor="t",  # type: ignore[arg-type]
                )  # fmt: skip
            return
        self.history.append(
            adjust_balance(
                self.repo,
                customer_id="acme",
                currency="USD",
                amount_minor=amount,
                reason_code=code,
                idempotency_key=self._key("adj"),
                actor="t",  # type: ignore[arg-type]
                at=self.now,
            )
        )

    @precondition(lambda self: bool(self.payments))
    @rule(amount=st.integers(1, 5_000), data=st.data())
    def dispute(self, amount: int, data: st.DataObject) -> None:
        payment = self.payments[data.draw(st.sampled_from(sorted(self.payments)))]
        if amount > payment.refundable_minor:
            with pytest.raises(RefundableExceededError):
                payment.open_dispute(amount)
            return
        key = self._key("dp")
        self.payments[payment.payment_id] = payment.open_dispute(amount)
        self.disputes[key] = (payment.payment_id, amount)
        self._apply(self._simple(key, [debit("disputes", amount), credit("cash", amount)]))

    @precondition(lambda self: bool(self.disputes))
    @rule(won=st.booleans(), data=st.data())
    def close_dispute(self, won: bool, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.disputes)))
        payment_id, amount = self.disputes.pop(key)
        payment = self.payments[payment_id]
        self.payments[payment_id] = payment.close_dispute(amount, "won" if won else "lost")
        side = debit("cash", amount) if won else debit("dispute_losses", amount)
        self._apply(self._simple(key + ":close", [side, credit("disputes", amount)]))

    @rule(hours=st.integers(1, 12))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule()
    def expiry_job_runs(self) -> None:
        for gid, grant in sorted(self.grants.items()):
            if grant.status == "active" and grant.expires_at and grant.expires_at <= self.now:
                if grant.remaining_minor:
                    self._apply(self._simple(f"expiry:{gid}", closing_entries(grant)))
                self.grants[gid] = CreditGrant(
                    **{**_fields(grant), "remaining_minor": 0, "status": "expired"}
                )

    @precondition(lambda self: any(g.status == "active" and g.remaining_minor for g in self.grants.values()))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        live = sorted(g for g, v in self.grants.items() if v.status == "active" and v.remaining_minor)
        gid = data.draw(st.sampled_from(live))
        self._apply(self._simple(f"void:{gid}", closing_entries(self.grants[gid])))
        self.grants[gid] = CreditGrant(
            **{**_fields(self.grants[gid]), "remaining_minor": 0, "status": "voided"}
        )

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def retry_any_earlier_posting(self, data: st.DataObject) -> None:
        posting = data.draw(st.sampled_from(self.history))
        before = dict(self.book.balances)
        assert self.repo.post(posting) == posting
        assert dict(self.book.balances) == before

    def _simple(self, key: str, entries: list[Entry]) -> Posting:
        return Posting.build(
            idempotency_key=key,
            customer_id="acme",
            currency="USD",
            entries=entries,
            reason="r",
            source="operator",
            source_id=None,
            actor="t",
            at=self.now,
        )

    @invariant()
    def every_posting_balances(self) -> None:
        for posting in self.book.postings.values():
            assert sum(e.debit_minor for e in posting.entries) == sum(e.credit_minor for e in posting.entries)

    @invariant()
    def balances_equal_the_sum_of_entries(self) -> None:
        recomputed: dict[tuple[str, str, str], int] = defaultdict(int)
        for posting in self.book.postings.values():
            for entry in posting.entries:
                recomputed[("acme", "USD", entry.balance_key)] += entry.signed
        assert {k: v for k, v in recomputed.items() if v} == {
            k: v for k, v in self.book.balances.items() if v
        }
        assert sum(self.book.balances.values()) == 0

    @invariant()
    def grants_match_the_ledger_and_never_go_below_zero(self) -> None:
        for gid, grant in self.grants.items():
            assert grant.remaining_minor >= 0
            assert natural("prepaid_credit", self.book.balance("acme", "USD", f"prepaid_credit#{gid}")) == (
                grant.remaining_minor
            )

    @invariant()
    def cash_and_payments_never_give_back_more_than_was_received(self) -> None:
        assert self.book.balance("acme", "USD", "cash") >= 0
        for payment in self.payments.values():
            assert 0 <= payment.refundable_minor <= payment.paid_minor
        refunded = sum(p.refunded_minor for p in self.payments.values())
        assert self.book.balance("acme", "USD", "refunds") == refunded + self._refund_adjustments()
        held = sum(amount for _, amount in self.disputes.values())
        assert self.book.balance("acme", "USD", "disputes") == held

    def _refund_adjustments(self) -> int:
        return sum(
            e.signed
            for p in self.book.postings.values()
            if p.reason == "adjustment_refund"
            for e in p.entries
            if e.account == "refunds"
        )


def _fields(grant: CreditGrant) -> dict[str, Any]:
    return {name: getattr(grant, name) for name in CreditGrant.__slots__}  # type: ignore[attr-defined]


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
