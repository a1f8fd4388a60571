"""A percentage charge rated from aggregates written by the real ingest path: the rate on the summed
amount, the fixed fee on the events the hourly cells counted, per group and across hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=3)).replace(minute=0, second=0)


def test_percentage_line_from_ingested_events(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.logic.pricing.rating import rate_window
    from neruba.models.catalog import PlanVersionIn, SubscriptionCreate

    # GIVEN 1.2% of the tokens amount plus 0.10 per event, the first 3 events free of the fee
    plans = PlansRepository(get_settings().catalog_table)
    body = PlanVersionIn.model_validate(
        {
            "name": "Pay",
            "currency": "USD",
            "interval": "month",
            "charges": [
                {
                    "meter_code": "tokens",
                    "model": "percentage",
                    "rate": "1.2",
                    "fixed_fee": "0.10",
                    "free_events": 3,
                }
            ],
        }
    )
    plans.publish("pay", body.model_dump(mode="json"))
    sub = create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="pay", start_at=START), None, now=NOW
    )
    # AND four events of model a over two hours (200, 100, 100, 50) and one of model b (1000)
    at = [(START + timedelta(hours=h, minutes=5)).isoformat() for h in (1, 1, 2, 2)]
    send(
        *[
            ev(f"t{i}", code="tokens", timestamp=t, properties={"tokens": amount, "model": "a"})
            for i, (t, amount) in enumerate(zip(at, (200, 100, 100, 50), strict=True))
        ],
        ev("b1", code="tokens", timestamp=at[0], properties={"tokens": 1000, "model": "b"}),
    )
    process()
    # WHEN the period is rated
    end = add_interval(START, "month", 1)
    window = rate_window(plans, UsageRepository(get_settings().usage_table), sub, START, end, as_of=NOW)
    lines = {line.line_id: line for line in window.lines}
    a, b = lines["usage:tokens:model=a:0"], lines["usage:tokens:model=a:0".replace("=a", "=b")]
    # THEN model a: 1.2% x 450 = 5.40 + 1 event past the 3 free x 0.10 = 5.50
    assert (a.quantity, a.source["events"], a.source["hours"], a.amount_minor) == (450, 4, 2, 550)
    assert a.description.endswith("1.2% of 450 + 0.10 x 1 of 4 events (3 free)")
    # AND model b on its own: 1.2% x 1000 = 12.00, its one event within its own free events
    assert (b.amount_minor, b.source["billable_events"]) == (1200, 0)
    assert window.subtotal_minor == 1750
