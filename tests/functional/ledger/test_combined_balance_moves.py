"""Several postings of one customer in one transaction (docs/ledger.md, "Several postings in one
transaction"): the moves of one balance are combined into one update, the balances and posting counters
come out as if each posting had been written alone, and a never-negative balance is judged on the sum."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.dal.transaction import Cancelled, Transaction, items_touched
from neruba.domain.ledger import Entry, Posting
from tests.functional.ledger.conftest import T0


def _posting(key: str, *entries: Entry) -> Posting:
    return Posting.build(idempotency_key=key, customer_id="acme", currency="USD", entries=list(entries),
                         reason="test", source="operator", source_id=key, actor="test", at=T0)  # fmt: skip


def _cash_in(key: str, amount: int) -> Posting:
    return _posting(key, Entry("cash", debit_minor=amount), Entry("receivable", credit_minor=amount))


def _cash_out(key: str, amount: int) -> Posting:
    return _posting(key, Entry("receivable", debit_minor=amount), Entry("cash", credit_minor=amount))


def _actions(ledger: Any, *postings: Posting) -> list[dict[str, Any]]:
    return [action for p in postings for action in ledger.posting_items(p)]


def test_three_postings_on_the_same_balances_commit_as_one_transaction(ledger: Any) -> None:
    actions = _actions(ledger, _cash_in("p1", 500), _cash_in("p2", 300), _cash_out("p3", 200))
    touched = items_touched(actions)
    assert len(set(touched)) < len(touched)  # as built, DynamoDB would refuse them
    combined = ledger.combine_balance_moves(actions)
    assert len(set(items_touched(combined))) == len(combined) == 6 + 2
    Transaction(combined).commit()
    assert ledger.balances("acme") == {"USD": {"cash": 600, "receivable": -600}}
    assert ledger.reconcile("acme") == []  # the counters count three postings on each balance
    assert len(ledger.postings("acme", 100)[0]) == 3


def test_a_never_negative_balance_is_judged_on_the_sum(ledger: Any) -> None:
    ledger.post(_cash_in("p0", 100))
    # WHEN 250 goes out and 200 comes in, in one transaction: the sum (-50) fits the 100 held
    Transaction(
        ledger.combine_balance_moves(_actions(ledger, _cash_out("o1", 250), _cash_in("i1", 200)))
    ).commit()
    assert ledger.balances("acme")["USD"]["cash"] == 50
    # AND two moves out that together exceed it are refused whole
    refused = ledger.combine_balance_moves(_actions(ledger, _cash_out("o2", 30), _cash_out("o3", 30)))
    with pytest.raises(Cancelled):
        Transaction(refused).commit()
    assert ledger.balances("acme")["USD"]["cash"] == 50
    assert ledger.reconcile("acme") == []
