"""A window invoice below zero that is not the subscription's last (docs/billing.md, "A window invoice
below zero"): its negative adjustments are credited, by credit notes in the window's own transaction,
against the invoices still carrying what they take back; the invoice keeps its own usage and positive
adjustments, and the invoices' amounts remaining add up to the receivable while the subscription goes on
being billed. Real pricing (1.00 per API call, daily windows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.credit_note_support import pay
from tests.functional.billing.helpers import billing_state, day, queued, schedule
from tests.functional.billing.test_event_void_billing import _bill, _events, _explain, _void
from tests.functional.billing.test_negative_final_invoice import _credit_notes, _remaining


def _usage(real: World, d: int) -> dict[str, Any]:
    from neruba.timefmt import ts

    (found,) = [
        i for i in real.invoices("acme") if i["kind"] == "usage" and i["period_start"] == ts(START + day(d))
    ]
    return found


def _day0_billed(real: World, monkeypatch: Any) -> tuple[dict[str, Any], str]:
    """Day 0 billed 4 calls (400, finalized), day 1 one call (100, finalized)."""
    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    _events("e", at=START + day(1, 2))
    _bill(real, START + day(2, 1), monkeypatch)
    schedule(real, START + day(2, 3))
    assert [(_usage(real, d)["status"], _usage(real, d)["total_minor"]) for d in (0, 1)] == [
        ("finalized", 400),
        ("finalized", 100),
    ]
    return _usage(real, 0), str(sub["id"])


def test_a_window_below_zero_before_the_end_settles_its_negative_adjustments(
    real: World, monkeypatch: Any
) -> None:
    first, sub_id = _day0_billed(real, monkeypatch)
    # GIVEN three of day 0's calls voided (-300), a late call of day 1 (+100) and one call on day 2:
    # day 2's window nets 100 + 100 - 300 before settling
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    _events("f", at=START + day(1, 5))
    _events("g", at=START + day(2, 2))

    # WHEN day 2 is billed and finalized, and day 3 after it
    _bill(real, START + day(3, 1), monkeypatch)
    schedule(real, START + day(3, 3))

    # THEN day 2's invoice bills its own call and the late one, not the credit
    second = _usage(real, 2)
    assert [(line["kind"], line["amount_minor"]) for line in second["lines"]] == [
        ("usage", 100),
        ("adjustment", 100),
    ]
    assert (second["status"], second["total_minor"]) == ("finalized", 200)
    # AND day 0's invoice is credited the 300 by one note, naming the adjustment it settles
    (note,) = _credit_notes(real, first["id"])
    assert note["amount_minor"] == 300
    stored = real.ctx.billing.credit_notes.get(note["id"])
    assert stored is not None
    (settled,) = stored["correction"]["adjustments"]
    assert (settled["corrects"]["invoice_id"], settled["amount_minor"]) == (first["id"], 300)
    # AND explain of day 0's line names the note and the voids behind what it settled
    (line,) = [line for line in _explain(first["id"])["lines"] if line["kind"] == "usage"]
    (cited,) = line["credit_notes"]
    (adjustment,) = cited["correction"]["adjustments"]
    assert (cited["credit_note_id"], adjustment["settled_minor"]) == (note["id"], 300)
    assert sorted(v["transaction_id"] for v in adjustment["voided_events"]) == ["a", "b", "c"]
    # AND the adjustment records are applied: the negative one to the note, the positive one to day 2
    records = {a.original_invoice_id: a for a in real.ctx.billing.adjustments(sub_id)}
    assert (records[first["id"]].status, records[first["id"]].applied_to) == ("applied", note["id"])
    assert records[_usage(real, 1)["id"]].applied_to == second["id"]
    # AND the invoices ask exactly what the customer owes: 100 + 100 + 200
    receivable = ledger().balances("acme")["USD"]["receivable"]
    remaining = _remaining(real)
    assert receivable == 400
    assert sum(remaining.values()) == receivable, remaining
    assert (remaining[first["id"]], remaining[second["id"]]) == (100, 200)
    assert ledger().reconcile("acme") == []
    # AND billing goes on: the subscription is active and the next day carries nothing more
    assert billing_state(real, sub_id).status == "active"
    _bill(real, START + day(4, 1), monkeypatch)
    assert [line["kind"] for line in _usage(real, 3)["lines"]] == ["usage"]
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]


def test_a_payment_landing_while_a_window_below_zero_is_billed_is_decided_again(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing import worker
    from neruba.logic.billing.worker import RetryableBillingError, process_job
    from neruba.models.billing import BillingJob

    first, sub_id = _day0_billed(real, monkeypatch)
    assert _void("a", START + day(2, 4), "v1")["correction"] == "completed"
    assert _void("b", START + day(2, 4), "v2")["correction"] == "completed"
    _events("g", at=START + day(2, 2))  # day 2 nets 100 - 200 before settling
    now: datetime = START + day(3, 1)
    schedule(real, now)
    (body,) = [b for b in queued(real.billing_queue) if b.get("subscription_id") == sub_id]
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
    invoices = len(real.invoices("acme"))
    # WHEN the window's transaction meets the changed invoice: cancelled whole, nothing written
    with pytest.raises(RetryableBillingError):
        process_job(real.ctx, job, now)
    assert _credit_notes(real, first["id"]) == []
    assert len(real.invoices("acme")) == invoices
    # THEN the retry settles against the invoice as it is now, and a redelivered job writes nothing
    assert len(process_job(real.ctx, job, now).invoiced) == 1
    assert process_job(real.ctx, job, now).invoiced == []
    assert len(real.invoices("acme")) == invoices + 1
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [200]
    assert _usage(real, 2)["total_minor"] == 100
    receivable = ledger().balances("acme")["USD"]["receivable"]
    assert receivable == 400 - 100 - 200 + 100 + 100
    remaining = _remaining(real)
    assert remaining[first["id"]] == 100  # 400 - 100 paid - 200 credited
    assert sum(remaining.values()) == receivable, remaining
    assert ledger().reconcile("acme") == []


def test_the_upcoming_invoice_shows_the_credit_notes_a_window_below_zero_will_issue(
    real: World, monkeypatch: Any
) -> None:
    from functions.read_api.app import lambda_handler
    from neruba import bootstrap
    from tests.support.api import api_event, call

    first, _sub_id = _day0_billed(real, monkeypatch)
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    bootstrap.install(billing=real.ctx)
    path = "/v1/customers/acme/upcoming-invoice"

    # WHEN the upcoming invoice is read (its period, today's, has no usage): -300 would take it below 0
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}, scopes="read")
    )

    # THEN it shows the credit note billing will issue against day 0's invoice, not a line of -300
    assert status == 200, body
    (window,) = body["windows"]
    assert [line for line in window["lines"] if line["kind"] == "adjustment"] == []
    assert (window["pending_adjustments_minor"], window["subtotal_minor"]) == (0, 0)
    (note,) = window["credit_notes_to_issue"]
    assert (note["invoice_id"], note["invoice_number"], note["amount_minor"]) == (
        first["id"], first["number"], 300,
    )  # fmt: skip
    (settles,) = note["adjustments"]
    assert (settles["corrects"]["invoice_id"], settles["amount_minor"]) == (first["id"], 300)
    # AND the preview wrote nothing; billing then issues that note
    assert _credit_notes(real, first["id"]) == []
    _bill(real, START + day(3, 1), monkeypatch)
    (issued,) = _credit_notes(real, first["id"])
    stored = real.ctx.billing.credit_notes.get(issued["id"])
    assert stored is not None and stored["amount_minor"] == 300
    assert stored["correction"]["adjustments"] == note["adjustments"]
    assert sum(_remaining(real).values()) == ledger().balances("acme")["USD"]["receivable"]
