"""The Python client reads the level intervals explain and invoice lines carry for a weighted_sum line."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from neruba_client.models import ExplainedLine, LineSource

ROW = {
    "from": "2026-03-01T00:00:00+00:00",
    "to": "2026-03-01T01:00:00+00:00",
    "level": "3",
    "change": "3",
    "seconds": "3600",
    "unit_seconds": "10800",
    "fraction": "0.0416666666666666666666666666666666666666666666666666666666666666666666666666666666667",
    "quantity": "0.125",
}


def test_an_explained_line_and_a_line_source_carry_their_intervals() -> None:
    line = {
        "line_id": "usage:seats::0",
        "kind": "usage",
        "description": "seats (per_unit)",
        "meter_code": "seats",
        "group": {},
        "aggregate": {"aggregation": "weighted_sum", "quantity": "3.25"},
        "hours": 2,
        "events": 2,
        "price": {"plan_code": "team", "plan_version": 1, "unit_price": "24", "tiers": []},
        "amount_minor": 7800,
        "credits_applied": [],
        "credits_applied_minor": 0,
        "references": None,
        "intervals": [ROW],
    }
    explained = ExplainedLine.model_validate(line)
    (row,) = explained.intervals or []
    assert (row.from_, row.level, row.change, row.quantity) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        Decimal(3),
        Decimal(3),
        Decimal("0.125"),
    )
    source = LineSource.model_validate(
        {"aggregation": "weighted_sum", "intervals": [{**ROW, "change": None}]}
    )
    assert source.intervals is not None and source.intervals[0].change is None
