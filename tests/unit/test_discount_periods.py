"""A discount's billing periods as a pure rule (domain.discounts.turn and after): a duration counts
periods, not invoices; a fixed amount is given at most once per period across its invoices, what one
invoice could not use carries to the next invoice of that period; an invoice discounted by 0 uses no
period; replaying an invoice on the use it was computed from changes nothing."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.discounts import Coupon, PeriodUse, after, apply_discounts, coupon_amount, turn

USD = "USD"


def _fixed(amount: int, duration: str = "once", periods: int | None = None) -> Coupon:
    return Coupon("co_f", "fixed", amount_minor=amount, currency=USD, duration=duration, periods=periods)  # type: ignore[arg-type]


def _invoice(coupon: Coupon, use: PeriodUse, key: str, amount: int) -> tuple[int, PeriodUse]:
    """The discount one invoice of period ``key`` with one line of ``amount`` gets, and the use after."""
    step = turn(coupon, use, key)
    if step is None:
        return 0, use
    if step.cap_minor is not None:
        coupon = Coupon(coupon.coupon_id, "fixed", amount_minor=step.cap_minor, currency=USD)
    [applied] = apply_discounts([("l", amount)], [("d", coupon)], USD)
    moved = after(use, step, applied.amount_minor)
    return applied.amount_minor, moved or use


def test_an_empty_opening_uses_no_period_and_the_usage_invoice_of_that_period_gets_the_amount() -> None:
    coupon = _fixed(500)
    took, use = _invoice(coupon, PeriodUse(), "p0", 0)  # the opening: nothing to discount
    assert (took, use) == (0, PeriodUse())
    took, use = _invoice(coupon, use, "p0", 600)  # the usage invoice of the same period
    assert (took, use) == (500, PeriodUse(1, "p0", 500))
    assert _invoice(coupon, use, "p1", 600)[0] == 0  # once: no second period


def test_what_one_invoice_could_not_use_carries_to_the_next_invoice_of_the_period() -> None:
    coupon = _fixed(500)
    took, use = _invoice(coupon, PeriodUse(), "p0", 120)
    assert (took, use) == (120, PeriodUse(1, "p0", 120))
    took, use = _invoice(coupon, use, "p0", 1000)
    assert (took, use) == (380, PeriodUse(1, "p0", 500))
    assert turn(coupon, use, "p0") is not None and _invoice(coupon, use, "p0", 50)[0] == 0


def test_an_invoice_of_a_period_before_the_counted_one_gets_nothing() -> None:
    coupon = Coupon("co_p", "percentage", percent=Decimal(10), duration="forever")
    assert turn(coupon, PeriodUse(3, "2026-01-05T00:00:00Z", 7), "2026-01-04T00:00:00Z") is None


@st.composite
def _histories(draw: st.DrawFn) -> tuple[Coupon, list[tuple[int, int]]]:
    fixed = draw(st.booleans())
    duration = draw(st.sampled_from(["once", "repeating", "forever"]))
    periods = draw(st.integers(1, 4)) if duration == "repeating" else None
    if fixed:
        coupon = _fixed(draw(st.integers(1, 900)), duration, periods)
    else:
        percent = Decimal(draw(st.integers(1, 100)))
        coupon = Coupon("co_p", "percentage", percent=percent, duration=duration, periods=periods)  # type: ignore[arg-type]
    invoices = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 700)), max_size=20))
    return coupon, sorted(invoices, key=lambda pair: pair[0])  # invoices in period order


@settings(max_examples=300, deadline=None)
@given(_histories(), st.data())
def test_periods_are_counted_once_amounts_are_capped_per_period_and_replays_change_nothing(
    history: tuple[Coupon, list[tuple[int, int]]], data: st.DataObject
) -> None:
    coupon, invoices = history
    use = PeriodUse()
    per_period: dict[int, int] = {}
    for period, amount in invoices:
        key = f"p{period}"
        took, moved = _invoice(coupon, use, key, amount)
        if data.draw(st.booleans()):  # a rerun of that invoice on the use it read: the same answer
            assert _invoice(coupon, use, key, amount) == (took, moved)
        assert 0 <= took <= amount
        if took:
            per_period[period] = per_period.get(period, 0) + took
        use = moved
    limit = {"once": 1, "repeating": coupon.periods, "forever": None}[coupon.duration]
    assert limit is None or len(per_period) <= limit  # periods counted only when something was taken
    assert use.used == len(per_period)
    if coupon.kind == "fixed":
        assert all(total <= int(coupon.amount_minor or 0) for total in per_period.values())
    # the periods discounted are the first ones with something to discount, in order, while periods last
    first = sorted({p for p, a in invoices if coupon_amount(coupon, a, USD)[0] > 0})
    expected = first if limit is None else first[:limit]
    assert sorted(per_period) == expected


def test_a_use_recorded_without_its_period_goes_on_from_its_count() -> None:
    coupon = _fixed(500, "repeating", 2)
    step = turn(coupon, PeriodUse(1, None, 0), "p5")  # a count written before periods were keyed
    assert step is not None and (step.number, step.new, step.cap_minor) == (2, True, 500)
    assert turn(coupon, PeriodUse(2, None, 0), "p5") is None
