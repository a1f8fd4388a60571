"""Ingest rules without AWS: time window, fingerprints, groups, values, folding totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from neruba.domain import ingest
from neruba.domain.usage import CellUsage, combine, usage_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (NOW - timedelta(days=35), None),
        (NOW - timedelta(days=35, seconds=1), "timestamp_too_old"),
        (NOW + timedelta(seconds=300), None),
        (NOW + timedelta(seconds=301), "timestamp_in_future"),
    ],
)
def test_time_window_edges(at: datetime, expected: str | None) -> None:
    assert ingest.time_window_error(at, NOW, 35, 300) == expected


def test_fingerprint_ignores_number_spelling_and_key_order_but_not_values() -> None:
    a = ingest.fingerprint("c", "m", None, {"x": Decimal("1.50"), "y": "a"})
    b = ingest.fingerprint("c", "m", None, {"y": "a", "x": Decimal("1.5")})
    c = ingest.fingerprint("c", "m", None, {"x": Decimal("1.51"), "y": "a"})
    d = ingest.fingerprint("c", "m", "2026-01-01T00:00:00+00:00", {"x": Decimal("1.5"), "y": "a"})
    assert a == b and a != c and a != d


def test_hour_bucket_is_utc() -> None:
    at = datetime.fromisoformat("2026-01-01T00:30:00+02:00")
    assert ingest.hour_bucket(at) == "2025-12-31T22"


def test_numeric_values() -> None:
    assert ingest.numeric_value({"v": "2.5"}, "v") == Decimal("2.5")
    assert ingest.numeric_value({"v": 3}, "v") == Decimal(3)
    with pytest.raises(ingest.InvalidPropertyError) as missing:
        ingest.numeric_value({}, "v")
    assert missing.value.code == "missing_property"
    for bad in (True, "abc", "NaN"):
        with pytest.raises(ingest.InvalidPropertyError):
            ingest.numeric_value({"v": bad}, "v")


def test_filters_and_groups() -> None:
    props = {"region": "eu", "tier": 2, "beta": True}
    assert ingest.matches_filters({"region": "eu", "tier": "2", "beta": "true"}, props)
    assert not ingest.matches_filters({"region": "us"}, props)
    assert ingest.group_key(["region", "missing"], props) == "region=eu|missing="


def test_totals_fold_and_combine_like_a_single_pass() -> None:
    # GIVEN events split over two batches
    first, second = ingest.GroupTotals(), ingest.GroupTotals()
    first.add("t1", "sum", "2026-01-01T00:00:00", Decimal("1.25"))
    second.add("t2", "sum", "2026-01-01T00:10:00", Decimal("2"))
    cells = [usage_of("sum", first), usage_of("sum", second)]
    # THEN combining the cells equals the total of all events
    assert combine("sum", cells) == Decimal("3.25")
    assert combine("count", cells) == 2
    assert combine(
        "max", [CellUsage(maximum=Decimal(4)), CellUsage(maximum=Decimal("4.5")), CellUsage()]
    ) == Decimal("4.5")
    assert (
        combine(
            "latest",
            [
                CellUsage(latest_at="2026-01-01T00:10", latest=Decimal(1)),
                CellUsage(latest_at="2026-01-01T00:20", latest=Decimal(7)),
            ],
        )
        == 7
    )
    assert (
        combine("unique_count", [CellUsage(uniques=frozenset("ab")), CellUsage(uniques=frozenset("bc"))]) == 3
    )


def test_negative_values_are_refused_unless_the_meter_allows_them() -> None:
    from decimal import Decimal

    from neruba.domain.ingest import InvalidPropertyError, meter_value
    from neruba.models.catalog import Meter

    for aggregation in ("sum", "max", "min", "average", "latest", "weighted_sum"):
        with pytest.raises(InvalidPropertyError) as refused:
            meter_value(aggregation, "v", {"v": "-0.5"})
        assert refused.value.code == "negative_value"
        assert meter_value(aggregation, "v", {"v": -3}, allow_negative=True) == Decimal(-3)
        assert meter_value(aggregation, "v", {"v": 0}) == 0
    assert meter_value("unique_count", "v", {"v": -3}) == "-3"  # a value counted, not a quantity
    with pytest.raises(
        ValueError, match="allow_negative applies to sum, max, min, average, latest and weighted_sum"
    ):
        Meter(code="c", name="c", aggregation="count", allow_negative=True)
    assert not Meter(code="s", name="s", aggregation="sum", field="v").allow_negative
