"""A coupon's duration counts billing periods, not invoices (docs/billing.md, "A coupon's periods, not its
invoices"): the opening and the usage invoice of one period share that period, an invoice with nothing
to discount uses none, and the preview shows the period the next invoice would take."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_discounts_taxes import PERCENT, _attach, _bill, _coupon, _used, api

__all__ = ["api"]  # the fixture, shared with the coupon tests

FIVE_USD_ONCE = {"name": "Welcome", "amount_off_minor": 500, "currency": "USD", "duration": "once",
                 "reason": "welcome offer"}  # fmt: skip


def _discounts(world: World) -> list[tuple[str, str, int, int | None]]:
    """(invoice kind, its period start, discount amount, period of the duration) of each discount line."""
    return [(i["kind"], i["period_start"], ln["amount_minor"], ln["source"]["period"])
            for i in world.invoices("acme") for ln in i["lines"] if ln["kind"] == "discount"]  # fmt: skip


def test_a_once_coupon_is_given_to_the_usage_invoice_of_the_first_period(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN 5 USD off once on a new customer of a usage-only plan, 60 calls (600 minor units) a day
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    # WHEN the opening (nothing to discount) and two days are billed
    _bill(world, monkeypatch, 2, calls=60)
    # THEN the opening used nothing of it; the usage invoice of the same period takes the 500
    taken = [(kind, amount, period) for kind, _, amount, period in _discounts(world) if amount]
    assert taken == [("usage", -500, 1)]
    usage = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert [i["total_minor"] for i in usage] == [100, 600]
    assert _used(world, discount["id"]) == 1
    assert_books_agree(world, "acme")


def test_a_repeating_coupon_counts_the_opening_and_first_usage_invoice_as_one_period(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN 12.5% for 2 periods, 3 calls (30 minor units) a day
    discount = _attach(api, _coupon(api, PERCENT)["id"], customer_id="acme")
    # WHEN the opening and three days are billed
    _bill(world, monkeypatch, 3)
    # THEN days 1 and 2 are its two periods (4 off each, "period 1 of 2", "period 2 of 2"); day 3 is not
    taken = [(kind, amount, period) for kind, _, amount, period in _discounts(world) if amount]
    assert taken == [("usage", -4, 1), ("usage", -4, 2)]
    usage = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert [i["total_minor"] for i in usage] == [26, 26, 30]
    lines = [ln for i in usage for ln in i["lines"] if ln["kind"] == "discount"]
    assert [ln["description"].split(", ")[-1] for ln in lines] == ["period 1 of 2)", "period 2 of 2)"]
    assert [ln["source"]["period_start"] for ln in lines] == [
        usage[0]["period_start"],
        usage[1]["period_start"],
    ]
    assert _used(world, discount["id"]) == 2
    # explain shows the period of the duration the discount line is
    from neruba.timefmt import parse_ts
    from tests.functional.billing.test_discounts_taxes import _get

    status, explained = _get(api, f"/v1/invoices/{usage[1]['id']}/explain", {"invoice_id": usage[1]["id"]})
    assert status == 200
    [shown] = [ln["discount"] for ln in explained["lines"] if ln["kind"] == "discount"]
    assert (shown["period"], shown["periods"]) == (2, 2)
    assert parse_ts(shown["period_start"]) == parse_ts(usage[1]["period_start"])  # the API's time text
    assert_books_agree(world, "acme")


def test_the_preview_after_the_opening_still_shows_the_first_period_s_discount(
    world: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice

    # GIVEN 5 USD once, the opening billed (nothing to discount), 60 calls in the first day
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    world.usage("acme", START + day(0, 2), 60)
    # WHEN the upcoming invoice is previewed
    body = upcoming_invoice(world.plans, world.ctx.usage, "acme", START + day(0, 5), world.ctx.billing)
    # THEN its window takes the 500 as period 1 of 1, and nothing was counted
    [window] = body["windows"]
    assert (window["discounts_minor"], window["total_minor"]) == (500, 100)
    [line] = [ln for ln in window["lines"] if ln["kind"] == "discount"]
    assert (line["source"]["period"], line["source"]["periods"]) == (1, 1)
    assert _used(world, discount["id"]) == 0


def test_a_one_off_invoice_shares_its_period_s_fixed_amount_with_the_usage_invoice(
    world: World, api: Any, monkeypatch: Any
) -> None:
    from tests.functional.billing.test_discounts_taxes import _post

    # GIVEN 5 USD off once, the opening billed, then a 300 one-off charge invoiced at once in period 1
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    fee = {"description": "Setup", "amount_minor": 300, "currency": "USD", "reason": "onboarding",
           "mode": "invoice_now"}  # fmt: skip
    status, charge = _post(api, "/admin/customers/acme/one-off-charges", fee, "o-1")
    assert status == 201, charge
    world.usage("acme", START + day(0, 2), 60)
    world.usage("acme", START + day(1, 2), 60)
    # the preview of the period shows the 200 left of the fixed amount
    from neruba.logic.billing.upcoming import upcoming_invoice

    body = upcoming_invoice(world.plans, world.ctx.usage, "acme", START + day(0, 5), world.ctx.billing)
    [window] = body["windows"]
    assert window["discounts_minor"] == 200
    # WHEN the first day's usage (600) is billed, and the second day's
    for d in (1, 2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    # THEN the one-off invoice takes 300 and the usage invoice of that period the 200 left: 500 in all
    taken = [(kind, amount, period) for kind, _, amount, period in _discounts(world) if amount]
    assert sorted(taken) == [("one_off", -300, 1), ("usage", -200, 1)]
    assert _used(world, discount["id"]) == 1
    assert_books_agree(world, "acme")
