"""A negative correction after the end settles against the invoices that carry the amounts it takes back
(docs/billing.md, "Negative corrections settle against what they correct"): a credit note against an
open correction invoice (or the corrected invoice itself), never a standalone credit that leaves the
charge collectable; so every invoice's amount_remaining_minor, the receivable and Stripe agree, and
nothing can be credited twice.

19% exclusive tax, 1.00 per call, the final window of a cancelled subscription billed with 12 calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.credit_note_support import pay
from tests.functional.billing.helpers import billing_state, day, schedule, work
from tests.functional.billing.test_real_correction import BILLED_CALLS, PRICE, api, rerun
from tests.support.api import api_event, call

__all__ = ["api"]  # the fixture, used by name

LATE = 33


def _taxed(minor: int) -> int:
    return minor + (minor * 19 + 50) // 100  # 19% exclusive, half up


def _ended(real: World, api: Any, monkeypatch: Any, total: int | None = None) -> dict[str, Any]:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    body = {"display_name": "MwSt", "percentage": "19", "inclusive": False, "plan_code": "metered",
            "reason": "DE tax"}  # fmt: skip
    event = api_event("POST", "/admin/tax-rates", body=body, headers={"Idempotency-Key": "t-1"})
    assert call(api, event)[0] == 201
    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), BILLED_CALLS)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    assert final["total_minor"] == (_taxed(BILLED_CALLS * PRICE) if total is None else total)
    return final


def _remaining(real: World) -> dict[str, int]:
    from neruba.logic.billing.invoices import public

    return {
        i.id: int(public(i).get("amount_remaining_minor") or 0)
        for i in real.ctx.invoices.of_customer("acme")
        if i.status != "void"
    }


def _agree(real: World) -> None:
    """The ledger reconciles, each invoice's postings match what it says is owed, and the receivable is
    what the invoices still ask for plus the credit balance they gave."""
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice

    repo = ledger()
    assert repo.reconcile("acme") == []
    postings, _ = repo.postings("acme", 1000)
    owed, _ = receivable_by_invoice(postings)
    invoices = [i for i in real.ctx.invoices.of_customer("acme")]
    for inv in invoices:
        assert owed.get(inv.id, 0) == invoice_owed(inv), inv.id
    receivable = repo.balances("acme")["USD"]["receivable"]
    given = sum(int(i.document.get("credited_balance_minor") or 0) for i in invoices)
    negative = sum(i.total_minor for i in invoices if i.total_minor < 0 and i.status != "void")
    assert sum(_remaining(real).values()) - given + negative == receivable


def _credit_note(api: Any, invoice_id: str, key: str, **body: Any) -> tuple[int, Any]:
    path = f"/admin/invoices/{invoice_id}/credit-notes"
    headers = {"Idempotency-Key": key}
    event = api_event("POST", path, body={"reason": "again", **body},
                      path_parameters={"invoice_id": invoice_id}, headers=headers)  # fmt: skip
    status, answer, _ = call(api, event)
    return status, answer


@pytest.mark.parametrize("a_paid", [False, True], ids=["open", "paid"])
def test_a_revert_after_a_backfill_credits_the_open_correction_invoice(
    real: World, api: Any, monkeypatch: Any, a_paid: bool
) -> None:
    # GIVEN the final window paid, then a backfill of 33 calls billed on correction invoice A
    final = _ended(real, api, monkeypatch)
    pay(real, final["id"], final["total_minor"], payment_id="ch_final")
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE)
    status, added = rerun(api, final["id"], "rr-add")
    assert status == 200 and added["correction"]["type"] == "correction_invoice", added
    a_id = str(added["correction"]["invoice_id"])
    a_total = _taxed(LATE * PRICE)
    if a_paid:
        pay(real, a_id, a_total, payment_id="ch_a")

    # WHEN the backfill is reverted (the usage is back to 12 calls) and the rerun runs, twice
    real.usage("acme", START + day(0, 4), BILLED_CALLS)
    status, taken = rerun(api, final["id"], "rr-revert")
    assert (status, rerun(api, final["id"], "rr-revert")) == (200, (200, taken))
    assert rerun(api, final["id"], "rr-revert-2")[1]["action"] == "unchanged"

    # THEN A is credited by one credit note of its whole amount, no standalone credit note invoice
    assert taken["action"] == "correction_invoiced", taken
    correction = taken["correction"]
    assert (correction["type"], correction["invoice_id"]) == ("credit_note", None)
    assert [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]] == [(a_id, a_total)]
    assert correction["amount_minor"] == -a_total
    assert [i for i in real.invoices("acme") if i["kind"] == "credit_note"] == []
    a = real.ctx.invoices.get(a_id)
    assert a is not None and a.status == "paid"
    assert int(a.document["credited_minor"]) == a_total
    remaining = _remaining(real)
    assert (remaining[final["id"]], remaining[a_id], sum(remaining.values())) == (0, 0, 0)
    # a paid A is credited after its payment: the customer's credit balance, as the credit-note rules say
    assert int(a.document.get("credited_balance_minor") or 0) == (a_total if a_paid else 0)
    assert ledger().balances("acme")["USD"]["receivable"] == (-a_total if a_paid else 0)
    _agree(real)

    # AND nothing is left to credit on A a second time
    status, refused = _credit_note(api, a_id, "cn-again")
    assert (status, refused["error"]["code"]) == (409, "credit_note_exceeds_creditable"), refused


def test_a_negative_correction_of_an_unpaid_invoice_credits_it(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final window billed with 12 calls and unpaid, later recounted as 10
    final = _ended(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), 10)
    # WHEN an operator reruns it
    status, result = rerun(api, final["id"], "rr-neg")
    # THEN the invoice itself is credited 200 and its tax; it asks for 10 calls, nothing else does
    assert status == 200, result
    (note,) = result["correction"]["credit_notes"]
    assert (note["invoice_id"], note["amount_minor"]) == (final["id"], _taxed(200))
    remaining = _remaining(real)
    assert remaining[final["id"]] == sum(remaining.values()) == _taxed(BILLED_CALLS * PRICE) - _taxed(200)
    assert ledger().balances("acme")["USD"]["receivable"] == remaining[final["id"]]
    assert [i for i in real.invoices("acme") if i["kind"] == "credit_note"] == []
    _agree(real)


def test_a_correction_taking_back_from_two_invoices_is_one_valid_transaction(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final window (12 calls) and a backfill of 33 calls billed on correction invoice A
    final = _ended(real, api, monkeypatch)
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE)
    status, added = rerun(api, final["id"], "rr-add-2")
    assert status == 200 and added["correction"]["type"] == "correction_invoice", added
    # WHEN the usage is recounted as 10 calls: 35 to take back, more than A carries
    real.usage("acme", START + day(0, 4), 10)
    status, taken = rerun(api, final["id"], "rr-below")
    # THEN the rerun answers (never a 500 for two actions on one item) and everything still agrees
    assert status == 200, taken
    assert taken["action"] == "correction_invoiced"
    assert taken["correction"]["amount_minor"] == -(_taxed(LATE * PRICE) + _taxed(200)), taken
    negative = sum(i.total_minor for i in real.ctx.invoices.of_customer("acme") if i.total_minor < 0)
    assert sum(_remaining(real).values()) + negative == _taxed(BILLED_CALLS * PRICE) - _taxed(200)
    assert rerun(api, final["id"], "rr-below-2")[1]["action"] == "unchanged"
    _agree(real)


def test_a_zero_correction_after_the_end_is_billed_as_a_zero_correction_invoice(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import cancel, create_subscription
    from neruba.models.catalog import Cancellation, PlanCreate, SubscriptionCreate

    # GIVEN a free plan's final window billed with 1 call (0.00), recounted later as 3 calls (still free)
    charge = {"meter_code": "api_calls", "model": "per_unit", "unit_price": "0"}
    plan = {"code": "free", "name": "Free", "currency": "USD", "interval": "month", "charges": [charge]}
    create_plan(real.plans, PlanCreate.model_validate(plan))
    body = SubscriptionCreate(customer_id="acme", plan_code="free", start_at=START)
    sub = create_subscription(real.plans, body, "sub-acme-free", now=START)
    real.subscriptions.append(sub)
    real.usage("acme", START + day(0, 4), 1)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    real.usage("acme", START + day(0, 4), 3)
    # WHEN an operator reruns it
    status, result = rerun(api, final["id"], "rr-free")
    # THEN the answer names the correction invoice it wrote (a zero one), as for any other correction
    assert status == 200, result
    correction = result["correction"]
    written = [i for i in real.invoices("acme") if i["kind"] in ("correction", "credit_note")]
    assert result["action"] == "correction_invoiced"
    assert [(i["id"], i["total_minor"]) for i in written] == [(correction["invoice_id"], 0)], result
    assert (correction["type"], correction["amount_minor"], correction["credit_notes"]) == (
        "correction_invoice",
        0,
        [],
    )
    assert rerun(api, final["id"], "rr-free-2")[1]["action"] == "unchanged"
