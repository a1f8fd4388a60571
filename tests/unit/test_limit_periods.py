"""The limit period holding an instant, before the anchor as after it (docs/limits.md, "A period anchor
in the future"): the anchor fixes the phase of the periods, never where they begin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from neruba.domain.limits import LimitSettings
from neruba.domain.periods import INTERVALS, add_interval, period_around


def test_a_future_anchor_gives_the_period_of_its_phase_holding_now() -> None:
    settings = LimitSettings(anchor=datetime(2027, 6, 15, tzinfo=UTC), interval="month")
    assert settings.period(datetime(2026, 12, 1, tzinfo=UTC)) == (
        datetime(2026, 11, 15, tzinfo=UTC),
        datetime(2026, 12, 15, tzinfo=UTC),
    )


def test_months_before_a_month_end_anchor_clamp_from_the_anchor() -> None:
    anchor = datetime(2027, 3, 31, tzinfo=UTC)
    assert period_around(anchor, "month", datetime(2027, 3, 1, tzinfo=UTC)) == (
        datetime(2027, 2, 28, tzinfo=UTC),
        anchor,
    )


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=-1200, max_value=1200),
    st.sampled_from(INTERVALS),
)
def test_the_period_holds_the_instant_and_lies_on_the_anchor_phase(
    anchor: datetime, hours: int, interval: str
) -> None:
    at = anchor + timedelta(hours=hours * 7)
    start, end = period_around(anchor, interval, at)
    assert start <= at < end
    n = next(k for k in range(-400, 401) if add_interval(anchor, interval, k) == start)
    assert add_interval(anchor, interval, n + 1) == end
