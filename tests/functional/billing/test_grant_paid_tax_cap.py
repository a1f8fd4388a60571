"""The tax of grant-paid usage given back never twice (docs/billing.md, "The tax of usage a grant paid"):
what an operator's credit note, a refund or a dispute already gave back of a grant-paid line (its tax
too) counts as taken back, whichever write carries the correction (a window's adjustment line above zero,
a window below zero, a rerun after the end).

Real pricing (1.00 per API call, daily windows), 19% exclusive tax: day 0 billed 4 calls (400 and 76 of
tax), a promotional grant paying the 400, the customer owing the 76 in money."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.test_correction_settlement import _agree, _credit_note
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_grant_paid_corrections import _balance, _day0_paid_by, _taxed, _usage
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name
LINE_TAX = 76  # 19% of day 0's 400


def _end(real: World, monkeypatch: Any) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub_id = str(real.subscriptions[0]["id"])
    cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))


def _corrected(real: World, api: Any, monkeypatch: Any, path: str, first_id: str) -> list[dict[str, Any]]:
    """The correction of day 0 carried by ``path``: the next window above zero (3 calls of its own), the
    next window below zero (no call), or a rerun after the end; what the grants got back."""
    if path == "end":
        status, taken = rerun(api, first_id, "rr")
        assert status == 200, taken
        assert rerun(api, first_id, "rr")[1] == taken  # retried with its key: the same answer
        return list((taken["correction"] or {}).get("grant_restorations") or [])
    if path == "window":
        _events("e", "f", "g", at=START + day(1, 2))
    _bill(real, START + day(2, 1), monkeypatch)
    return list(_usage(real, 1)["grant_restorations"])


def _day1_revenue(real: World, first_id: str) -> int:
    """What the invoices other than day 0's bill of usage (``revenue``'s side, a credit balance)."""
    return -sum(int(line["amount_minor"]) for i in real.invoices("acme") if i["id"] != first_id
                for line in i["lines"] if line["kind"] == "usage")  # fmt: skip


def _credit_notes_of(real: World, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return list(invoice.get("credit_notes") or [])


def _given(real: World, first_id: str, surviving: int) -> tuple[int, int]:
    """The tax given back for day 0's line in all (what it collected less what is still owed for it) and
    what day 0's surviving calls owe (19% of them)."""
    day1 = sum(int((line.get("tax") or {}).get("exclusive_minor") or 0)
               for i in real.invoices("acme") if i["id"] != first_id
               for line in i["lines"] if line["kind"] == "usage")  # fmt: skip
    still = -_balance("tax_payable") - day1
    return LINE_TAX - still, surviving * 19 // 100


@pytest.mark.parametrize("path", ["window", "below", "end"])
@pytest.mark.parametrize(("credited", "voided"), [(None, 4), (50, 4), (None, 2), (50, 3)],
                         ids=["whole-all", "part-all", "whole-two", "part-three"])  # fmt: skip
