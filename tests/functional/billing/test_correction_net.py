"""A window settles the net of a line's differences (docs/billing.md, "A window settles the net of a
line's differences"): a reverted backfill's positive adjustment and its revert's negative one net out on
the window invoice, and only what is left negative is credited against the corrected invoice.

The "basic" plan (10 per call, daily windows): days 0 and 1 billed 3 and 4 calls, a backfill adding 5 and 2
calls committed (+50, +20 pending) then reverted (-50, -20 pending), one of day 0's calls gone (-10)."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, ledger
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_backfill_revert import _revert, committed
from tests.functional.billing.test_correction_settlement import _agree

__all__ = ["committed"]  # the fixture, used by name


def test_a_final_window_credits_only_the_net_negative_of_each_line(
    world: World, committed: str, monkeypatch: Any
) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    assert _revert(committed)["status"] == "reverted"
    world.usage("acme", START + day(0, 2), 2)  # one of day 0's three calls gone: -10 in the look-back
    cancel(world.plans, str(world.subscriptions[0]["id"]), Cancellation(at_period_end=False),
           now=START + day(2, 5))  # fmt: skip
    # WHEN the final window (no call of its own; +50 +20 -50 -20 -10) is billed
    schedule(world, START + day(2, 6))
    work(world, START + day(2, 6), monkeypatch)
    schedule(world, START + day(2, 8))
    invoices = world.invoices("acme")
    usage = [i for i in invoices if i["kind"] == "usage"]
    day0, day1 = usage[0], usage[1]
    assert (day0["period_start"][:10], day1["period_start"][:10]) == (
        START.date().isoformat(),
        (START + day(1)).date().isoformat(),
    )
    final = invoices[-1]
    # THEN the backfill and its revert net out on the final invoice: it bills nothing
    assert final["total_minor"] == 0, [(line["kind"], line["amount_minor"]) for line in final["lines"]]
    # AND only day 0's net -10 is credited, against day 0's invoice; day 1's invoice keeps its 40
    assert [n["amount_minor"] for n in day0.get("credit_notes") or []] == [10]
    assert (day1.get("credit_notes") or []) == []
    assert ledger().balances("acme")["USD"]["receivable"] == 60  # 2 + 4 calls
    _agree(world)
