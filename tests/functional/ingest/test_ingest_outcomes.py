"""Every copy of an event ends with one recorded outcome: accepted, duplicate, conflict, replay, failed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.functional.ingest.conftest import ev
from tests.functional.ingest.conftest import event_of as _event

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _usage(read: Callable[..., tuple[int, Any]], meter: str, customer: str = "acme", **query: str) -> Any:
    status, body = read(
        f"/v1/customers/{customer}/usage",
        query={
            "meter": meter,
            "from": (HOUR - timedelta(days=1)).isoformat(),
            "to": (HOUR + timedelta(hours=2)).isoformat(),
            "granularity": "period",
            **query,
        },
        path_parameters={"customer_id": customer},
    )
    assert status == 200, body
    return body


def test_accepted_duplicate_and_conflict(send: Any, process: Any, read: Any) -> None:
    # GIVEN an event, an identical copy, and a copy with another payload under the same key
    first = send(ev("t1", properties={"n": 1}))
    second = send(ev("t1", properties={"n": 1}))
    third = send(ev("t1", properties={"n": 2}))
    # WHEN the worker processes them
    process()
    # THEN the event counts once; the history names each copy's request and outcome; the conflict is kept
    event = _event(read, "t1")
    assert event["status"] == "accepted"
    assert event["properties"] == {"n": 1}
    outcomes = [(o["outcome"], o["request_id"]) for o in event["outcomes"]]
    assert sorted(outcomes) == sorted(
        [
            ("accepted", first["request_id"]),
            ("duplicate", second["request_id"]),
            ("conflict", third["request_id"]),
        ]
    )
    conflict = next(o for o in event["outcomes"] if o["outcome"] == "conflict")
    assert conflict["payload"]["properties"] == {"n": 2}
    assert _usage(read, "api_calls")["total"] == "1"


def test_same_key_with_another_timestamp_is_caught(send: Any, process: Any, read: Any) -> None:
    send(ev("ts", timestamp=(HOUR - timedelta(hours=3)).isoformat()))
    send(ev("ts", timestamp=(HOUR - timedelta(hours=5)).isoformat()))
    process()
    outcomes = sorted(o["outcome"] for o in _event(read, "ts")["outcomes"])
    assert outcomes == ["accepted", "conflict"]
    assert _usage(read, "api_calls")["total"] == "1"


def test_unknown_customer_is_parked_failed_then_replayed(
    send: Any, enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN an event for a customer that does not exist yet, queued past the API's check (which refuses it)
    enqueue(ev("early", customer="initech"))
    process()
    parked = _event(read, "early", customer="initech")
    assert parked["status"] == "failed" and parked["reason"] == "unknown_customer"
    # WHEN the customer is created and the same event is sent again (operator replay)
    from neruba.models.catalog import Customer

    catalog.create_customer(Customer(external_id="initech", name="Initech", currency="USD"))
    send(ev("early", customer="initech"))
    process()
    # THEN it is accepted with outcome replay and counted
    event = _event(read, "early", customer="initech")
    assert event["status"] == "accepted"
    assert [o["outcome"] for o in event["outcomes"]][-1] == "replay"
    assert _usage(read, "api_calls", customer="initech")["total"] == "1"


def test_missing_property_and_unknown_meter_are_failed_with_reasons(
    catalog: Any, enqueue: Any, process: Any, read: Any
) -> None:
    # GIVEN events the API would refuse, queued past its check: the worker keeps the same rules
    enqueue(ev("no-tokens", code="tokens", properties={"model": "small"}), ev("no-meter", code="nope"))
    process()
    assert _event(read, "no-tokens")["reason"] == "missing_property"
    assert _event(read, "no-meter")["reason"] == "unknown_meter"


def test_every_aggregation_and_group_by(send: Any, process: Any, read: Any) -> None:
    # GIVEN events for meters of every aggregation, one filtered out, one grouped
    at = (HOUR - timedelta(hours=1)).isoformat()  # both in the past whatever the minute now
    later = (HOUR - timedelta(minutes=30)).isoformat()
    send(
        ev("a1", code="tokens", properties={"tokens": "1.25", "model": "small"}),
        ev("a2", code="tokens", properties={"tokens": 2, "model": "large"}),
        ev("a3", code="tokens", properties={"tokens": 0.5, "model": "small"}),
        ev("m1", code="storage_gb", properties={"gb": 7}),
        ev("m2", code="storage_gb", properties={"gb": 12.5}),
        ev("u1", code="seats", properties={"user": "ann"}),
        ev("u2", code="seats", properties={"user": "bob"}),
        ev("u3", code="seats", properties={"user": "ann"}),
        ev("l1", code="plan_level", timestamp=later, properties={"level": 3}),
        ev("l2", code="plan_level", timestamp=at, properties={"level": 9}),
        ev("f1", code="eu_calls", properties={"region": "eu"}),
        ev("f2", code="eu_calls", properties={"region": "us"}),
    )
    # WHEN processed in batches of 5 (so aggregates merge across batches)
    process(batch_size=5)
    # THEN each meter's quantity is exact
    assert _usage(read, "tokens")["total"] == "3.75"
    by_model = {
        row["group"]["model"]: row["quantity"] for row in _usage(read, "tokens", group_by="model")["data"]
    }
    assert by_model == {"small": "1.75", "large": "2"}
    assert _usage(read, "storage_gb")["total"] == "12.5"
    assert _usage(read, "seats")["total"] == "2"
    assert _usage(read, "plan_level")["total"] == "3"
    assert _usage(read, "eu_calls")["total"] == "1"


def test_outcome_counts_over_time(send: Any, process: Any, read: Any) -> None:
    send(ev("o1"), ev("o2"))
    send(ev("o1"))
    send(ev("o2", properties={"x": 1}))
    process()
    now = datetime.now(UTC)
    status, body = read(
        "/v1/ingest/outcomes",
        query={
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(minutes=1)).isoformat(),
            "granularity": "minute",
        },
    )
    assert status == 200, body
    assert body["totals"] == {
        "accepted": 2,
        "duplicate": 1,
        "conflict": 1,
        "replay": 0,
        "failed": 0,
        "over_limit": 0,
    }


def test_reads_validate_parameters(read: Any, catalog: Any) -> None:
    now = datetime.now(UTC)
    status, body = read(
        "/v1/ingest/outcomes", query={"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_time_range")
    status, body = read(
        "/v1/events/zzz", query={"customer_id": "acme"}, path_parameters={"transaction_id": "zzz"}
    )
    assert (status, body["error"]["code"]) == (404, "event_not_found")
    status, body = read("/v1/ingest/outcomes", query={"from": "yesterday", "to": now.isoformat()})
    assert (status, body["error"]["code"]) == (422, "validation_error")


def test_late_events_for_an_invoiced_period_are_accepted_and_flagged(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a customer invoiced through the current hour
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings

    catalog.set_billed_through("acme", HOUR)
    # WHEN one event arrives for before that time and one after it
    send(
        ev("late-1", timestamp=(HOUR - timedelta(hours=2)).isoformat()),
        ev("on-time", timestamp=HOUR.isoformat()),
    )
    process()
    # THEN both are accepted; only the late one is flagged, and its aggregate counts it as late
    assert _event(read, "late-1")["late"] is True
    assert _event(read, "on-time")["late"] is False
    cells = UsageRepository(get_settings().usage_table).aggregates("acme", "api_calls", "0000", "9999")
    late = {c.hour: c.usage.late_count for c in cells}
    assert late[(HOUR - timedelta(hours=2)).strftime("%Y-%m-%dT%H")] == 1
    assert late[HOUR.strftime("%Y-%m-%dT%H")] == 0
