"""Prorated recurring meters: units that persist across periods (seats, reserved capacity) reported as
changes on a weighted_sum meter, billed by the time each unit was active in the period and priced with
per_unit, graduated or volume; the level intervals behind each line. Published examples reproduced (each
test names its page; the numbers are theirs, the wording ours) and properties against exact fractions.
Rules: docs/pricing.md, "Prorated recurring meters"."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.ingest import GroupTotals, hour_bucket, hour_start
from neruba.domain.level_intervals import MAX_INTERVALS, level_intervals, shown
from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.phases import seconds
from neruba.domain.usage import CellUsage, merge_cells, usage_of, weighted_level
from neruba.timefmt import iso

LAGO_PRORATED = "https://docs.getlago.com/guide/plans/charges/prorated-vs-full"
ZUORA_PRORATION = "https://docs.zuora.com/en/zuora-billing/bill-your-customer/usage-billing/unbilled-usage/usage-charge-proration"
ZONE_PRORATION = "https://billing-help.zoneandco.com/hc/en-us/articles/30438937183131-Proration-Types"
STRIPE_TIERS_PAGE = "https://stripe.com/docs/billing/subscriptions/tiers"
STRIPE_TIERS = [
    {"up_to": up_to, "unit_price": price, "flat_fee": "0"}
    for up_to, price in (("5", "5"), ("10", "4"), ("15", "3"), ("20", "2"), (None, "1"))
]


def _about(value: Any) -> Fraction:
    """A quantity or fraction carried to 100 digits, as the small fraction it stands for."""
    return Fraction(value).limit_denominator(10**9)


def _cells(changes: list[tuple[datetime, Decimal]]) -> list[tuple[datetime, CellUsage]]:
    """The hourly cells ingest stores for ``changes``, with their hour's start (as rating reads them)."""
    hours: dict[str, GroupTotals] = {}
    for n, (at, change) in enumerate(changes):
        hours.setdefault(hour_bucket(at), GroupTotals()).add(f"t{n}", "weighted_sum", at.isoformat(), change)
    return [(hour_start(h), merge_cells([usage_of("weighted_sum", t)])) for h, t in sorted(hours.items())]


def _line(
    charge: dict[str, Any],
    changes: list[tuple[datetime, Decimal]],
    start: datetime,
    end: datetime,
    opening: Decimal = Decimal(0),
) -> Any:
    """The usage line of ``charge`` for a whole period [start, end) of a weighted_sum meter."""
    cells, length = _cells(changes), seconds(start, end)
    usage = GroupUsage(
        weighted_level(cells, start, end, opening, length),
        aggregation="weighted_sum",
        intervals=tuple(level_intervals(cells, start, end, opening, length)),
    )
    plan = {"code": "seats", "version": 1, "currency": "USD", "charges": [{"meter_code": "seats", **charge}]}
    (line,) = usage_lines(plan, start, end, {"seats": {"": usage}})
    return line


def test_lago_one_seat_for_22_days_of_a_30_day_month_costs_7_33() -> None:
    """Lago, "Prorated vs Full" (LAGO_PRORATED): seats at $10 each, prorated; a seat added during a
    30-day month and used for 22 days costs (1 seat x $10) x 22/30 = $7.33. Here it is added at the
    start of 9 June, 22 days before 1 July."""
    june, july = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    line = _line(
        {"model": "per_unit", "unit_price": "10"}, [(july - timedelta(days=22), Decimal(1))], june, july
    )
    assert line.amount_minor == 733
    assert _about(line.quantity) == Fraction(22, 30)
    # AND explain shows nothing held before 9 June, the hour of the change, then one seat to the end
    rows = [(r["level"], r["change"], _about(r["fraction"])) for r in line.source["intervals"]]
    assert rows == [
        (0, None, Fraction(8, 30)),
        (1, 1, Fraction(1, 720)),
        (1, None, Fraction(22 * 24 - 1, 720)),
    ]
    assert sum(_about(r["quantity"]) for r in line.source["intervals"]) == Fraction(22, 30)


