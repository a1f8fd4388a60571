"""Every decimal in a line's source leaves as text, whatever its value; counts and money stay integers."""

from __future__ import annotations

import json
from decimal import Decimal

from neruba.api.responses import json_response


def _answer(source: dict[str, object]) -> dict[str, object]:
    line = {"line_id": "usage:pay:1", "amount_minor": 680, "quantity": 1110, "source": source}
    body = json_response({"lines": [line]}).body
    assert isinstance(body, str)
    answer: dict[str, object] = json.loads(body)["lines"][0]["source"]
    return answer


def test_bounded_percentage_source_decimals_are_text_counts_are_integers() -> None:
    # GIVEN a bounded percentage line read back from storage (integral decimals come back as integers)
    source = {
        "rate": 1,
        "per_event_max": 5,
        "per_event_min": Decimal("0.5"),
        "fixed_fee": 1,
        "events": 3,
        "hours": 1,
        "free_events": 1,
        "billable_events": 2,
        "per_event_priced": 3,
        "net_quantity": -50,
    }
    answer = _answer(source)
    # THEN every decimal is a string, every count an integer
    assert {
        k: answer[k] for k in ("rate", "per_event_max", "per_event_min", "fixed_fee", "net_quantity")
    } == {"rate": "1", "per_event_max": "5", "per_event_min": "0.5", "fixed_fee": "1", "net_quantity": "-50"}
    assert {
        k: answer[k] for k in ("events", "hours", "free_events", "billable_events", "per_event_priced")
    } == {"events": 3, "hours": 1, "free_events": 1, "billable_events": 2, "per_event_priced": 3}


def test_filter_and_interval_sources_keep_their_index_and_seconds_as_integers() -> None:
    source = {
        "filter": 1,
        "filter_values": {"type": ["x"]},
        "rate": 2,
        "multiplier": 3,
        "conversion_rate": 1,
        "amount_in_pricing_unit": 3,
        "intervals": [{"level": 4, "change": 4, "seconds": 3600, "unit_seconds": 14400, "quantity": 1}],
        "threshold": {"number_in_period": 2, "billed_before_minor": 100},
    }
    answer = _answer(source)
    assert (answer["filter"], answer["rate"], answer["multiplier"]) == (1, "2", "3")
    assert (answer["conversion_rate"], answer["amount_in_pricing_unit"]) == ("1", "3")
    assert answer["intervals"] == [
        {"level": "4", "change": "4", "seconds": 3600, "unit_seconds": "14400", "quantity": "1"}
    ]
    assert answer["threshold"] == {"number_in_period": 2, "billed_before_minor": 100}
