"""Min and average meters end to end: events counted by the real ingest worker in several batches and
hours, rated per phase (the average over all events of the phase, never an average of hourly averages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=3)).replace(minute=0, second=0)


def test_min_and_average_meters_rate_from_ingested_cells(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import Meter, PlanVersionIn, SubscriptionCreate

    # GIVEN an average meter and a min meter, priced per unit
    catalog.create_meter(
        Meter(code="latency", name="Latency", aggregation="average", field="ms", allow_negative=True)
    )
    catalog.create_meter(Meter(code="floor", name="Floor", aggregation="min", field="gb"))
    plans = PlansRepository(get_settings().catalog_table)
    body = PlanVersionIn.model_validate(
        {
            "name": "Agg",
            "currency": "USD",
            "interval": "month",
            "charges": [
                {"meter_code": "latency", "model": "per_unit", "unit_price": "0.10"},
                {"meter_code": "floor", "model": "per_unit", "unit_price": "2"},
            ],
        }
    )
    plans.publish("agg", body.model_dump(mode="json"))
    sub = create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="agg", start_at=START), None, now=NOW
    )

    def at(hour: int) -> str:
        return (START + timedelta(hours=hour, minutes=5)).isoformat()

    # AND latencies 10, 20, 30 in one hour and 40, -1, 0 in another, sent in two batches; floors 7, 3.5, 9
    send(
        *[
            ev(f"l{i}", code="latency", timestamp=at(1), properties={"ms": v})
            for i, v in enumerate((10, 20, 30))
        ]
    )
    process()
    send(
        *[
            ev(f"m{i}", code="latency", timestamp=at(2), properties={"ms": v})
            for i, v in enumerate((40, -1, 0))
        ],
        *[
            ev(f"f{i}", code="floor", timestamp=at(i + 1), properties={"gb": v})
            for i, v in enumerate(("7", "3.5", "9"))
        ],
    )
    process()
    # WHEN the period is rated
    window = rate_window(
        plans,
        UsageRepository(get_settings().usage_table),
        sub,
        START,
        add_interval(START, "month", 1),
        as_of=NOW,
    )
    lines = {line.line_id: line for line in window.lines}
    # THEN average 99 / 6 = 16.5 ms x 0.10 = 1.65; min 3.5 GB x 2 = 7.00
    latency, floor = lines["usage:latency::0"], lines["usage:floor::0"]
    assert (latency.quantity, latency.amount_minor, latency.source["events"]) == (Decimal("16.5"), 165, 6)
    assert (floor.quantity, floor.amount_minor, floor.source["hours"]) == (Decimal("3.5"), 700, 3)
