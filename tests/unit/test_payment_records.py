"""Payment records (pure domain): any sequence of refunds and disputes, accepted or refused, never
gives back more than the payment collected, and a refused move changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neruba.domain.payments import PaymentRecord, RefundableExceededError

MOVES = st.lists(
    st.tuples(st.sampled_from(["refund", "dispute", "won", "lost"]), st.integers(1, 2_000)), max_size=30
)


@given(paid=st.integers(1, 3_000), moves=MOVES)
def test_refunded_plus_disputed_never_exceeds_paid(paid: int, moves: list[tuple[str, int]]) -> None:
    record = PaymentRecord("acme", "ch_1", "in_1", "USD", paid_minor=paid)
    open_disputes: list[int] = []
    for kind, amount in moves:
        before = record
        if kind in ("won", "lost"):
            if not open_disputes:
                continue
            record = record.close_dispute(open_disputes.pop(), kind)  # type: ignore[arg-type]
        elif amount > record.refundable_minor:
            with pytest.raises(RefundableExceededError):
                record.refund(amount) if kind == "refund" else record.open_dispute(amount)
            assert record == before
        elif kind == "refund":
            record = record.refund(amount)
        else:
            record = record.open_dispute(amount)
            open_disputes.append(amount)
        assert 0 <= record.refundable_minor <= record.paid_minor
        assert record.refunded_minor + record.disputed_minor <= paid
        assert record.disputed_minor - record.lost_minor == sum(open_disputes)


def test_a_payment_record_refuses_the_impossible() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        PaymentRecord("acme", "ch_1", None, "USD", paid_minor=0)
    with pytest.raises(ValueError, match="more than was paid"):
        PaymentRecord("acme", "ch_1", None, "USD", paid_minor=10, refunded_minor=11)
    record = PaymentRecord("acme", "ch_1", None, "USD", paid_minor=10)
    with pytest.raises(ValueError, match="positive integer"):
        record.refund(0)
    with pytest.raises(ValueError, match="open disputes"):
        record.close_dispute(1, "won")  # nothing is held
