"""A pay-in-advance event's own invoice belongs to the billing period the event falls in: it shares a
fixed coupon amount with that period's window invoice and counts the period once (docs/billing.md, "A
coupon's periods, not its invoices")."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_advance_charges import _enqueue, _event, _ingest, world
from tests.support.api import api_event, call

__all__ = ["world"]  # the fixture: acme on the "team" plan, daily windows


def _operator(path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    from functions.billing_api.app import lambda_handler

    event = api_event("POST", path, body=body, headers={"Idempotency-Key": key})
    status, parsed, _ = call(lambda_handler, event)
    assert status == 201, parsed
    return dict(parsed)


def test_an_advance_invoice_and_the_period_invoice_share_a_once_fixed_amount(
    world: World, monkeypatch: Any
) -> None:
    # GIVEN 5 USD off once on acme, the opening billed, a seat added at noon of the first period (1500)
    coupon = _operator("/admin/coupons", {"name": "Welcome", "amount_off_minor": 500, "currency": "USD",
                                          "duration": "once", "reason": "welcome"}, "c-1")  # fmt: skip
    discount = _operator("/admin/discounts", {"coupon_id": coupon["id"], "customer_id": "acme",
                                              "reason": "deal"}, "d-1")  # fmt: skip
    schedule(world, START)
    work(world, START, monkeypatch)
    _enqueue(_event("seat-1", "members", START + day(0, 12), delta=1))
    _ingest()
    work(world, START + day(0, 13), monkeypatch)
    # WHEN the first period and the second close
    for d in (1, 2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    # THEN the advance invoice took the 500 as period 1 of 1, and no other invoice took any of it
    taken = [(i["kind"], ln["amount_minor"], ln["source"]["period"]) for i in world.invoices("acme")
             for ln in i["lines"] if ln["kind"] == "discount" and ln["amount_minor"]]  # fmt: skip
    assert taken == [("advance", -500, 1)]
    [sub] = world.subscriptions
    assert world.ctx.billing.discounts.used(discount["id"], sub["id"]) == 1
    assert_books_agree(world, "acme")
