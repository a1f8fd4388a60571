"""Differences carried to a later invoice are priced by the invoice they correct: its discounts and its
tax rates (after a jurisdiction change too); a backfill's preview and its commit record report the money
that changes after discounts and tax; the upcoming invoice shows the differences its look-back bills."""

from __future__ import annotations

from typing import Any

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import live_events
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_corrections_discounted_property import _terms

NOW = START + day(3, 5)


def _billed(world: World, monkeypatch: Any, customer: str, days: int, calls: list[int]) -> None:
    """``customer`` subscribed, ``calls[d]`` API calls (10 minor units each) on day d, days billed."""
    from neruba.models.catalog import Customer

    world.plans.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
    world.subscribe(customer)
    _terms(world, customer)  # 12.5% then 7 off each period; 20% VAT (DE)
    for d, n in enumerate(calls):
        live_events(
            world, [f"{customer}-{d}-{i}" for i in range(n)], START + day(d, 2), f"r-{customer}-{d}", customer
        )
    for d in range(days):
        schedule(world, START + day(d + 1, 3), customer_id=customer)
        work(world, START + day(d + 1, 3), monkeypatch)


def _usage_invoice(world: World, customer: str, d: int) -> dict[str, Any]:
    [found] = [
        i
        for i in world.invoices(customer)
        if i["kind"] == "usage" and i["period_start"] == ts(START + day(d))
    ]
    return found


