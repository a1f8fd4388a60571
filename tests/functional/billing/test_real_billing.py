"""Billing with the REAL pricing engine and ledger: credits, catch-up, late events, reruns, the catalog
hooks. Daily windows (injected ``add_interval``) over a usage-only plan at 1.00 per API call."""

from __future__ import annotations

from typing import Any

from neruba.dal.billing import BillingRun
from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import (
    START,
    World,
    assert_books_agree,
    invoice_postings,
    ledger,
    subscribe_real,
)
from tests.functional.billing.helpers import billing_state, day, queued, schedule, stored_invoice, work


def _grant(key: str, kind: str, amount: int, priority: int) -> Any:
    grant, _ = create_grant(
        ledger(),
        customer_id="acme",
        kind=kind,  # type: ignore[arg-type]
        amount_minor=amount,
        currency="USD",
        idempotency_key=key,
        actor="test",
        priority=priority,
        at=START - day(1),
        expires_at=None,  # the ledger never applies a grant expired by the real clock
    )
    return grant


def _bill(world: World, at: Any, monkeypatch: Any, **options: Any) -> BillingRun:
    run = schedule(world, at, **options)
    work(world, at, monkeypatch)
    return run


def test_the_catalog_creates_the_billing_state(real: World) -> None:
    # WHEN a subscription is created through the catalog (twice, the same Idempotency-Key)
    sub = subscribe_real(real, "acme")
    subscribe_real(real, "acme")

    # THEN its billing state exists at once, the opening due at the start, without any backfill
    state = billing_state(real, sub["id"])
    assert (state.next_seq, state.status, state.due_at) == (
        0,
        "active",
        "2026-03-01T00:00:00.000000Z",
    )
    assert real.ctx.billing.marker("billing-state-backfill") is None


def test_credits_in_priority_order_with_remainders_and_explain(real: World, monkeypatch: Any) -> None:
    # GIVEN a promotional grant (priority 0) and a purchased one (priority 1), and 12 calls on day 0
    from neruba.logic.billing.invoices import explain

    welcome = _grant("welcome", "promotional", 500, 0)
    prepaid = _grant("prepaid", "purchased", 1000, 1)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)

    # WHEN day 0 is billed
    _bill(real, START + day(1, 1), monkeypatch)

    # THEN the promotional grant pays first, the purchased one the rest; remainders follow
    usage = real.invoices("acme")[1]
    assert (usage["subtotal_minor"], usage["credits_applied_minor"], usage["total_minor"]) == (1200, 1200, 0)
    assert ledger().grant(welcome.grant_id).remaining_minor == 0
    assert ledger().grant(prepaid.grant_id).remaining_minor == 300
    # explain shows the credits per line, grant by grant
    (line,) = explain(stored_invoice(real, usage["id"]))["lines"]
    assert (line["meter_code"], line["events"], line["hours"]) == ("api_calls", 12, 1)
    assert line["credits_applied"] == [
        {"grant_id": welcome.grant_id, "amount_minor": 500},
        {"grant_id": prepaid.grant_id, "amount_minor": 700},
    ]
    # the ledger: one invoice posting, promotional credit as an expense, nothing receivable
    (posting,) = invoice_postings("acme")
    balances = ledger().balances("acme")["USD"]
    assert (posting.total_minor, balances["promotional_credit_expense"], balances["revenue"]) == (
        1700,
        500,
        -1200,
    )
    assert_books_agree(real, "acme")


