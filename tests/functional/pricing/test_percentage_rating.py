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
    assert a.description.endswith("1.2% of 450 + 0.1 x 1 of 4 events (3 free)")
    # AND model b on its own: 1.2% x 1000 = 12.00, its one event within its own free events
    assert (b.amount_minor, b.source["billable_events"]) == (1200, 0)
    assert type(a.source["billable_events"]) is int and type(a.source["free_events"]) is int
    assert window.subtotal_minor == 1750


def test_upcoming_invoice_shows_a_filtered_percentage_line(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from functions.read_api.app import lambda_handler
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanVersionIn, SubscriptionCreate
    from tests.support.api import api_event, call

    # GIVEN 2.9% + 0.30 by default and 2.7% + 0.05 for model b, priced in credits worth 0.01
    charge = {
        "meter_code": "tokens",
        "model": "percentage",
        "rate": "2.9",
        "fixed_fee": "0.30",
        "pricing_unit": {"code": "credits", "conversion_rate": "0.01"},
        "filters": [{"values": {"model": ["b"]}, "rate": "2.7", "fixed_fee": "0.05"}],
    }
    body = PlanVersionIn.model_validate(
        {"name": "P", "currency": "USD", "interval": "month", "charges": [charge]}
    )
    plans = PlansRepository(get_settings().catalog_table)
    plans.publish("pay", body.model_dump(mode="json"))
    create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code="pay", start_at=START), None, now=NOW
    )
    at = (START + timedelta(hours=1)).isoformat()
    send(ev("b1", code="tokens", timestamp=at, properties={"tokens": 1000, "model": "b"}))
    process()
    # WHEN the upcoming invoice is read through the API
    path = "/v1/customers/acme/upcoming-invoice"
    status, answer, _ = call(lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}))
    assert status == 200, answer
    (window,) = answer["windows"]
    (line,) = [line for line in window["lines"] if line["line_id"] == "usage:tokens:model=b:0"]
    # THEN 2.7% x 1000 + 0.05 = 27.05 credits = 0.2705 USD -> 27 cents, every figure as decimal text
    assert line["amount_minor"] == 27
    assert (line["source"]["rate"], line["source"]["filter_values"]) == ("2.7", {"model": ["b"]})
    assert (line["source"]["amount_in_pricing_unit"], line["source"]["pricing_unit"]) == ("27.05", "credits")
    assert line["description"].endswith("; 27.05 credits at 0.01 USD each")