def test_zuora_31_units_at_1_prorated_for_17_of_31_days_cost_17() -> None:
    """Zuora, "Usage charge proration" (ZUORA_PRORATION): $1 per unit, 31 units for January, the charge
    active from 15 to 31 January (17 of 31 days): $31 x 17/31 = $17."""
    jan, feb = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC)
    changes = [(datetime(2023, 1, 15, tzinfo=UTC), Decimal(31))]
    line = _line({"model": "per_unit", "unit_price": "1"}, changes, jan, feb)
    assert (line.quantity, line.amount_minor) == (Decimal(17), 1700)


def test_zone_prorate_quantity_by_days() -> None:
    """Zone & Co, "Proration Types" (ZONE_PRORATION), "Prorate Quantity by Days": a $50 item starting on
    15 January 2020 in a calendar-month period: quantity 17/31 (shown as 0.5484), times the rate: $27.42."""
    jan, feb = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC)
    line = _line(
        {"model": "per_unit", "unit_price": "50"}, [(datetime(2020, 1, 15, tzinfo=UTC), Decimal(1))], jan, feb
    )
    assert str(line.quantity).startswith("0.5483870967741935483870967741935483870967741935483870967741935")
    assert line.amount_minor == 2742  # 50 x 17 / 31 = 27.419..., rounded once


@pytest.mark.parametrize(("model", "cents"), [("volume", 3900), ("graduated", 5400), ("per_unit", 3900)])
def test_stripe_tiers_price_the_time_weighted_seats(model: str, cents: int) -> None:
    """Stripe's tier table (STRIPE_TIERS_PAGE: $5 up to 5, $4 up to 10, $3 up to 15, $2 up to 20, $1
    above) applied to a time-weighted seat count: 10 seats all June and 6 more from 16 June (15 of 30
    days) are 13 seat-months. Volume: 13 x $3 = $39; graduated: 5 x $5 + 5 x $4 + 3 x $3 = $54."""
    june, july = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    charge: dict[str, Any] = {"model": model, "tiers": STRIPE_TIERS}
    if model == "per_unit":
        charge = {"model": "per_unit", "unit_price": "3"}
    line = _line(charge, [(june, Decimal(10)), (datetime(2026, 6, 16, tzinfo=UTC), Decimal(6))], june, july)
    assert (line.quantity, line.amount_minor) == (Decimal(13), cents)


def test_the_level_carried_into_the_period_is_billed_for_all_of_it() -> None:
    # GIVEN 4 seats at the period's start (the closing level of the one before), -1 on 11 June at 00:00
    june, july = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    removed = [(datetime(2026, 6, 11, tzinfo=UTC), Decimal(-1))]
    line = _line({"model": "per_unit", "unit_price": "30"}, removed, june, july, opening=Decimal(4))
    # THEN 4 seats for 10 days and 3 for 20: (40 + 60) / 30 seat-months at 30 = 100.00
    assert (_about(line.quantity), line.amount_minor) == (Fraction(10, 3), 10000)
    rows = [(r["level"], r["change"], _about(r["fraction"])) for r in line.source["intervals"]]
    assert rows == [
        (4, None, Fraction(10, 30)),
        (3, -1, Fraction(1, 720)),
        (3, None, Fraction(20 * 24 - 1, 720)),
    ]


JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
MONTH = seconds(JAN, FEB)
changes = st.lists(
    st.tuples(
        st.integers(0, 2_678_399_999_999),  # microseconds into January
        st.integers(-5, 5).map(Decimal),
    ),
    max_size=30,
)


def _exact(events: list[tuple[datetime, Decimal]], start: datetime, end: datetime, opening: int) -> Fraction:
    """The exact unit-seconds of [start, end) over the period, with fractions: each change held from its
    instant (or from ``start`` if earlier) to ``end``."""
    total = Fraction(opening) * Fraction(seconds(start, end))
    for at, change in events:
        if at < end:
            total += Fraction(change) * Fraction(seconds(max(at, start), end))
    return total / Fraction(MONTH)


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= (abs(b) + 1) * Fraction(1, 10**97)


