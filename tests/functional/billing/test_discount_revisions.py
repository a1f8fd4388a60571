"""A draft re-rated before finalization keeps its period's fixed-amount record true (docs/billing.md,
"A revised draft and the coupon's amount"): what the use record says the discount took in a period is
what the period's invoices show, and together they never take more than the coupon's amount, also when
the revision is killed and retried."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day, schedule, work
from tests.functional.billing.test_discount_periods import FIVE_USD_ONCE
from tests.functional.billing.test_discounts_taxes import _attach, _coupon, api

__all__ = ["api"]  # the fixture, shared with the coupon tests


def _taken(world: World, discount_id: str) -> tuple[int, int]:
    """(what the use record says the discount took in its last period, what the invoices show)."""
    [sub] = world.subscriptions
    _, period, recorded = world.ctx.billing.discounts.use(discount_id, sub["id"])
    lines = [ln for i in world.invoices("acme") if i["status"] != "void" for ln in i["lines"]]
    shown = -sum(ln["amount_minor"] for ln in lines
                 if ln["kind"] == "discount" and ln["source"]["period_start"] == period)  # fmt: skip
    return recorded, shown


def _draft_then_late_usage(world: World, api: Any, monkeypatch: Any) -> str:
    """5 USD once; day 0 billed as a draft of 20 calls (200 taken); 40 late calls on day 0 before it is
    finalized. Returns the discount's id."""
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    world.usage("acme", START + day(0, 2), 20)
    schedule(
        world,
        START
        + day(
            1,
            0,
        ),
    )
    work(world, START + day(1, 0), monkeypatch)
    drafts = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert [(i["status"], i["total_minor"]) for i in drafts] == [("draft", 0)]
    assert _taken(world, discount["id"]) == (200, 200)
    world.usage("acme", START + day(0, 3), 40)
    return str(discount["id"])


def test_a_draft_re_rated_higher_records_what_its_discount_now_takes(
    world: World, api: Any, monkeypatch: Any
) -> None:
    discount_id = _draft_then_late_usage(world, api, monkeypatch)
    # WHEN the draft is finalized (re-rated to 600)
    schedule(world, START + day(2, 1))
    # THEN it takes the whole 500, and the record says 500
    usage = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert (usage[0]["status"], usage[0]["total_minor"]) == ("finalized", 100)
    assert _taken(world, discount_id) == (500, 500)
    assert_books_agree(world, "acme")


def test_a_revision_killed_before_its_transaction_records_the_discount_once(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing import finalize

    discount_id = _draft_then_late_usage(world, api, monkeypatch)
    real = finalize.fenced

    def killed(actions: Any, fence: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(finalize, "fenced", killed)
        with pytest.raises(Killed):
            schedule(world, START + day(2, 1))
    assert finalize.fenced is real
    schedule(world, START + day(2, 2))
    schedule(world, START + day(2, 3))
    assert _taken(world, discount_id) == (500, 500)
    assert_books_agree(world, "acme")


def test_a_revision_racing_another_invoice_of_the_period_takes_only_what_is_left(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.transaction import Transaction, commit
    from neruba.logic.billing import finalize

    discount_id = _draft_then_late_usage(world, api, monkeypatch)
    [sub] = world.subscriptions
    repo = world.ctx.billing.discounts
    real = finalize.fenced
    raced: list[int] = []

    def racing(actions: Any, fence: Any) -> None:
        if not raced:  # another invoice of the period takes 250 between the read and the commit
            raced.append(1)
            used, period, taken = repo.use(discount_id, sub["id"])
            assert period is not None
            commit(Transaction([repo.use_item(discount_id, sub["id"], (used, period, taken),
                                              (used, period, taken + 250), "in_other")]))  # fmt: skip
        real(actions, fence)

    monkeypatch.setattr(finalize, "fenced", racing)
    schedule(world, START + day(2, 1))  # the revision's transaction is cancelled: the draft waits
    schedule(world, START + day(2, 2))  # priced again from the moved record
    usage = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert usage[0]["status"] == "finalized"
    assert [ln["amount_minor"] for ln in usage[0]["lines"] if ln["kind"] == "discount"] == [-250]
    recorded, shown = _taken(world, discount_id)
    assert (recorded, shown) == (500, 250)  # 250 on this invoice and the 250 the other one took


def test_a_void_regenerated_from_usage_gives_its_share_to_the_replacement(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing.void import void_invoice
    from neruba.models.billing import InvoiceVoid

    # GIVEN the draft of 20 calls finalized with 200 off, then 40 late calls on its day
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    world.usage("acme", START + day(0, 2), 20)
    schedule(world, START + day(1, 0))
    work(world, START + day(1, 0), monkeypatch)
    schedule(world, START + day(2, 1))
    [old] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert (old["status"], _taken(world, discount["id"])) == ("finalized", (200, 200))
    world.usage("acme", START + day(0, 3), 40)
    # WHEN an operator voids it and regenerates it from the usage stored now, twice (same key)
    body = InvoiceVoid(reason="late usage", regenerate="recompute")
    first = void_invoice(world.ctx, old["id"], body, "key:t", "v1")
    assert void_invoice(world.ctx, old["id"], body, "key:t", "v1") == first
    # THEN the replacement takes the whole 500 (the voided invoice's 200 is given back), and the record
    # says 500: what the period's invoices show
    replacement = first["replacement"]
    assert [ln["amount_minor"] for ln in replacement["lines"] if ln["kind"] == "discount"] == [-500]
    assert _taken(world, discount["id"]) == (500, 500)


def test_a_draft_re_rated_lower_gives_back_what_it_no_longer_takes(
    world: World, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 5 USD once and a draft of 60 calls (600) taking the whole 500
    discount = _attach(api, _coupon(api, FIVE_USD_ONCE)["id"], customer_id="acme")
    world.subscribe("acme")
    schedule(world, START)
    work(world, START, monkeypatch)
    world.usage("acme", START + day(0, 2), 60)
    schedule(world, START + day(1, 0))
    work(world, START + day(1, 0), monkeypatch)
    assert _taken(world, discount["id"]) == (500, 500)
    # WHEN its usage is recounted as 20 calls (200) before it is finalized
    world.usage("acme", START + day(0, 2), 20)
    schedule(world, START + day(2, 1))
    # THEN it takes 200 and the record says 200: the 300 left is there for another invoice of the period
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert (usage["status"], usage["total_minor"]) == ("finalized", 0)
    assert _taken(world, discount["id"]) == (200, 200)
