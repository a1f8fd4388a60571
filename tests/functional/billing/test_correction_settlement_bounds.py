"""A negative correction after the end gives back at most what the line still carries, and with the tax
collected for it (docs/billing.md, "Negative corrections settle against what they correct"):

- what an operator's credit note already took from the line counts as taken back, so the correction
  credits only the rest and leaves no standalone ``credit_note`` invoice for the part already credited;
- the credit note settling the correction gives back the adjustment's own tax (the tax the corrected
  invoice collected for that usage), never a tax recomputed on the credited amount.

19% exclusive tax, 1.00 per call, the final window of a cancelled subscription billed with 12 calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger
from tests.functional.billing.credit_note_support import pay
from tests.functional.billing.helpers import day
from tests.functional.billing.test_correction_settlement import (
    _agree,
    _credit_note,
    _ended,
    _remaining,
    _taxed,
)
from tests.functional.billing.test_real_correction import BILLED_CALLS, PRICE, api, rerun

__all__ = ["api"]  # the fixture, used by name


def _standalone(real: World) -> list[dict[str, Any]]:
    return [i for i in real.invoices("acme") if i["kind"] == "credit_note"]


def _usage_line(final: dict[str, Any]) -> str:
    (line,) = [line for line in final["lines"] if line["kind"] == "usage"]
    return str(line["line_id"])


@pytest.mark.parametrize("how", ["amount", "quantity", "partly_paid"])
def test_a_line_an_operator_credited_is_taken_back_only_for_what_it_still_carries(
    real: World, api: Any, monkeypatch: Any, how: str
) -> None:
    # GIVEN the final invoice (12 calls, 1200 + 228 tax) whose line an operator credited 500 of
    final = _ended(real, api, monkeypatch)
    if how == "partly_paid":
        pay(real, final["id"], 300, payment_id="ch_part")
    line = {"line_id": _usage_line(final)}
    line |= {"quantity": "5"} if how == "quantity" else {"amount_minor": 500}
    status, note = _credit_note(api, final["id"], "cn-op", lines=[line])
    assert status == 201, note
    operator = _taxed(500)  # 500 and its 95 of tax
    # WHEN every call is voided (the usage is 0) and the rerun runs, then is retried
    real.usage("acme", START + day(0, 4), 0)
    status, taken = rerun(api, final["id"], "rr-void")
    assert (status, rerun(api, final["id"], "rr-void")) == (200, (200, taken))
    assert rerun(api, final["id"], "rr-void-2")[1]["action"] == "unchanged"
    # THEN one credit note takes what the line still carries (700 and the 133 of tax left), nothing more
    correction = taken["correction"]
    left = _taxed(BILLED_CALLS * PRICE) - operator
    assert [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]] == [(final["id"], left)]
    assert (correction["invoice_id"], correction["amount_minor"]) == (None, -left), correction
    assert _standalone(real) == []
    # AND the customer got back exactly what the line billed; the invoice asks for nothing
    invoice = real.ctx.invoices.get(final["id"])
    assert invoice is not None and int(invoice.document["credited_minor"]) == _taxed(BILLED_CALLS * PRICE)
    assert _remaining(real)[final["id"]] == 0
    paid = 300 if how == "partly_paid" else 0
    assert ledger().balances("acme")["USD"]["receivable"] == -paid
    _agree(real)


def _discounted(real: World) -> None:
    """A 12.5% coupon, forever, on acme: 12 calls net 1050 (tax 199.5 -> 200), 10 calls net 875 (166.25 ->
    166), so taking 2 calls back gives back 175 and 34 of tax, where 19% of 175 would be 33."""
    from neruba.logic.billing import coupons
    from neruba.models.discounts import CouponCreate, DiscountCreate

    coupon = coupons.create_coupon(real.ctx, CouponCreate.model_validate(
        {"name": "pct", "percent_off": "12.5", "duration": "forever", "reason": "deal"}
    ), "key:p", "co-pct")  # fmt: skip
    body = DiscountCreate.model_validate({"coupon_id": coupon["id"], "customer_id": "acme", "reason": "deal"})
    coupons.create_discount(real.ctx, body, "key:p", "di-acme")


def test_the_settling_credit_note_gives_back_the_adjustments_own_tax(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final invoice of 12 calls after a 12.5% coupon: 1050 + 200 tax
    _discounted(real)
    final = _ended(real, api, monkeypatch, total=1250)
    # WHEN 2 calls are voided and the rerun runs, then is retried
    real.usage("acme", START + day(0, 4), BILLED_CALLS - 2)
    status, taken = rerun(api, final["id"], "rr-two")
    assert (status, rerun(api, final["id"], "rr-two")) == (200, (200, taken))
    # THEN the difference is -175 and -34 of tax (875 + 166 now), and the settling credit note gives back
    # exactly that: 175 and 34, not 19% of 175 recomputed (33)
    assert taken["difference"]["subtotal_minor"] == -175 and taken["difference"]["tax_minor"] == -34, taken
    correction = taken["correction"]
    assert [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]] == [(final["id"], 209)]
    assert (correction["invoice_id"], correction["amount_minor"]) == (None, -209), correction
    invoice = real.ctx.invoices.get(final["id"])
    assert invoice is not None
    assert (int(invoice.document["credited_minor"]), _remaining(real)[final["id"]]) == (209, 875 + 166)
    assert ledger().balances("acme")["USD"]["tax_payable"] == -166  # owed: 166, a credit balance
    _agree(real)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_rerun_killed_around_its_settlement_of_a_credited_line_is_retried_once(
    real: World, api: Any, monkeypatch: Any, when: str
) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import admin

    # GIVEN the discounted final invoice (1050 + 200) whose line an operator credited 300 of (57 of tax)
    _discounted(real)
    final = _ended(real, api, monkeypatch, total=1250)
    line = {"line_id": _usage_line(final), "amount_minor": 300}
    assert _credit_note(api, final["id"], "cn-op", lines=[line])[0] == 201
    real.usage("acme", START + day(0, 4), 0)

    def killed(unit: Any) -> None:
        if when == "after":
            transaction.commit(unit)
        raise RuntimeError("killed")

    # WHEN the process dies just before (or just after) the settling transaction, then the call is retried
    monkeypatch.setattr(admin, "commit", killed)
    assert rerun(api, final["id"], "rr-killed")[0] == 500
    monkeypatch.setattr(admin, "commit", transaction.commit)
    status, taken = rerun(api, final["id"], "rr-killed")
    # THEN one note takes what is left (750 and 143 of tax), once; the customer got back the 1250 billed
    assert status == 200, taken
    (note,) = taken["correction"]["credit_notes"]
    assert note["amount_minor"] == 1250 - 357 and real.ctx.billing.credit_notes.get(note["id"])
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None and len(stored.document.get("credit_notes") or []) == 2
    assert int(stored.document["credited_minor"]) == 1250
    assert _standalone(real) == []
    assert ledger().balances("acme")["USD"]["receivable"] == 0
    assert ledger().balances("acme")["USD"]["tax_payable"] == 0
    _agree(real)


def test_an_operator_note_racing_the_settlement_never_gives_back_more_than_billed(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import admin

    # GIVEN the final invoice (1200 + 228), every call voided
    final = _ended(real, api, monkeypatch)
    line = {"line_id": _usage_line(final), "amount_minor": 500}
    real.usage("acme", START + day(0, 4), 0)
    raced: list[int] = []

    def racing(unit: Any) -> None:
        if not raced:  # an operator's note of 500 lands between the rerun's reads and its transaction
            raced.append(_credit_note(api, final["id"], "cn-op", lines=[line])[0])
        transaction.commit(unit)

    # WHEN the rerun runs (retried by its caller when its transaction was cancelled)
    monkeypatch.setattr(admin, "commit", racing)
    status, taken = rerun(api, final["id"], "rr-race")
    if status != 200:
        status, taken = rerun(api, final["id"], "rr-race-2")
    # THEN the operator's 595 and the correction together give back the 1428 billed, never more
    assert raced == [201] and status == 200, taken
    assert [n["amount_minor"] for n in taken["correction"]["credit_notes"]] == [_taxed(1200) - _taxed(500)]
    assert _standalone(real) == []
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None and int(stored.document["credited_minor"]) == _taxed(1200)
    assert ledger().balances("acme")["USD"]["receivable"] == 0
    _agree(real)


def test_a_line_an_operator_credited_whole_is_not_given_back_again(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final invoice whose usage line an operator credited whole (1200 and its 228 of tax)
    final = _ended(real, api, monkeypatch)
    status, note = _credit_note(
        api, final["id"], "cn-op", lines=[{"line_id": _usage_line(final), "amount_minor": 1200}]
    )
    assert status == 201, note
    # WHEN every call is voided and the rerun runs
    real.usage("acme", START + day(0, 4), 0)
    status, taken = rerun(api, final["id"], "rr-void")
    # THEN nothing more is given back: no credit note, no credit note invoice, the difference recorded
    assert status == 200, taken
    assert (taken["action"], taken["correction"]) == ("unchanged", None), taken  # nothing issued, said so
    assert _standalone(real) == []
    assert rerun(api, final["id"], "rr-void-2")[1]["action"] == "unchanged"
    assert ledger().balances("acme")["USD"]["receivable"] == 0
    _agree(real)
