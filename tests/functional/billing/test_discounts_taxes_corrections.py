"""Taxes on a correction invoice after the end: the adjustment lines are taxed at the corrected invoice's
rates (the period's), the tax is in the total and in the posting, and the books agree."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule, work
from tests.functional.billing.test_real_correction import BILLED_CALLS, LATE_CALLS, PRICE, api, rerun
from tests.support.api import api_event, call

__all__ = ["api"]  # the fixture, used by name


def test_a_correction_invoice_is_taxed_at_the_corrected_invoice_s_rates(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN 10% exclusive tax on the plan, the final window of a cancelled subscription billed with it
    body = {"display_name": "GST", "percentage": "10", "inclusive": False, "plan_code": "metered",
            "reason": "plan tax"}  # fmt: skip
    event = api_event("POST", "/admin/tax-rates", body=body, headers={"Idempotency-Key": "t-1"})
    assert call(api, event)[0] == 201
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), BILLED_CALLS)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    assert (final["status"], final["tax_minor"], final["total_minor"]) == ("finalized", 120, 1320)
    # WHEN late calls land in it and an operator reruns it
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE_CALLS)
    status, result = rerun(api, final["id"], "rr-1")
    assert status == 200 and result["action"] == "correction_invoiced", result
    # THEN the correction is taxed like the original: 700 + 70
    (doc,) = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert (doc["subtotal_minor"], doc["tax_minor"], doc["total_minor"]) == (
        LATE_CALLS * PRICE, LATE_CALLS * PRICE // 10, LATE_CALLS * PRICE * 11 // 10)  # fmt: skip
    assert result["correction"]["amount_minor"] == doc["total_minor"]
    total_tax = sum(int(i.get("tax_minor") or 0) for i in real.invoices("acme"))
    assert ledger().balances("acme")["USD"]["tax_payable"] == -total_tax
    assert_books_agree(real, "acme")
