"""Property: on a subscription with a percentage and a fixed coupon and an exclusive tax rate, any
sequence of corrections (the operations of ``test_corrections_property``) leaves each day billed, after
its discounts and with its tax, exactly what its surviving events price at: the differences carried to a
later invoice (or settled by credit notes against the invoices carrying the day, when they take that
invoice below zero) carry the corrected day's discounts and its rates, never the later invoice's."""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import PRICE, given_back, live_events
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_corrections_property import DAYS, OPERATION, Model, _apply
from tests.support.deep import size

COUNTER = itertools.count()
PERCENT = Decimal("12.5")
FIXED = 7  # minor units off each period, after the percentage
VAT = Decimal("20")


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def expected_day(gross: int) -> tuple[int, int]:
    """(net after both coupons, exclusive tax) of a day billing ``gross``."""
    percent = _round(Decimal(gross) * PERCENT / 100)
    fixed = min(FIXED, gross - percent)
    net = gross - percent - fixed
    return net, _round(Decimal(net) * VAT / 100)


def _terms(world: World, customer: str) -> None:
    """The two coupons attached to ``customer`` and the customer taxed at the VAT rate."""
    from neruba.logic.billing import coupons
    from neruba.models.discounts import CouponCreate, DiscountCreate, JurisdictionSet, TaxRateCreate

    ctx = world.ctx
    percent = coupons.create_coupon(ctx, CouponCreate.model_validate(
        {"name": "pct", "percent_off": str(PERCENT), "duration": "forever", "reason": "deal"}
    ), "key:p", "co-pct")  # fmt: skip
    fixed = coupons.create_coupon(ctx, CouponCreate.model_validate(
        {"name": "fix", "amount_off_minor": FIXED, "currency": "USD", "duration": "forever", "reason": "deal"}
    ), "key:p", "co-fix")  # fmt: skip
    for n, coupon in enumerate((percent, fixed)):  # the percentage first (the older discount)
        body = DiscountCreate.model_validate(
            {"coupon_id": coupon["id"], "customer_id": customer, "reason": "deal"}
        )
        coupons.create_discount(ctx, body, "key:p", f"di-{customer}-{n}")
    rate = {
        "display_name": "VAT",
        "percentage": str(VAT),
        "inclusive": False,
        "country": "DE",
        "reason": "rule",
    }
    coupons.create_tax_rate(ctx, TaxRateCreate.model_validate(rate), "key:p", "txr-vat")
    where = JurisdictionSet.model_validate({"country": "DE", "reason": "rule"})
    coupons.set_jurisdiction(ctx, customer, where, "key:p", f"j-{customer}")


def billed_by_day(world: World, customer: str) -> dict[str, tuple[int, int]]:
    """Per period start: (net after discounts, exclusive tax) of its usage lines and of the adjustment
    lines correcting it, wherever they were billed, less what negative adjustments gave back without a
    line (``backfill_support.given_back``: correction credit notes by the period they credit)."""
    from neruba.logic.billing.discounts import net_amounts

    out: dict[str, tuple[int, int]] = {}
    for invoice in world.invoices(customer):
        net = net_amounts(invoice["lines"])
        for line in invoice["lines"]:
            if line["kind"] not in ("usage", "adjustment"):
                continue
            period = invoice["period_start"] if line["kind"] == "usage" else line["period_start"]
            tax = int((line.get("tax") or {}).get("exclusive_minor") or 0)
            amount, taxed = out.get(period, (0, 0))
            out[period] = (amount + net[str(line["line_id"])], taxed + tax)
    for period, (amount, tax) in given_back(world, customer).items():
        was = out.get(period, (0, 0))
        out[period] = (was[0] - amount, was[1] - tax)
    return out


@pytest.mark.scaled
@settings(
    max_examples=size(2, 20),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(live=st.lists(st.integers(0, 3), min_size=DAYS, max_size=DAYS), ops=st.lists(OPERATION, max_size=5))
@example(live=[2, 2, 1], ops=[("void", 0), ("backfill", [(0, 1), (1, 2)], None), ("revert", 0, None, False)])
@example(live=[3, 1, 0], ops=[("amend", 0, 1), ("rerun", 0), ("void", 2)])
@example(live=[2, 0, 0], ops=[("credit", 0, 8), ("void", 0)])  # an operator's note took most of the line
# day 1's differences (+17, -9, -10) on day 3's window below zero: a note takes 2 of the -9, the rest of it
# stays on the window with the rest of its own tax (taxed again, the day kept 1 of tax it no longer bills)
@example(
    live=[2, 1, 1],
    ops=[
        ("void", 27),
        ("replace", 2, [], "count_events"),
        ("backfill", [(1, 8), (2, 2), (0, 9), (1, 0)], None),
        ("replace", 1, [9, 6], None),
        ("replace", 1, [], "correct_invoices"),
    ],
)
def test_any_corrections_bill_each_day_its_net_and_tax_after_its_own_discounts(
    world: World, monkeypatch: Any, live: list[int], ops: list[tuple[Any, ...]]
) -> None:
    from neruba.logic.sweeps.receivable import invoice_owed, receivable_by_invoice
    from neruba.models.catalog import Customer
    from tests.functional.billing.conftest import ledger

    customer = f"corrd{next(COUNTER)}"
    world.plans.create_customer(Customer(external_id=customer, name=customer, currency="USD"))
    world.subscribe(customer)
    _terms(world, customer)
    model = Model()
    for d, calls in enumerate(live):
        ids = [f"l{d}-{i}" for i in range(calls)]
        if ids:
            live_events(world, ids, START + day(d, 2), f"live-{customer}-{d}", customer)
            model.surviving.update({tx: d for tx in ids})
    for d in range(DAYS):
        at = START + day(d + 1, 3)
        schedule(world, at, customer_id=customer)
        work(world, at, monkeypatch)

    for j, op in enumerate(ops):
        _apply(world, model, customer, op, j, monkeypatch)

    at = START + day(DAYS + 1, 3)  # the next window carries (or settles) the finalized days' corrections
    schedule(world, at, customer_id=customer)
    work(world, at, monkeypatch)

    billed = billed_by_day(world, customer)
    for d in range(DAYS):
        gross = sum(1 for on in model.surviving.values() if on == d) * PRICE
        assert billed.get(ts(START + day(d)), (0, 0)) == expected_day(gross), (d, ops, model.surviving)
    invoices = world.invoices(customer)
    want = [expected_day(sum(1 for on in model.surviving.values() if on == d) * PRICE) for d in range(DAYS)]
    back = given_back(world, customer).values()
    assert sum(int(i["subtotal_minor"]) for i in invoices) - sum(n for n, _ in back) == sum(
        n for n, _ in want
    )
    assert sum(int(i.get("tax_minor") or 0) for i in invoices) - sum(t for _, t in back) == sum(
        t for _, t in want
    )
    repo = ledger()
    assert repo.reconcile(customer) == []
    postings, _ = repo.postings(customer, 1000)
    owed, _ = receivable_by_invoice(postings)
    for invoice in world.ctx.invoices.of_customer(customer):
        assert owed.get(invoice.id, 0) == invoice_owed(invoice), invoice.id
