"""Coupons, discounts and taxes as pure rules (domain.discounts, domain.taxes): the rounding rule, the
allocation of a discount across lines, the tax of each line after discounts, inclusive tax split exactly,
and the invoice identity total = lines - discounts + exclusive taxes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.discounts import Coupon, allocate, apply_discounts, periods_left
from neruba.domain.taxes import TaxRate, line_tax

USD = "USD"


def pct(p: str, duration: str = "forever", periods: int | None = None) -> Coupon:
    return Coupon("co_p", "percentage", percent=Decimal(p), duration=duration, periods=periods)


def fixed(amount: int, currency: str = USD) -> Coupon:
    return Coupon("co_f", "fixed", amount_minor=amount, currency=currency, duration="once")


def test_allocation_is_proportional_with_largest_remainders_and_sums_exactly() -> None:
    # 100 over 300/300/300: 33.33 each, the unit left goes to the first line (ties in line order)
    assert allocate(100, [("a", 300), ("b", 300), ("c", 300)]) == {"a": 34, "b": 33, "c": 33}
    # 10 over 600/300/100: exactly 6/3/1
    assert allocate(10, [("a", 600), ("b", 300), ("c", 100)]) == {"a": 6, "b": 3, "c": 1}
    # the largest remainder wins the leftover unit, not the first line
    assert allocate(5, [("a", 3), ("b", 5)]) == {"a": 2, "b": 3}
    assert allocate(0, [("a", 3)]) == {"a": 0}


def test_allocation_refuses_more_than_the_lines_hold() -> None:
    with pytest.raises(ValueError, match="more than"):
        allocate(11, [("a", 5), ("b", 5)])


def test_percentage_is_rounded_half_up_once_on_the_discounted_amount() -> None:
    # 12.5% of 1,004 cents is 125.5 cents: one rounding, half-up -> 126
    [applied] = apply_discounts([("usage", 1004)], [("di_1", pct("12.5"))], USD)
    assert applied.amount_minor == 126
    assert applied.exact == Decimal("125.5")
    assert applied.allocations == {"usage": 126}


def test_fixed_discount_never_takes_the_lines_below_zero() -> None:
    [applied] = apply_discounts([("fee", 300), ("usage", 200)], [("di_1", fixed(1000))], USD)
    assert applied.amount_minor == 500
    assert applied.allocations == {"fee": 300, "usage": 200}
    assert applied.capped is True


def test_discounts_apply_in_order_each_on_what_is_left() -> None:
    first, second = apply_discounts([("a", 1000)], [("d1", fixed(400)), ("d2", pct("50"))], USD)
    assert (first.amount_minor, second.amount_minor) == (400, 300)


def test_negative_and_zero_lines_take_no_discount() -> None:
    [applied] = apply_discounts([("a", 1000), ("credit", -300), ("b", 0)], [("d", pct("10"))], USD)
    assert applied.allocations == {"a": 100}


def test_a_fixed_coupon_in_another_currency_is_not_applied() -> None:
    [applied] = apply_discounts([("a", 1000)], [("d", fixed(100, "EUR"))], USD)
    assert applied.amount_minor == 0
    assert applied.skipped == "currency_mismatch"


def test_periods_left() -> None:
    assert periods_left(pct("1", "once"), 0) == 1
    assert periods_left(pct("1", "once"), 1) == 0
    assert periods_left(pct("1", "repeating", 3), 2) == 1
    assert periods_left(pct("1", "forever"), 10**6) is None


def test_exclusive_tax_is_rounded_half_up_per_line() -> None:
    vat = TaxRate("txr_1", Decimal("20"), inclusive=False)
    tax = line_tax(1003, [vat], USD)  # 200.6 -> 201
    assert tax.exclusive_minor == 201
    assert tax.inclusive_minor == 0
    assert tax.net_minor == 1003


def test_inclusive_tax_is_split_out_of_the_price_exactly() -> None:
    vat = TaxRate("txr_1", Decimal("20"), inclusive=True)
    tax = line_tax(1000, [vat], USD)  # 1000 / 1.2 = 833.33 net: tax 166.67 -> 167
    assert tax.inclusive_minor == 167
    assert tax.net_minor == 833
    assert tax.net_minor + tax.inclusive_minor == 1000


def test_two_inclusive_rates_share_the_rounded_tax_by_largest_remainder() -> None:
    a = TaxRate("txr_a", Decimal("10"), inclusive=True)
    b = TaxRate("txr_b", Decimal("5"), inclusive=True)
    tax = line_tax(1000, [a, b], USD)  # contained 1000 - 1000/1.15 = 130.43 -> 130; 86.96 / 43.48
    assert tax.inclusive_minor == 130
    assert {p.tax_rate_id: p.amount_minor for p in tax.parts} == {"txr_a": 87, "txr_b": 43}


def test_exclusive_tax_on_top_of_an_inclusive_price_is_on_the_net() -> None:
    inc = TaxRate("txr_i", Decimal("25"), inclusive=True)
    exc = TaxRate("txr_e", Decimal("10"), inclusive=False)
    tax = line_tax(1250, [inc, exc], USD)  # net 1000, inclusive 250, exclusive 100
    assert (tax.net_minor, tax.inclusive_minor, tax.exclusive_minor) == (1000, 250, 100)


def test_negative_lines_get_negative_tax_rounded_away_from_zero() -> None:
    vat = TaxRate("txr_1", Decimal("20"), inclusive=False)
    assert line_tax(-1003, [vat], USD).exclusive_minor == -201


lines_st = st.lists(st.integers(min_value=-5_000, max_value=1_000_000), min_size=1, max_size=8)
coupon_st = st.one_of(
    st.builds(
        lambda p: Coupon("c", "percentage", percent=p, duration="forever"),
        st.decimals(min_value=0, max_value=100, places=3, allow_nan=False),
    ),
    st.builds(
        lambda a: Coupon("c", "fixed", amount_minor=a, currency=USD, duration="once"),
        st.integers(min_value=1, max_value=2_000_000),
    ),
)
rate_st = st.builds(
    lambda p, inc: TaxRate("t", p, inclusive=inc),
    st.decimals(min_value=0, max_value=50, places=4, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(lines_st, st.lists(coupon_st, max_size=3), st.lists(rate_st, max_size=3))
def test_invoice_identity_for_random_lines_discounts_and_rates(
    amounts: list[int], coupons: list[Coupon], rates: list[TaxRate]
) -> None:
    lines = [(f"l{i}", a) for i, a in enumerate(amounts)]
    applied = apply_discounts(lines, [(f"d{i}", c) for i, c in enumerate(coupons)], USD)
    positive = sum(a for a in amounts if a > 0)
    discounts = sum(d.amount_minor for d in applied)
    assert 0 <= discounts <= positive  # never below zero
    net = dict(lines)
    for d in applied:
        assert sum(d.allocations.values()) == d.amount_minor  # the allocation sums exactly
        for line_id, share in d.allocations.items():
            assert 0 < share <= net[line_id]
            net[line_id] -= share
    taxes = [line_tax(amount, rates, USD) for amount in net.values()]
    exclusive = sum(t.exclusive_minor for t in taxes)
    for amount, t in zip(net.values(), taxes, strict=True):
        assert t.net_minor + t.inclusive_minor == amount  # inclusive tax split exactly
        assert sum(p.amount_minor for p in t.parts) == t.inclusive_minor + t.exclusive_minor
        if amount >= 0:
            assert t.exclusive_minor >= 0 and t.inclusive_minor >= 0
    total = sum(amounts) - discounts + exclusive
    assert total == sum(net.values()) + exclusive
    if all(a >= 0 for a in amounts):
        assert total >= 0


def test_a_discount_narrowed_to_some_lines_leaves_the_others() -> None:
    [applied] = apply_discounts(
        [("plan_a", 1000), ("other", 1000)], [("d", pct("50"))], USD, lambda d, line: line == "plan_a"
    )
    assert applied.allocations == {"plan_a": 500}


line_st = st.tuples(
    st.integers(min_value=-3_000, max_value=500_000),
    st.sampled_from(["usage", "fixed_fee", "adjustment", "one_off"]),
    st.sampled_from([("basic", 1), ("pro", 2), (None, None)]),
)
snapshot_st = st.tuples(coupon_st, st.sampled_from([None, ("basic", 1)]))
stored_rate_st = st.tuples(rate_st, st.sampled_from([None, "basic"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(line_st, min_size=1, max_size=6), st.lists(snapshot_st, max_size=3),
       st.lists(stored_rate_st, max_size=3))  # fmt: skip
def test_an_invoice_s_lines_and_totals_add_up_exactly(
    raw: list[Any], snapshots: list[Any], stored_rates: list[Any]
) -> None:
    """logic.billing.discounts.price_lines and document.invoice_totals: total = charges - discounts +
    exclusive tax - credits, exactly; discounts never take the charges below zero; each discount's
    allocation sums to its line; pricing again the priced lines gives the same lines (a re-rating)."""
    from neruba.logic.billing.discounts import price_lines
    from neruba.logic.billing.document import invoice_totals

    lines = [{"line_id": f"l{i}", "kind": kind, "amount_minor": amount, "plan_code": plan[0],
              "plan_version": plan[1]} for i, (amount, kind, plan) in enumerate(raw)]  # fmt: skip
    snaps = [
        {
            "discount_id": f"di_{i}",
            "coupon": {"id": c.coupon_id, "percent_off": None if c.percent is None else str(c.percent),
                       "amount_off_minor": c.amount_minor, "currency": c.currency, "duration": c.duration},
            "target": "plan" if plan else "customer",
            "plan_code": plan[0] if plan else None,
            "plan_version": plan[1] if plan else None,
            "period": 1,
        }
        for i, (c, plan) in enumerate(snapshots)
    ]  # fmt: skip
    rates = [{"id": f"txr_{i}", "percentage": str(r.percent), "inclusive": r.inclusive, "plan_code": plan}
             for i, (r, plan) in enumerate(stored_rates)]  # fmt: skip
    priced = price_lines(lines, snaps, rates, USD, ("a", "b"))
    again = price_lines(priced, snaps, rates, USD, ("a", "b"))
    assert again == priced
    charges = sum(amount for amount, _, _ in raw)
    totals = invoice_totals(priced, 0)
    discounts = totals.get("discounts_minor", 0)
    tax = totals.get("tax_minor", 0)
    assert totals["total_minor"] == charges - discounts + tax
    assert 0 <= discounts <= sum(amount for amount, _, _ in raw if amount > 0)
    net = {line["line_id"]: int(line["amount_minor"]) for line in priced if line["kind"] != "discount"}
    for line in priced:
        if line["kind"] == "discount":
            shares = line["source"]["allocations"]
            assert sum(s["amount_minor"] for s in shares) == -line["amount_minor"]
            for share in shares:
                net[share["line_id"]] -= share["amount_minor"]
                assert net[share["line_id"]] >= 0
    for line in priced:
        if "tax" in line:
            assert line["tax"]["amount_after_discounts_minor"] == net[line["line_id"]]
            assert line["tax"]["net_minor"] + line["tax"]["inclusive_minor"] == net[line["line_id"]]
    if all(amount >= 0 for amount, _, _ in raw):
        assert totals["total_minor"] >= 0


def test_the_tax_entries_join_the_invoice_posting_and_a_lower_revision_reverses_them() -> None:
    from datetime import UTC, datetime

    from neruba.logic.billing.context import PostingRequest, posting_for

    at = datetime(2026, 3, 1, tzinfo=UTC)
    first = posting_for(
        PostingRequest("acme", "in_1", USD, 2500, [], at, tax_minor=500, tax_included_minor=0)
    )
    assert first is not None and first.idempotency_key == "invoice:in_1"
    assert first.deltas() == {"revenue": -2500, "receivable": 3000, "tax_payable": -500}
    lower = posting_for(
        PostingRequest("acme", "in_1", USD, -1000, [], at, 1, tax_minor=-200, tax_included_minor=0)
    )
    assert lower is not None and lower.idempotency_key == "invoice:in_1:rev1"
    assert lower.deltas() == {"revenue": 1000, "receivable": -1200, "tax_payable": 200}
    only_tax = posting_for(
        PostingRequest("acme", "in_1", USD, 0, [], at, 2, tax_minor=0, tax_included_minor=17)
    )
    assert only_tax is not None and only_tax.deltas() == {"revenue": 17, "tax_payable": -17}
