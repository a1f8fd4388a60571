"""A window settles the net of each corrected line's differences (docs/billing.md, "A window settles the
net of a line's differences"): the positive and negative adjustments of one corrected line on one window
offset each other first; only the net negative is credited by a credit note (with the net tax: what the
re-rating of the surviving events gives back, rounded once), and the lines that offset each other stay on
the window, where they add up to nothing, tax included. The upcoming invoice shows the same.

The "basic" plan of ``world``: 10 minor units per call, daily windows; the real plan of ``real``: 100."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import live_events
from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_backfill_revert import _revert, committed
from tests.functional.billing.test_correction_settlement import _agree
from tests.functional.billing.test_event_void_billing import _bill, _events, _void

__all__ = ["committed"]  # the fixture, used by name

NOW = START + day(2, 4)  # the corrections' time: within the void horizon of every event


def _usage_invoice(world: World, customer: str, d: int) -> dict[str, Any]:
    (found,) = [
        i
        for i in world.invoices(customer)
        if i["kind"] == "usage" and i["period_start"] == ts(START + day(d))
    ]
    return found


def _adjustments(invoice: dict[str, Any]) -> list[int]:
    return [int(line["amount_minor"]) for line in invoice["lines"] if line["kind"] == "adjustment"]


def _notes(world: World, invoice_id: str) -> list[dict[str, Any]]:
    invoice = world.ctx.invoices.get(invoice_id)
    assert invoice is not None
    return list(invoice.document.get("credit_notes") or [])


def test_a_final_window_credits_only_the_net_negative_of_each_line(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN days 0 and 1 billed 3 and 4 calls; a backfill of 5 and 2 calls committed (+50, +20 pending)
    # and reverted (-50, -20 pending); then one of day 0's calls gone (-10 in the look-back)
    assert _revert(committed)["status"] == "reverted"
    world.usage("acme", START + day(0, 2), 2)
    cancel(
        world.plans,
        str(world.subscriptions[0]["id"]),
        Cancellation(at_period_end=False),
        now=START + day(2, 5),
    )
    # WHEN the final window (no call of its own; +50 +20 -50 -20 -10) is billed and finalized
    schedule(world, START + day(2, 6))
    work(world, START + day(2, 6), monkeypatch)
    schedule(world, START + day(2, 8))
    day0, day1 = _usage_invoice(world, "acme", 0), _usage_invoice(world, "acme", 1)
    final = world.invoices("acme")[-1]
    # THEN the backfill and its revert net out on the final invoice: it bills nothing
    assert sorted(_adjustments(final)) == [-50, -20, 20, 50]
    assert final["total_minor"] == 0, final["lines"]
    # AND only day 0's net -10 is credited, against day 0's invoice; day 1's invoice keeps its 40
    assert [n["amount_minor"] for n in _notes(world, day0["id"])] == [10]
    assert _notes(world, day1["id"]) == []
    assert ledger().balances("acme")["USD"]["receivable"] == 60  # 2 + 4 calls
    _agree(world)


def test_two_amends_of_one_event_rerun_between_net_out(real: World, monkeypatch: Any) -> None:
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    # GIVEN day 0 billed 4 calls (400) and day 1 none, both finalized
    subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    _bill(real, START + day(2, 1), monkeypatch)
    schedule(real, START + day(2, 3))
    day0 = _usage_invoice(real, "acme", 0)
    assert (day0["status"], day0["total_minor"]) == ("finalized", 400)

    def rerun(key: str) -> None:
        answer = rerun_invoice(real.ctx, day0["id"], RerunRequest(reason="check"), "key:op", key, now=NOW)
        assert answer["action"] == "adjustment_pending", answer

    # AND call "a" amended into day 1 (a rerun of day 0: -100 pending), amended back into day 0 (a rerun:
    # +100 pending), and call "b" voided (-100 in the look-back)
    copy = _void("a", NOW, "am-1", timestamp=START + day(1, 4))["amended_by"]["transaction_id"]
    rerun("rr-1")
    _void(copy, NOW, "am-2", timestamp=START + day(0, 4))
    rerun("rr-2")
    assert _void("b", NOW, "v-b")["correction"] == "completed"
    # WHEN day 2's window (no call of its own; -100 +100 -100) is billed
    _bill(real, START + day(3, 1), monkeypatch)
    day2 = _usage_invoice(real, "acme", 2)
    # THEN the two amends net out on it, and only the void's 100 is credited against day 0
    assert sorted(_adjustments(day2)) == [-100, 100], day2["lines"]
    assert day2["total_minor"] == 0
    assert [n["amount_minor"] for n in _notes(real, day0["id"])] == [100]
    assert ledger().balances("acme")["USD"]["receivable"] == 300
    _agree(real)


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


TERMS = {
    # name: (percent off, fixed off, tax percentage, tax inclusive)
    "exclusive": (Decimal(0), 0, Decimal(19), False),
    "inclusive": (Decimal(0), 0, Decimal(19), True),
    "discounted": (Decimal("12.5"), 7, Decimal(20), False),
}


def _priced(terms: str, gross: int) -> tuple[int, int]:
    """(net after discounts, tax) a day of ``gross`` bills under ``terms``: each rounded half-up once."""
    percent, fixed, rate, inclusive = TERMS[terms]
    net = gross - _half_up(gross * percent / 100)
    net -= min(fixed, net)
    return net, _half_up(net * rate / (100 + rate) if inclusive else net * rate / 100)


def _with_terms(world: World, customer: str, terms: str) -> None:
    """``customer`` with the coupons and the tax rate of ``terms`` (its jurisdiction DE)."""
    from neruba.logic.billing import coupons
    from neruba.models.catalog import Customer
    from neruba.models.discounts import CouponCreate, DiscountCreate, JurisdictionSet, TaxRateCreate

    percent, fixed, rate, inclusive = TERMS[terms]
    world.plans.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
    ctx = world.ctx
    offers = [{"percent_off": str(percent)}] if percent else []
    offers += [{"amount_off_minor": fixed, "currency": "USD"}] if fixed else []
    for n, offer in enumerate(offers):  # the percentage first (the older discount)
        body = {"name": f"c{n}", "duration": "forever", "reason": "deal", **offer}
        coupon = coupons.create_coupon(ctx, CouponCreate.model_validate(body), "key:p", f"co-{n}")
        discount = {"coupon_id": coupon["id"], "customer_id": customer, "reason": "deal"}
        coupons.create_discount(ctx, DiscountCreate.model_validate(discount), "key:p", f"di-{n}")
    body = {"display_name": "VAT", "percentage": str(rate), "inclusive": inclusive, "country": "DE",
            "reason": "rule"}  # fmt: skip
    coupons.create_tax_rate(ctx, TaxRateCreate.model_validate(body), "key:p", "txr-vat")
    where = JurisdictionSet.model_validate({"country": "DE", "reason": "rule"})
    coupons.set_jurisdiction(ctx, customer, where, "key:p", "j-net")


@pytest.mark.parametrize("terms", sorted(TERMS))
def test_a_partly_offset_line_credits_the_net_with_the_net_tax(
    world: World, monkeypatch: Any, terms: str
) -> None:
    from neruba import bootstrap
    from neruba.logic.billing.backfill_commit import commit_backfill
    from neruba.logic.billing.backfill_revert import revert_backfill
    from neruba.logic.billing.backfills import hold_events, open_backfill
    from neruba.logic.billing.upcoming import upcoming_invoice
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.models.backfills import BackfillAction, BackfillCreate

    # GIVEN day 0 billed 7 calls (70 before discounts) and day 1 none, both finalized
    customer = "net"
    _with_terms(world, customer, terms)
    world.subscribe(customer)
    live_events(world, [f"l-{i}" for i in range(7)], START + day(0, 2), "live-0", customer)
    for d in range(3):
        schedule(world, START + day(d, 3), customer_id=customer)
        work(world, START + day(d, 3), monkeypatch)
    day0 = _usage_invoice(world, customer, 0)
    assert (day0["status"], day0["subtotal_minor"], day0["tax_minor"] or day0["tax_included_minor"]) == (
        "finalized", *_priced(terms, 70)
    )  # fmt: skip
    # AND a backfill of 5 calls committed (+50 before discounts, pending), two of day 0's calls voided,
    # the backfill reverted (its rerun: 5 calls now, -70 before discounts, pending): the revert's line is
    # partly offset by the commit's; the net is the void's -20
    body = BackfillCreate(customer_ids=[customer], meter_codes=["api_calls"], start=START, end=START + day(2),
                          reason="late")  # fmt: skip
    opened = open_backfill(world.ctx, body, "key:p", "o-net")
    sent = [{"transaction_id": f"bf-{i}", "customer_id": customer, "code": "api_calls",
             "timestamp": (START + day(0, 6)).isoformat(), "properties": {}} for i in range(5)]  # fmt: skip
    hold_events(world.ctx, opened["id"], sent)
    commit_backfill(world.ctx, opened["id"], BackfillAction(reason="late"), "key:p", "c-net", now=NOW)
    for i in range(2):
        void_event(VoidRequest(customer, f"l-{i}", "bogus", "T-1"), "key:p", f"v-{i}", now=NOW)
    action = BackfillAction(reason="imported twice", ticket="FIN-9")
    assert (
        revert_backfill(world.ctx, opened["id"], action, "key:p", "r-net", "req", NOW)["status"] == "reverted"
    )
    pending = sorted(
        int(a.line["amount_minor"]) for a in world.ctx.billing.adjustments(str(world.subscriptions[-1]["id"]))
    )
    up, down = _priced(terms, 120)[0] - _priced(terms, 70)[0], _priced(terms, 50)[0] - _priced(terms, 120)[0]
    assert pending == [down, up]
    want = tuple(b - a for a, b in zip(_priced(terms, 50), _priced(terms, 70), strict=True))  # net, tax back
    exclusive = not TERMS[terms][3]

    # WHEN the upcoming invoice is read (a period with no usage of its own), then day 2 is billed
    bootstrap.install(billing=world.ctx)
    ctx = world.ctx
    (shown,) = upcoming_invoice(ctx.plans, ctx.usage, customer, START + day(31, 4), ctx.billing, late=ctx)[
        "windows"
    ]
    schedule(world, START + day(3, 3), customer_id=customer)
    work(world, START + day(3, 3), monkeypatch)

    # THEN day 2's window keeps the offsetting parts of the corrected line: nothing, tax included
    day2 = _usage_invoice(world, customer, 2)
    kept = [line for line in day2["lines"] if line["kind"] == "adjustment"]
    assert [int(line["amount_minor"]) for line in kept] == [up, -up], kept
    assert (
        sum(int(line["tax"]["exclusive_minor"]) + int(line["tax"]["inclusive_minor"]) for line in kept) == 0
    )
    assert (day2["subtotal_minor"], day2["tax_minor"], day2["total_minor"]) == (0, 0, 0)
    # AND one credit note gives back the net difference of day 0 and exactly its tax (rounded once)
    (summary,) = _notes(world, day0["id"])
    note = world.ctx.billing.credit_notes.get(summary["id"])
    assert note is not None
    given = note["tax_minor"] + note["tax_included_minor"]
    assert (note["subtotal_minor"], given) == want
    assert note["amount_minor"] == want[0] + (want[1] if exclusive else 0)
    # AND the preview showed that very note, and the same offsetting lines
    (previewed,) = shown["credit_notes_to_issue"]
    assert previewed["invoice_id"] == day0["id"]
    assert [previewed[k] for k in ("subtotal_minor", "tax_minor", "amount_minor")] == [
        note[k] for k in ("subtotal_minor", "tax_minor", "amount_minor")
    ]
    assert sorted(int(line["amount_minor"]) for line in shown["lines"] if line.get("pending")) == [-up, up]
    assert shown["pending_adjustments_minor"] == 0
    # AND day 0 bills, all documents counted, what its 5 surviving calls price at
    billed = sum(int(i["subtotal_minor"]) for i in world.invoices(customer)) - note["subtotal_minor"]
    taxed = sum(
        int(i.get("tax_minor") or 0) + int(i.get("tax_included_minor") or 0) for i in world.invoices(customer)
    )
    assert (billed, taxed - given) == _priced(terms, 50)
    assert_books_agree(world, customer)
