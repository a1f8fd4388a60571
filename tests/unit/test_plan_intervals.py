"""Billing periods of every plan interval (day, week, month, quarter, year): they tile time from the
anchor without gaps or overlaps, keep the anchor's weekday and time of day, clamp month ends, handle
leap days, and are computed in UTC whatever zone a time was given in (no AWS)."""

from __future__ import annotations

import calendar
import itertools
import typing
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.periods import INTERVALS, PeriodError, add_interval, period_containing
from neruba.domain.phases import next_period_end, rating_period, subscription_end
from neruba.logic.billing.windows import due_windows, late_lookback, window_at

DAY = timedelta(days=1)
FIXED = {"day": DAY, "week": 7 * DAY}
MONTHS = {"month": 1, "quarter": 3, "year": 12}

anchors = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3 * 366))
intervals = st.sampled_from(INTERVALS)


def test_the_allowed_intervals_are_one_list() -> None:
    # THEN the API's plan model accepts exactly the intervals the domain computes
    from neruba.models.catalog import PlanVersionIn

    annotation = PlanVersionIn.model_fields["interval"].annotation
    assert set(typing.get_args(annotation)) == set(INTERVALS) == {"day", "week", "month", "quarter", "year"}


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, interval=intervals, offset=offsets)
def test_periods_tile_time_from_the_anchor(anchor: datetime, interval: str, offset: timedelta) -> None:
    # GIVEN any anchor, interval and instant at or after the anchor
    at = anchor + offset
    # WHEN the period containing it is computed
    start, end = period_containing(anchor, interval, at)
    # THEN it contains the instant and is a whole period of the anchored sequence
    assert start <= at < end
    assert end == next_period_end({"start_at": anchor.isoformat(), "interval": interval}, start)
    # AND its neighbours touch it: no gap, no overlap
    assert period_containing(anchor, interval, end)[0] == end
    if start > anchor:
        assert period_containing(anchor, interval, start - timedelta(microseconds=1))[1] == start
    else:
        assert start == anchor


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, interval=intervals, n=st.integers(0, 400))
def test_boundaries_are_counted_from_the_anchor_and_strictly_increase(
    anchor: datetime, interval: str, n: int
) -> None:
    # WHEN the n-th and (n+1)-th boundaries are computed
    lo, hi = add_interval(anchor, interval, n), add_interval(anchor, interval, n + 1)
    # THEN each is a period start, the period between them is not empty, and the n-th period is [lo, hi)
    assert lo < hi
    assert period_containing(anchor, interval, lo) == (lo, hi)
    assert period_containing(anchor, interval, hi - timedelta(microseconds=1)) == (lo, hi)


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, interval=st.sampled_from(sorted(FIXED)), n=st.integers(0, 2000))
def test_days_and_weeks_keep_the_anchor_s_time_and_weekday(anchor: datetime, interval: str, n: int) -> None:
    # WHEN the n-th boundary of a daily or weekly subscription is computed
    at = add_interval(anchor, interval, n)
    # THEN it lies exactly n periods of 24 h (or 7 x 24 h) after the anchor, at the anchor's time of day
    assert at - anchor == n * FIXED[interval]
    assert at.timetz() == anchor.timetz()
    # AND a weekly period starts on the anchor's weekday
    if interval == "week":
        assert at.weekday() == anchor.weekday()


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, interval=st.sampled_from(sorted(MONTHS)), n=st.integers(0, 400))
def test_month_quarter_and_year_clamp_the_day_to_the_month_s_length(
    anchor: datetime, interval: str, n: int
) -> None:
    # WHEN the n-th boundary of a monthly, quarterly or yearly subscription is computed
    at = add_interval(anchor, interval, n)
    # THEN it is 1, 3 or 12 calendar months per period after the anchor, on the anchor's day (clamped to
    # the month's last day), at the anchor's time; never drifting after a short month
    months = (at.year - anchor.year) * 12 + at.month - anchor.month
    assert months == n * MONTHS[interval]
    assert at.day == min(anchor.day, calendar.monthrange(at.year, at.month)[1])
    assert at.timetz() == anchor.timetz()
    # AND a quarter is three months, a year twelve
    assert at == add_interval(anchor, "month", n * MONTHS[interval])


