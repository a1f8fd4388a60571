"""Ledger and credit rules without AWS: posting validation, allocation order, expiry boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from neruba.domain.credits import CreditApplication, CreditGrant, CreditRuleError, Line, allocate
from neruba.domain.ledger import Book, Entry, LedgerRuleError, Posting, summarise
from neruba.logic.ledger.credits import closing_entries, grant_posting
from neruba.logic.ledger.postings import EmptyPostingError, adjustment_entries, invoice_posting

T = datetime(2026, 1, 1, tzinfo=UTC)


def _grant(
    gid: str,
    amount: int = 1000,
    *,
    kind: str = "promotional",
    priority: int = 0,
    expires: datetime | None = None,
    effective: datetime = T,
    meters: tuple[str, ...] | None = None,
    remaining: int | None = None,
) -> CreditGrant:
    return CreditGrant(
        gid,
        "acme",
        kind,
        amount,
        amount if remaining is None else remaining,
        "USD",  # type: ignore[arg-type]
        priority,
        effective,
        expires,
        meters,
    )


def _posting(entries: list[Entry], currency: str = "USD") -> Posting:
    return Posting.build(
        idempotency_key="k",
        customer_id="acme",
        currency=currency,
        entries=entries,
        reason="r",
        source="operator",
        source_id=None,
        actor="a",
        at=T,
    )


@pytest.mark.parametrize(
    "entries",
    [
        [Entry("cash", debit_minor=100)],
        [Entry("cash", debit_minor=100), Entry("receivable", credit_minor=99)],
    ],
)
def test_unbalanced_or_single_entry_postings_are_refused(entries: list[Entry]) -> None:
    with pytest.raises(LedgerRuleError):
        _posting(entries)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Entry("cash", debit_minor=0),
        lambda: Entry("cash", debit_minor=5, credit_minor=5),
        lambda: Entry("cash", debit_minor=-5),
        lambda: Entry("cash", debit_minor=1.5),  # type: ignore[arg-type]
        lambda: Entry("petty_cash", debit_minor=5),
    ],
)
def test_bad_entries_are_refused(make: object) -> None:
    with pytest.raises(LedgerRuleError):
        make()  # type: ignore[operator]


def test_a_posting_needs_a_known_currency_shape_and_aware_times() -> None:
    with pytest.raises(LedgerRuleError):
        _posting([Entry("cash", debit_minor=1), Entry("receivable", credit_minor=1)], currency="usd")
    with pytest.raises(LedgerRuleError):
        Posting.build(
            idempotency_key="k",
            customer_id="acme",
            currency="USD",
            entries=[Entry("cash", debit_minor=1), Entry("receivable", credit_minor=1)],
            reason="r",
            source="operator",
            source_id=None,
            actor="a",
            at=datetime(2026, 1, 1),
        )


def test_posting_round_trips_and_book_applies_once() -> None:
    # GIVEN a posting
    posting = _posting([Entry("cash", debit_minor=7), Entry("receivable", credit_minor=7)])
    # WHEN it round-trips and is applied twice
    assert Posting.from_dict(posting.to_dict()) == posting
    book = Book().apply(posting).apply(posting)
    # THEN it counted once
    assert book.balance("acme", "USD", "cash") == 7


def test_allocation_order_priority_then_soonest_expiry_then_oldest() -> None:
    # GIVEN grants of different priorities and expiries, each 100
    grants = [
        _grant("no_expiry", 100, priority=0),
        _grant("late", 100, priority=0, expires=T + timedelta(days=30)),
        _grant("soon", 100, priority=0, expires=T + timedelta(days=2)),
        _grant("low_priority_soonest", 100, priority=5, expires=T + timedelta(days=1)),
        _grant("older", 100, priority=0, expires=T + timedelta(days=2), effective=T - timedelta(days=1)),
    ]
    # WHEN 450 of lines are allocated
    apps = allocate(grants, [Line("l1", None, 450)], T + timedelta(hours=1))
    # THEN lower priority number first, then soonest expiry (oldest first on a tie), no-expiry last
    assert [(a.grant_id, a.amount_minor) for a in apps] == [
        ("older", 100),
        ("soon", 100),
        ("late", 100),
        ("no_expiry", 100),
        ("low_priority_soonest", 50),
    ]


def test_a_grant_expiring_at_t_is_not_usable_at_t() -> None:
    grant = _grant("g", expires=T + timedelta(days=1))
    assert allocate([grant], [Line("l", None, 10)], T + timedelta(days=1)) == []
    assert allocate([grant], [Line("l", None, 10)], T + timedelta(days=1) - timedelta(microseconds=1)) != []
    assert allocate([_grant("f", effective=T + timedelta(days=1))], [Line("l", None, 10)], T) == []


def test_meter_restricted_grants_pay_only_their_meters_and_partial_leaves_a_remainder() -> None:
    # GIVEN a grant restricted to api_calls, and one unrestricted
    grants = [_grant("api_only", 500, meters=("api_calls",)), _grant("any", 200, priority=1)]
    lines = [Line("fee", None, 300), Line("api", "api_calls", 100)]
    # WHEN allocated
    apps = allocate(grants, lines, T)
    # THEN the restricted grant pays only the api line and keeps 400; the other pays the fee partly
    assert [(a.grant_id, a.line_id, a.amount_minor) for a in apps] == [
        ("api_only", "api", 100),
        ("any", "fee", 200),
    ]


def test_grants_never_go_below_zero() -> None:
    with pytest.raises(CreditRuleError):
        _grant("g", 100).consumed(101)
    with pytest.raises(CreditRuleError):
        _grant("g", 100, remaining=101)


def test_invoice_posting_of_promotional_and_purchased_credit() -> None:
    # GIVEN 300 promotional and 200 purchased applied to an invoice of 1000
    apps = [CreditApplication("p", "l1", 300, "promotional"), CreditApplication("q", "l1", 200, "purchased")]
    posting = invoice_posting("acme", "in_1", "USD", 1000, apps, T)
    deltas = posting.deltas()
    # THEN revenue 1000, credit used per grant, promo expense 300, due 500
    assert deltas == {
        "revenue": -1000,
        "prepaid_credit#p": 300,
        "prepaid_credit#q": 200,
        "promotional_allowance": -300,
        "promotional_credit_expense": 300,
        "receivable": 500,
    }
    assert posting.idempotency_key == "invoice:in_1"


def test_an_invoice_paid_entirely_by_credit_still_posts() -> None:
    posting = invoice_posting("acme", "in_1", "USD", 400, [CreditApplication("q", "l", 400, "purchased")], T)
    assert "receivable" not in posting.deltas() and posting.total_minor == 400


def test_invoice_posting_refuses_over_application_and_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="exceed"):
        invoice_posting("acme", "in", "USD", 100, [CreditApplication("q", "l", 101, "purchased")], T)
    with pytest.raises(CreditRuleError):
        invoice_posting("acme", "in", "USD", 100, [CreditApplication("q", "l", 10)], T)
    with pytest.raises(EmptyPostingError):
        invoice_posting("acme", "in", "USD", 0, [], T)
    kinds = {"q": _grant("q", kind="purchased")}
    assert invoice_posting("acme", "in", "USD", 100, [CreditApplication("q", "l", 10)], T, grants=kinds)


def test_grant_and_closing_postings_keep_promotional_credit_out_of_revenue() -> None:
    # GIVEN a promotional grant of 1000 of which 400 is spent and 600 expires
    grant = _grant("p", 1000)
    book = Book()
    book.apply(grant_posting(grant, idempotency_key="g", actor="a", at=T))
    book.apply(
        invoice_posting("acme", "in", "USD", 400, [CreditApplication("p", "l", 400, "promotional")], T)
    )
    closing = closing_entries(grant.consumed(400))
    book.apply(_posting(closing))
    view = summarise({k[2]: v for k, v in book.balances.items()})
    # THEN nothing is left, the allowance is back to 0, and net revenue is 0
    assert view["credit_available_minor"] == 0
    assert "promotional_allowance" not in view["accounts"]
    assert view["accounts"]["revenue"] - view["accounts"]["promotional_credit_expense"] == 0


@pytest.mark.parametrize("code", ["goodwill", "correction", "refund", "dispute"])
def test_adjustments_lower_the_receivable_and_only_a_correction_raises_it(code: str) -> None:
    from neruba.logic.ledger.postings import AdjustmentDirectionError

    down = {e.account: e.signed for e in adjustment_entries(100, code)}  # type: ignore[arg-type]
    assert down["receivable"] == -100
    if code == "correction":
        up = {e.account: e.signed for e in adjustment_entries(-100, code)}
        assert up["receivable"] == 100
    else:  # goodwill of -300 raising the amount due contradicts its reason code
        with pytest.raises(AdjustmentDirectionError):
            adjustment_entries(-100, code)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-zero"):
        adjustment_entries(0, code)  # type: ignore[arg-type]