def test_an_operator_note_of_a_grant_paid_line_is_not_given_back_again(
    real: World, api: Any, monkeypatch: Any, path: str, credited: int | None, voided: int
) -> None:
    # GIVEN day 0 (400 + 76) paid 400 by a grant, an operator's credit note of its line (all it can
    # take: the 76 owed in money, 64 of the line and 12 of tax; or 50 of the line and 10 of tax)
    _taxed(real, False)
    first, _grants = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    (line,) = [line for line in first["lines"] if line["kind"] == "usage"]
    body = {"lines": [{"line_id": line["line_id"], "amount_minor": credited}]} if credited else {}
    status, note = _credit_note(api, first["id"], "cn-op", **body)
    assert status == 201, note
    assert (note["subtotal_minor"], note["tax_minor"]) == ((50, 10) if credited else (64, 12))
    if path == "end":
        _end(real, monkeypatch)
    # AND ``voided`` of its calls voided
    for n, tx in enumerate("abcd"[:voided]):
        assert _void(tx, START + day(1, 9), f"v{n}")["correction"] == "completed"

    # WHEN the correction is carried (window above zero, window below zero, rerun after the end)
    restored = _corrected(real, api, monkeypatch, path, first["id"])

    # THEN the tax given back for the line (the note's and the correction's) never exceeds the 76 it
    # collected, and tax_payable keeps at least what day 0's surviving calls owe net of the note
    given, owed = _given(real, first["id"], 100 * (4 - voided))
    assert given <= LINE_TAX, (given, restored)
    assert LINE_TAX - given >= max(owed - int(note["tax_minor"]), 0)
    # AND the grant gets back all it paid of the voided calls: the note gave back money, never credit
    # (what it took of the line beyond the line's money, 0 here, was the tax the customer owed)
    taken = sum(int(r["amount_minor"]) for r in restored)
    assert taken == 100 * voided, restored
    if voided == 4:  # everything voided: the line's tax all off tax_payable, once, and its revenue too
        assert given == LINE_TAX, restored
        assert _balance("revenue") == _day1_revenue(real, first["id"])
        # the money the customer owed for the line (76) was all given back by the note, the rest (none,
        # or 16 after a note of 60) by the correction: nothing of the grant's 400 became money
        back = sum(int(n["amount_minor"]) for i in real.invoices("acme") for n in _credit_notes_of(real, i))
        assert back == LINE_TAX, back
    assert_books_agree(real, "acme")


@pytest.mark.parametrize("path", ["window", "below", "end"])
@pytest.mark.parametrize("how", ["refund", "dispute_lost"])
def test_a_refund_or_dispute_of_the_tax_paid_is_not_given_back_again(
    real: World, api: Any, monkeypatch: Any, path: str, how: str
) -> None:
    from neruba import bootstrap
    from neruba.logic.ledger.admin import Operator, Stores, close_dispute, open_dispute
    from neruba.models.ledger import DisputeClose, DisputeCreate
    from tests.functional.billing.credit_note_support import pay, refund

    # GIVEN day 0 (400 + 76) paid 400 by a grant and the 76 in money, then the 76 refunded (or charged
    # back, the dispute lost)
    _taxed(real, False)
    first, _grants = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    pay(real, first["id"], LINE_TAX)
    if how == "refund":
        refund(first["id"], LINE_TAX)
    else:
        stores = Stores(
            bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
        )
        body = DisputeCreate(amount_minor=LINE_TAX, invoice_id=first["id"], reason="chargeback")
        opened = open_dispute(stores, Operator("key:t", None, "d1"), "acme", body)
        outcome = DisputeClose(outcome="lost", reason="closed")
        close_dispute(stores, Operator("key:t", None, "d2"), str(opened["id"]), outcome)
    if path == "end":
        _end(real, monkeypatch)
    for n, tx in enumerate("abcd"):
        assert _void(tx, START + day(1, 9), f"v{n}")["correction"] == "completed"

    # WHEN the correction is carried
    restored = _corrected(real, api, monkeypatch, path, first["id"])

    # THEN the grant gets its 400 back (the money given back was the tax), and no tax is given back again:
    # no credit note, no tax on the carrying window's lines of the correction
    assert sum(int(r["amount_minor"]) for r in restored) == 400
    assert [n for i in real.invoices("acme") for n in _credit_notes_of(real, i)] == []
    adjustments = [li for i in real.invoices("acme") for li in i["lines"] if li["kind"] == "adjustment"]
    assert sum(int((li.get("tax") or {}).get("exclusive_minor") or 0) for li in adjustments) == 0
    # AND the tax the refund (or chargeback) gave back was the tax of usage that no longer counts: it left
    # tax_payable (booked off ``refunds`` or ``dispute_losses``), once
    given, _owed = _given(real, first["id"], 0)
    assert given == LINE_TAX, restored
    _agree(real)  # payments and refunds counted