@pytest.mark.parametrize(
    ("anchor", "interval", "expected"),
    [
        # a quarter from the 31st clamps in the short months and comes back to the 31st
        (
            datetime(2026, 1, 31, 9, tzinfo=UTC),
            "quarter",
            ["2026-04-30", "2026-07-31", "2026-10-31", "2027-01-31"],
        ),
        # from 30 November the quarter lands on 29 February in a leap year, 28 otherwise
        (
            datetime(2023, 11, 30, tzinfo=UTC),
            "quarter",
            ["2024-02-29", "2024-05-30", "2024-08-30", "2024-11-30"],
        ),
        (
            datetime(2024, 11, 30, tzinfo=UTC),
            "quarter",
            ["2025-02-28", "2025-05-30", "2025-08-30", "2025-11-30"],
        ),
        # a year from a leap day: 28 February, then 29 February again in the next leap year
        (datetime(2024, 2, 29, tzinfo=UTC), "year", ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]),
        # days and weeks step over the leap day like any other day
        (
            datetime(2024, 2, 27, 18, tzinfo=UTC),
            "day",
            ["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"],
        ),
        (datetime(2024, 2, 26, tzinfo=UTC), "week", ["2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]),
    ],
)
def test_month_ends_and_leap_days(anchor: datetime, interval: str, expected: list[str]) -> None:
    got = [add_interval(anchor, interval, n) for n in range(1, 5)]
    assert [g.date().isoformat() for g in got] == expected
    assert all(g.time() == anchor.time() for g in got)


def test_a_leap_day_is_a_whole_daily_period() -> None:
    anchor = datetime(2024, 2, 1, tzinfo=UTC)
    assert period_containing(anchor, "day", datetime(2024, 2, 29, 23, 59, tzinfo=UTC)) == (
        datetime(2024, 2, 29, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
    )
    start, end = period_containing(anchor, "week", datetime(2024, 2, 29, 12, tzinfo=UTC))
    assert (start, end - start) == (datetime(2024, 2, 29, tzinfo=UTC), 7 * DAY)


@pytest.mark.parametrize("interval", INTERVALS)
def test_periods_are_utc_whatever_zone_the_anchor_is_given_in(interval: str) -> None:
    # GIVEN an anchor given in Berlin time, the week before daylight saving time starts there
    berlin = datetime(2026, 3, 25, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    utc = berlin.astimezone(UTC)  # 24 March 23:30 UTC
    # WHEN its boundaries are computed
    got = [add_interval(berlin, interval, n) for n in range(6)]
    # THEN they are the UTC anchor's boundaries, in UTC: the clock change in Berlin moves nothing
    assert got == [add_interval(utc, interval, n) for n in range(6)]
    assert all(g.utcoffset() == timedelta(0) for g in got)
    assert (
        add_interval(berlin, interval, 1).date().isoformat()
        == {
            "day": "2026-03-25",
            "week": "2026-03-31",
            "month": "2026-04-24",
            "quarter": "2026-06-24",
            "year": "2027-03-24",
        }[interval]
    )
    if interval in FIXED:  # exactly 24 h or 168 h, across the night the clocks went forward
        assert [b - a for a, b in itertools.pairwise(got)] == [FIXED[interval]] * 5
    # AND the period containing an instant is the same whichever zone the instant is given in
    at = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert period_containing(berlin, interval, at) == period_containing(utc, interval, at.astimezone(UTC))


def test_unknown_intervals_and_naive_times_are_refused() -> None:
    with pytest.raises(PeriodError, match="unknown interval 'fortnight'"):
        add_interval(datetime(2026, 1, 1, tzinfo=UTC), "fortnight", 1)
    with pytest.raises(PeriodError, match="timezone-aware"):
        add_interval(datetime(2026, 1, 1), "day", 1)  # a naive time
    with pytest.raises(PeriodError, match="before the subscription starts"):
        period_containing(datetime(2026, 1, 2, tzinfo=UTC), "week", datetime(2026, 1, 1, tzinfo=UTC))


def test_a_daily_period_is_found_directly_far_from_the_anchor() -> None:
    # GIVEN a daily subscription running for a century
    anchor = datetime(1990, 1, 1, 6, tzinfo=UTC)
    at = datetime(2089, 6, 15, 5, 59, tzinfo=UTC)
    # THEN its current period is the day before 06:00 on 15 June 2089
    assert period_containing(anchor, "day", at) == (
        datetime(2089, 6, 14, 6, tzinfo=UTC),
        datetime(2089, 6, 15, 6, tzinfo=UTC),
    )


# ------------------------------------------------------------------ windows and the subscription's end
def _sub(interval: str, start: datetime, **extra: Any) -> dict[str, Any]:
    return {"start_at": start.isoformat(), "interval": interval, "ended_at": None, **extra}


def test_weekly_windows_and_a_cancellation_at_period_end_mid_week() -> None:
    # GIVEN a weekly subscription started on a Wednesday at 15:00, canceled at period end on a Monday
    start = datetime(2026, 1, 7, 15, tzinfo=UTC)
    assert start.weekday() == 2
    sub = _sub("week", start, cancel_at_period_end=True, canceled_at="2026-01-19T08:00:00+00:00")
    # THEN it ends with the week it was canceled in: Wednesday 21 January, 15:00
    end = subscription_end(sub)
    assert end == datetime(2026, 1, 21, 15, tzinfo=UTC)
    # AND its windows are the opening and two weekly usage windows, each due at its Wednesday 15:00
    windows = due_windows("sub_w", start, "week", 0, end + 30 * DAY, add_interval, end)
    assert [(w.kind, w.start, w.due_at) for w in windows] == [
        ("opening", start, start),
        ("usage", start, start + 7 * DAY),
        ("usage", start + 7 * DAY, end),
    ]


def test_an_immediate_cancellation_mid_period_is_rated_over_its_whole_period() -> None:
    # GIVEN daily and quarterly subscriptions ended inside their second period
    for interval, ended, whole in (
        ("day", datetime(2026, 1, 2, 9, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)),
        ("week", datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)),
        ("quarter", datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)),
    ):
        start = datetime(2026, 1, 1, tzinfo=UTC)
        sub = _sub(interval, start, ended_at=ended.isoformat())
        second = add_interval(start, interval, 1)
        # THEN the final window stops at the end but is prorated over the whole period it falls in
        final = window_at("sub_x", start, interval, 2, add_interval, subscription_end(sub))
        assert final is not None and (final.start, final.end) == (second, ended)
        assert rating_period(sub, final.start, final.end) == (second, whole)


# ------------------------------------------------------------------ late events
@settings(max_examples=150, deadline=None)
@given(anchor=anchors, interval=intervals, j=st.integers(1, 60), max_age=st.sampled_from([1, 35, 90, 400]))
def test_every_period_is_re_rated_after_its_last_possible_late_event(
    anchor: datetime, interval: str, j: int, max_age: int
) -> None:
    # GIVEN usage window j (period j - 1), which ingest (IngestMaxAgeDays = max_age) can still add events
    # to until max_age days after its end
    end = add_interval(anchor, interval, j)
    last_arrival = end + timedelta(days=max_age)
    horizon = timedelta(days=max_age + 1)
    # WHEN the later windows that re-rate it are listed
    rerated_by = [
        k
        for k in range(j + 1, j + 2 + max_age)
        if j in late_lookback(anchor, interval, k, add_interval, horizon)
    ]
    # THEN they are consecutive from the next window on, and the last is due after the last arrival
    assert rerated_by == list(range(j + 1, j + 1 + len(rerated_by)))
    assert add_interval(anchor, interval, rerated_by[-1]) > last_arrival


def test_the_look_back_per_interval() -> None:
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    # a monthly plan keeps its two windows; the first windows look back as far as they can
    assert late_lookback(anchor, "month", 10, add_interval) == [9, 8]
    assert late_lookback(anchor, "quarter", 10, add_interval) == [9, 8]
    assert late_lookback(anchor, "year", 10, add_interval) == [9, 8]
    assert late_lookback(anchor, "week", 10, add_interval) == [9, 8, 7, 6, 5, 4]
    assert late_lookback(anchor, "day", 50, add_interval) == list(range(49, 13, -1))
    assert late_lookback(anchor, "day", 3, add_interval) == [2, 1]
    assert late_lookback(anchor, "month", 1, add_interval) == []