@settings(max_examples=150, deadline=None)
@given(changes, st.integers(0, 2_678_400_000_000), st.integers(0, 20))
def test_a_period_split_at_any_point_sums_to_the_whole(
    raw: list[tuple[int, Decimal]], cut: int, opening: int
) -> None:
    # GIVEN changes in January and a split at any instant T (a plan change), the cell of T's hour rated in
    # the part its hour starts in and carried into the next part from T (as rating does)
    events = [(JAN + timedelta(microseconds=us), change) for us, change in raw]
    split = JAN + timedelta(microseconds=cut)
    cells = _cells(events)
    first = [(h, c) for h, c in cells if h < split]
    second = [(h, c) for h, c in cells if h >= split]
    carried = Decimal(opening) + sum((c.total or Decimal(0) for _, c in first), Decimal(0))
    whole = weighted_level(cells, JAN, FEB, Decimal(opening), MONTH)
    one = weighted_level(first, JAN, split, Decimal(opening), MONTH)
    two = weighted_level(second, split, FEB, carried, MONTH)
    # THEN the parts' quantities add up to the whole's, and the whole is the exact integral
    assert _close(Fraction(one) + Fraction(two), Fraction(whole))
    assert _close(Fraction(whole), _exact(events, JAN, FEB, opening))
    # AND priced per unit, each part rounded once, the parts differ from the whole by at most a cent
    # per extra rounding (0.5 each way); a zero-length part bills nothing
    price = {"model": "per_unit", "unit_price": "0.37"}
    from neruba.domain.money import to_minor
    from neruba.domain.pricing import price_charge

    def cents(q: Decimal) -> int:
        return to_minor(price_charge(price, max(q, Decimal(0))).amount, "USD")

    if one >= 0 and two >= 0:
        assert abs(cents(one) + cents(two) - cents(whole)) <= 1
    if split in (JAN, FEB):
        assert (one if split == JAN else two) == 0


@settings(max_examples=150, deadline=None)
@given(changes, st.integers(0, 20))
def test_the_intervals_add_up_to_the_quantity_and_none_is_empty(
    raw: list[tuple[int, Decimal]], opening: int
) -> None:
    events = [(JAN + timedelta(microseconds=us), change) for us, change in raw]
    cells = _cells(events)
    rows = level_intervals(cells, JAN, FEB, Decimal(opening), MONTH)
    quantity = weighted_level(cells, JAN, FEB, Decimal(opening), MONTH)
    assert _close(sum((Fraction(r.quantity) for r in rows), Fraction(0)), Fraction(quantity))
    assert all(r.start < r.end for r in rows)
    first, more = shown(rows, 5)  # a line's view: the first rows and what the others add up to
    assert first == rows[:5] and (more is None) == (len(rows) <= 5)
    if more is not None:
        assert more["rows"] == len(rows) - 5 and more["from"] == iso(rows[5].start)
        assert more["unit_seconds"] == sum((r.unit_seconds for r in rows[5:]), Decimal(0))
    assert rows[0].start == JAN and rows[-1].end == FEB
    assert all(a.end == b.start for a, b in itertools.pairwise(rows))  # they tile the part
    assert sum((Fraction(r.fraction) for r in rows), Fraction(0)) - 1 <= Fraction(len(rows), 10**99)


def test_changes_at_the_period_boundaries() -> None:
    # GIVEN +3 exactly at the period's start and +7 exactly at its end (the next period's first instant)
    cells = _cells([(JAN, Decimal(3)), (FEB, Decimal(7))])
    inside = [(h, c) for h, c in cells if JAN <= h < FEB]
    # THEN the first counts for the whole period, the second not at all (its hour is the next period's)
    assert weighted_level(inside, JAN, FEB, Decimal(0), MONTH) == 3
    change, held = level_intervals(inside, JAN, FEB, Decimal(0), MONTH)
    assert (change.start, change.level, change.change, _about(change.fraction)) == (
        JAN,
        3,
        3,
        Fraction(1, 744),
    )
    assert (held.level, held.change, held.end) == (3, None, FEB)


def test_a_zero_length_part_has_no_interval_and_no_quantity() -> None:
    assert level_intervals([], JAN, JAN, Decimal(5), MONTH) == []
    assert weighted_level([], JAN, JAN, Decimal(5), MONTH) == 0
    # and +1 then -1 in the same instant changes nothing
    cells = _cells([(JAN + timedelta(days=3), Decimal(1)), (JAN + timedelta(days=3), Decimal(-1))])
    assert weighted_level(cells, JAN, FEB, Decimal(0), MONTH) == 0


