"""A window invoice whose corrections take it below zero (docs/billing.md, "A window invoice below zero"):
its negative adjustments are credited, by credit notes in the window's own transaction, against the
invoices still carrying what they take back, so the invoices' amounts remaining add up to the receivable.
The final window matters most: nothing comes after it. Real pricing (1.00 per API call, daily windows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.credit_note_support import pay
from tests.functional.billing.helpers import billing_state, day, queued, schedule, work
from tests.functional.billing.test_event_void_billing import _bill, _events, _void


def _remaining(real: World) -> dict[str, int]:
    from neruba.logic.billing.invoices import public

    return {
        i.id: int(public(i).get("amount_remaining_minor") or 0)
        for i in real.ctx.invoices.of_customer("acme")
        if i.status != "void"
    }


def _day0_then_two_voids_and_the_end(real: World, monkeypatch: Any) -> tuple[dict[str, Any], str]:
    """Day 0 billed 4 calls (400, finalized); then one call on day 1, two of day 0's calls voided, and
    the subscription cancelled at once: its final window nets 100 - 200 before settling."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert (first["status"], first["total_minor"]) == ("finalized", 400)
    _events("e", at=START + day(1, 2))
    assert _void("a", START + day(1, 4), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 4), "v2")["correction"] == "completed"
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(1, 5))
    return first, str(sub["id"])


def _credit_notes(real: World, invoice_id: str) -> list[dict[str, Any]]:
    invoice = real.ctx.invoices.get(invoice_id)
    assert invoice is not None
    return list(invoice.document.get("credit_notes") or [])


def test_a_final_invoice_below_zero_settles_against_the_invoice_it_corrects(
    real: World, monkeypatch: Any
) -> None:
    first, sub_id = _day0_then_two_voids_and_the_end(real, monkeypatch)

    # WHEN the final window is billed and finalized
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    work(real, START + day(1, 8), monkeypatch)
    assert billing_state(real, sub_id).status == "ended"

    # THEN the customer owes 200 + 100, and the invoices ask exactly that
    receivable = ledger().balances("acme")["USD"]["receivable"]
    assert receivable == 300
    remaining = _remaining(real)
    assert sum(remaining.values()) == receivable, remaining
    # AND day 0's invoice no longer asks for the two voided calls: one credit note of 200 against it
    assert remaining[first["id"]] == 200
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [200]
    # AND the final invoice bills its own call only, its adjustment settled by that note
    final = real.invoices("acme")[-1]
    assert (final["status"], final["total_minor"]) == ("finalized", 100)
    assert [line["kind"] for line in final["lines"]] == ["usage"]
    assert ledger().reconcile("acme") == []


def test_a_payment_landing_while_the_window_is_billed_is_decided_again(real: World, monkeypatch: Any) -> None:
    from neruba.logic.billing import worker
    from neruba.logic.billing.worker import RetryableBillingError, process_job
    from neruba.models.billing import BillingJob

    first, _sub_id = _day0_then_two_voids_and_the_end(real, monkeypatch)
    now: datetime = START + day(1, 6)
    schedule(real, now)
    (body,) = [b for b in queued(real.billing_queue) if b.get("subscription_id") == _sub_id]
    job = BillingJob.model_validate(body)
    build = worker.build_invoice
    paid: list[int] = []

    def paid_meanwhile(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        if not paid:  # a payment of day 0's invoice commits between the reads and the window's commit
            pay(real, first["id"], 100)
            paid.append(100)
        return built

    monkeypatch.setattr(worker, "build_invoice", paid_meanwhile)
    # WHEN the window's transaction meets the changed invoice: cancelled whole, nothing written
    with pytest.raises(RetryableBillingError):
        process_job(real.ctx, job, now)
    assert _credit_notes(real, first["id"]) == []
    assert len(real.invoices("acme")) == 2
    # THEN the retry settles against the invoice as it is now, and a duplicate job changes nothing
    assert len(process_job(real.ctx, job, now).invoiced) == 1
    assert process_job(real.ctx, job, now).invoiced == []
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [200]
    receivable = ledger().balances("acme")["USD"]["receivable"]
    assert receivable == 300 - 100
    remaining = _remaining(real)
    assert remaining[first["id"]] == 100  # 400 - 100 paid - 200 credited
    assert sum(remaining.values()) == receivable, remaining
    assert ledger().reconcile("acme") == []


def test_a_window_settlement_is_audited_once_in_its_transaction(real: World, monkeypatch: Any) -> None:
    from neruba import bootstrap

    first, _sub_id = _day0_then_two_voids_and_the_end(real, monkeypatch)
    # WHEN the final window is billed (and its job delivered again)
    _bill(real, START + day(1, 6), monkeypatch)
    _bill(real, START + day(1, 6), monkeypatch)
    # THEN one audit record names the window's invoice and the credit note it issued
    records, _ = bootstrap.audit().list("acme", limit=100)
    settled = [r for r in records if r["action"] == "invoice.settle"]
    final = real.invoices("acme")[-1]
    assert [(r["target"], r["actor"]) for r in settled] == [(final["id"], "system:billing")]
    (note,) = _credit_notes(real, first["id"])
    assert [n["id"] for n in settled[0]["after"]["credit_notes"]] == [note["id"]]