def test_three_missed_periods_catch_up_in_order(real: World, monkeypatch: Any) -> None:
    # GIVEN usage on three days and a scheduler down all that time
    subscribe_real(real, "acme")
    for n, calls in enumerate((5, 7, 9)):
        real.usage("acme", START + day(n, 3), calls)

    # WHEN it finally runs
    now = START + day(3, 1)
    run = schedule(real, now)

    # THEN the opening and the three missed days are each enqueued, oldest first
    jobs = queued(real.billing_queue)
    assert [j["seq"] for j in jobs] == [0, 1, 2, 3]
    assert [j["kind"] for j in jobs] == ["opening", "usage", "usage", "usage"]
    assert (run.status, run.windows_found, run.enqueued) == ("completed", 4, 4)

    # WHEN the worker bills them THEN the state waits for day 4 and the run counts four invoices
    work(real, now, monkeypatch)
    state = billing_state(real, real.subscriptions[0]["id"])
    assert state is not None
    assert (state.next_seq, state.due_at) == (4, "2026-03-05T00:00:00.000000Z")
    assert real.ctx.billing.run(run.id).invoiced == 4

    # WHEN a later run finalizes after the grace
    schedule(real, START + day(3, 3))

    # THEN one invoice per window in order, rated for real, numbered period by period, each posted once
    invoices = real.invoices("acme")
    assert [(i["kind"], i["subtotal_minor"], i["number"]) for i in invoices] == [
        ("opening", 0, "INV-000001"),
        ("usage", 500, "INV-000002"),
        ("usage", 700, "INV-000003"),
        ("usage", 900, "INV-000004"),
    ]
    assert [i["period_start"][:10] for i in invoices[1:]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    posted = sorted((p.source_id, p.total_minor) for p in invoice_postings("acme"))
    assert posted == sorted((i["id"], i["subtotal_minor"]) for i in invoices[1:])
    assert_books_agree(real, "acme")


def test_late_events_after_finalization_become_an_adjustment_posted_once(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 billed (12 calls) and finalized
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert (first["status"], first["subtotal_minor"]) == ("finalized", 1200)

    # WHEN 5 late calls land in day 0, 3 calls on day 1, and day 1 is billed (then everything runs again)
    real.usage("acme", START + day(0, 4), 17)
    real.usage("acme", START + day(1, 2), 3)
    _bill(real, START + day(2, 1), monkeypatch)
    _bill(real, START + day(2, 2), monkeypatch, trigger="manual")
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN day 1's invoice carries +5 calls / +500 referencing the finalized invoice, once; day 0 unchanged
    invoices = real.invoices("acme")
    second, third = invoices[2], invoices[3]
    (adjustment,) = [line for line in second["lines"] if line["kind"] == "adjustment"]
    assert (adjustment["quantity"], adjustment["amount_minor"]) == (5, 500)
    assert adjustment["references"] == {
        "invoice_id": first["id"],
        "line_id": "usage:api_calls::0",
        "number": "INV-000002",
    }
    assert second["subtotal_minor"] == 300 + 500
    assert [line["kind"] for line in third["lines"]] == ["usage"]
    assert stored_invoice(real, first["id"]).document == first
    assert first["subtotal_minor"] == 1200
    # the ledger posted the adjustment once, inside day 1's invoice posting
    keys = [(p.idempotency_key, p.total_minor) for p in invoice_postings("acme")]
    assert keys == [(f"invoice:{first['id']}", 1200), (f"invoice:{second['id']}", 800)]
    assert_books_agree(real, "acme")


def test_rerun_of_a_finalized_invoice_is_a_correction_never_an_edit(real: World, monkeypatch: Any) -> None:
    # GIVEN day 0 billed (12 calls) and finalized, then usage corrected down to 8 calls
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    real.usage("acme", START + day(0, 4), 8)
    grant = _grant("later", "promotional", 1000, 0)  # available, but never applied to a credit

    # WHEN an operator reruns the finalized invoice, and day 1 (3 calls) is billed
    result = rerun_invoice(real.ctx, first["id"], RerunRequest(reason="usage corrected"), "key:ops", "rr-1")
    real.usage("acme", START + day(1, 2), 3)
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN the finalized invoice's lines are untouched; the correction (-4 calls, -400) would take day 1's
    # invoice below zero (300 - 400), so it is settled by a credit note of 400 against day 0's invoice,
    # and day 1's invoice bills its own 300 (paid by the grant, as any chargeable line)
    assert result["action"] == "adjustment_pending" and result["correction"]["amount_minor"] == -400
    corrected = stored_invoice(real, first["id"]).document
    assert (corrected["lines"], corrected["total_minor"]) == (first["lines"], 1200)
    (note,) = corrected["credit_notes"]
    assert (note["amount_minor"], corrected["amount_remaining_minor"]) == (400, 800)
    second = real.invoices("acme")[2]
    assert [(line["kind"], line["amount_minor"]) for line in second["lines"]] == [("usage", 300)]
    assert (second["subtotal_minor"], second["credits_applied_minor"], second["total_minor"]) == (300, 300, 0)
    assert ledger().grant(grant.grant_id).remaining_minor == 700
    postings = invoice_postings("acme")
    assert [(p.idempotency_key, p.reason, p.total_minor) for p in postings] == [
        (f"invoice:{first['id']}", "invoice", 1200),
        (f"invoice:{second['id']}", "invoice", 600),  # Dr receivable 300 + Dr the grant's 300
    ]
    assert_books_agree(real, "acme")  # receivable 1200 - 400 + 300 - 300 = 800


def test_canceled_now_gets_a_final_window_ending_at_the_cancellation(real: World, monkeypatch: Any) -> None:
    # GIVEN day 0 billed, then the subscription canceled immediately at day 1 + 6h
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    _bill(real, START + day(1, 1), monkeypatch)
    real.usage("acme", START + day(1, 2), 4)
    real.usage("acme", START + day(1, 8), 9)  # after the end: not billed
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(1, 6))

    # WHEN the scheduler runs just after the cancellation (before the day's old end)
    _bill(real, START + day(1, 7), monkeypatch)

    # THEN the final window [day 1, cancellation) is billed now and billing of it ends
    last = real.invoices("acme")[-1]
    assert (last["period_start"], last["period_end"], last["subtotal_minor"]) == (
        "2026-03-02T00:00:00.000000Z",
        "2026-03-02T06:00:00.000000Z",
        400,
    )
    assert billing_state(real, sub["id"]).status == "ended"
    assert_books_agree(real, "acme")