def test_a_void_after_a_jurisdiction_change_gives_back_the_tax_it_collected_at_its_rates(
    world: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing import coupons
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.models.discounts import JurisdictionSet, TaxRateCreate

    _billed(world, monkeypatch, "juris", 2, [4, 0])
    day0 = _usage_invoice(world, "juris", 0)  # 40 - 5 (12.5%) - 7 = 28, VAT 6
    assert (day0["subtotal_minor"], day0["tax_minor"], day0["status"]) == (28, 6, "finalized")
    rate = {"display_name": "TVA", "percentage": "5", "inclusive": False, "country": "FR", "reason": "moved"}
    coupons.create_tax_rate(world.ctx, TaxRateCreate.model_validate(rate), "key:p", "txr-fr")
    where = JurisdictionSet.model_validate({"country": "FR", "reason": "moved"})
    coupons.set_jurisdiction(world.ctx, "juris", where, "key:p", "j-juris-fr")
    for i in range(4):
        void_event(VoidRequest("juris", f"juris-0-{i}", "bogus", "T-1"), "key:p", f"v-{i}", now=NOW)
    schedule(world, START + day(3, 3), customer_id="juris")
    work(world, START + day(3, 3), monkeypatch)
    # the difference takes day 2's invoice (no usage) below zero: a credit note settles it against day 0
    later = _usage_invoice(world, "juris", 2)
    assert [line for line in later["lines"] if line["kind"] == "adjustment"] == []
    [record] = world.ctx.billing.adjustments(str(world.subscriptions[-1]["id"]))
    adjustment = record.line
    # back exactly what day 0 billed, after its discounts, and the 20% VAT it collected (not 5% of 40)
    assert adjustment["amount_minor"] == -28
    assert adjustment["gross_minor"] == -40
    assert adjustment["tax"]["exclusive_minor"] == -6
    assert [r["tax_rate_id"] for r in adjustment["tax"]["rates"]] == [
        r["tax_rate_id"] for r in day0["lines"][0]["tax"]["rates"]
    ]
    [summary] = _usage_invoice(world, "juris", 0)["credit_notes"]
    note = world.ctx.billing.credit_notes.get(summary["id"])
    assert note is not None and record.applied_to == note["id"]
    assert (note["subtotal_minor"], note["tax_minor"]) == (28, 6)
    [credited] = note["lines"]
    assert [r["tax_rate_id"] for r in credited["tax"]["rates"]] == [
        r["tax_rate_id"] for r in day0["lines"][0]["tax"]["rates"]
    ]
    assert sum(i["subtotal_minor"] for i in world.invoices("juris")) - note["subtotal_minor"] == 0
    assert sum(int(i.get("tax_minor") or 0) for i in world.invoices("juris")) - note["tax_minor"] == 0


def test_the_preview_and_the_commit_record_report_the_money_after_discounts_and_tax(
    world: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.backfill_commit import commit_backfill
    from neruba.logic.billing.backfill_preview import preview
    from neruba.logic.billing.backfills import hold_events, open_backfill
    from neruba.models.backfills import BackfillAction, BackfillCreate

    _billed(world, monkeypatch, "prev", 2, [2, 2])  # day 0 finalized, day 1 a draft
    before = {d: _usage_invoice(world, "prev", d) for d in (0, 1)}
    assert [before[d]["status"] for d in (0, 1)] == ["finalized", "draft"]
    body = BackfillCreate(
        customer_ids=["prev"], meter_codes=["api_calls"], start=START, end=START + day(2), reason="late"
    )
    opened = open_backfill(world.ctx, body, "key:p", "o-prev")
    sent = [
        {"transaction_id": f"bf{d}-{i}", "customer_id": "prev", "code": "api_calls",
         "timestamp": (START + day(d, 6)).isoformat(), "properties": {}}
        for d in (0, 1) for i in range(3)
    ]  # fmt: skip
    hold_events(world.ctx, opened["id"], sent)
    rows = {r["period_start"]: r for r in preview(world.ctx, opened["id"])["invoices"]}
    done = commit_backfill(world.ctx, opened["id"], BackfillAction(reason="late"), "key:p", "c-prev")
    record = {c["invoice_id"]: c for c in done["committed"]["invoices"]}
    # day 1 (draft) went from 20 to 50: 50 - 6 - 7 = 37 (was 20 - 3 - 7 = 10), VAT 7 (was 2)
    draft = _usage_invoice(world, "prev", 1)
    assert (draft["subtotal_minor"], draft["tax_minor"]) == (37, 7)
    row = rows[ts(START + day(1))]
    assert (row["before_minor"], row["after_minor"], row["difference_minor"]) == (12, 44, 32)
    assert (row["subtotal_difference_minor"], row["tax_difference_minor"]) == (27, 5)
    assert (record[draft["id"]]["amount_minor"], record[draft["id"]]["total_minor"]) == (27, 32)
    # day 0 (finalized): the difference its next invoice carries is the same 27 + 5
    row = rows[ts(START + day(0))]
    assert (row["difference_minor"], row["subtotal_difference_minor"]) == (32, 27)
    assert (record[before[0]["id"]]["amount_minor"], record[before[0]["id"]]["tax_minor"]) == (27, 5)


def test_the_upcoming_invoice_shows_the_credit_notes_its_look_back_will_issue(
    world: World, monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.logic.billing.upcoming import upcoming_invoice
    from neruba.logic.ingest.voids import VoidRequest, void_event

    _billed(world, monkeypatch, "look", 3, [3, 1, 0])  # days 0 and 1 finalized
    void_event(VoidRequest("look", "look-0-0", "bogus", "T-1"), "key:p", "v-look", now=NOW)
    bootstrap.install(billing=world.ctx)
    ctx = world.ctx
    day0 = _usage_invoice(world, "look", 0)
    # read in the next month: the test's plan periods are months (its windows days), so that period has
    # no usage of its own, like the next day's window billing will carry the difference on
    shown = upcoming_invoice(ctx.plans, ctx.usage, "look", START + day(31, 4), ctx.billing, late=ctx)
    [window] = shown["windows"]
    # the difference (30-4-7 -> 20-3-7: -9, VAT -2) takes the next invoice (no usage) below zero: it is
    # shown as the credit note billing will issue against day 0's invoice, not as a line
    assert [line for line in window["lines"] if line.get("pending")] == []
    assert window["pending_adjustments_minor"] == 0
    [note] = window["credit_notes_to_issue"]
    assert (note["invoice_id"], note["amount_minor"], note["subtotal_minor"], note["tax_minor"]) == (
        day0["id"], 11, 9, 2,
    )  # fmt: skip
    [settles] = note["adjustments"]
    assert (settles["corrects"]["invoice_id"], settles["amount_minor"]) == (day0["id"], 9)
    assert _usage_invoice(world, "look", 0).get("credit_notes") is None  # the preview wrote nothing
    schedule(world, START + day(4, 3), customer_id="look")
    work(world, START + day(4, 3), monkeypatch)
    # billing issues that note
    billed = _usage_invoice(world, "look", 3)
    assert [line for line in billed["lines"] if line["kind"] == "adjustment"] == []
    [issued] = _usage_invoice(world, "look", 0)["credit_notes"]
    stored = ctx.billing.credit_notes.get(issued["id"])
    assert stored is not None
    assert (stored["invoice_id"], stored["amount_minor"], stored["subtotal_minor"], stored["tax_minor"]) == (
        day0["id"], 11, 9, 2,
    )  # fmt: skip
    assert stored["correction"]["adjustments"] == note["adjustments"]