def test_a_prorated_part_with_64_change_hours_shows_real_intervals_and_says_what_it_leaves_out() -> None:
    # GIVEN a part from a plan change at 07:30 on 11 January to the period's end, 3 seats carried in,
    # and 64 changes (+2 then -1 in turn) at half past, every 7 hours
    start = JAN + timedelta(days=10, hours=7, minutes=30)
    events = [(start + timedelta(hours=1 + 7 * n), Decimal(2 if n % 2 == 0 else -1)) for n in range(64)]
    line = _line({"model": "per_unit", "unit_price": "10"}, events, start, FEB, opening=Decimal(3))
    # AND the rows worked out independently: each hold at its level, each change hour at the level after
    expected: list[tuple[datetime, datetime, Fraction, Fraction | None, Fraction]] = []
    level, cursor = Fraction(3), start
    for at, change in events:
        hour = at.replace(minute=0)
        if hour > cursor:
            expected.append((cursor, hour, level, None, level * Fraction(seconds(cursor, hour))))
        before = level * Fraction(seconds(hour, at))
        level += Fraction(change)
        expected.append((hour, hour + timedelta(hours=1), level, Fraction(change), before + level * 1800))
        cursor = hour + timedelta(hours=1)
    expected.append((cursor, FEB, level, None, level * Fraction(seconds(cursor, FEB))))
    assert len(expected) > MAX_INTERVALS
    # THEN the rows shown are the first ones, each its real level, change and unit-seconds, none negative
    rows = line.source["intervals"]
    assert len(rows) == MAX_INTERVALS
    for row, (frm, to, lvl, change, held) in zip(rows, expected, strict=False):
        assert (row["from"], row["to"]) == (iso(frm), iso(to))
        assert (Fraction(row["level"]), row["change"] and Fraction(row["change"])) == (lvl, change)
        assert Fraction(row["unit_seconds"]) == held and Fraction(row["quantity"]) >= 0
    # AND the rest is said, not hidden: how many rows, their span, and what they add to the quantity
    more = line.source["intervals_more"]
    assert more["rows"] == len(expected) - MAX_INTERVALS
    assert (more["from"], more["to"]) == (rows[-1]["to"], iso(FEB))
    assert Fraction(more["unit_seconds"]) == sum(e[4] for e in expected[MAX_INTERVALS:])
    total = sum(Fraction(r["quantity"]) for r in rows) + Fraction(more["quantity"])
    assert _close(total, Fraction(line.quantity))
    assert f"the level over {len(expected)} interval(s)" in line.description


def test_explain_carries_what_the_listed_intervals_leave_out() -> None:
    from neruba.dal.invoices import invoice_record
    from neruba.logic.billing.invoices import explain
    from neruba.models.views import ExplainedLine

    # GIVEN a line of 70 change hours (more rows than a line lists), as stored on an invoice
    events = [(JAN + timedelta(hours=3 + 5 * n, minutes=10), Decimal(1)) for n in range(70)]
    line = _line({"model": "per_unit", "unit_price": "1"}, events, JAN, FEB)
    stored = {**line.to_dict(), "line_id": line.line_id, "kind": "usage", "meter_code": "seats"}
    invoice = invoice_record({"id": "in_1", "currency": "USD", "lines": [stored], "applications": []})
    # WHEN explained THEN the first rows are listed and intervals_more names the rest, in the answer's shape
    (row,) = explain(invoice)["lines"]
    answer = ExplainedLine.model_validate(json.loads(json.dumps(row, default=str)))  # as the route answers
    assert answer.intervals is not None and len(answer.intervals) == MAX_INTERVALS
    assert answer.intervals_more is not None and answer.intervals_more.rows == 141 - MAX_INTERVALS
    listed = sum(Fraction(r.quantity) for r in answer.intervals)
    assert _close(listed + Fraction(answer.intervals_more.quantity), Fraction(line.quantity))
