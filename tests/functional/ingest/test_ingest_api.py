"""POST /v1/events through the real handler: per-event validation, batching to SQS, limits, scopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url, receive_all


@pytest.fixture
def handler(catalog: Any) -> Any:
    from functions.ingest_api.app import lambda_handler

    return lambda_handler


def _event(tx: str, **overrides: Any) -> dict[str, Any]:
    return {"transaction_id": tx, "customer_id": "acme", "code": "api_calls", **overrides}


def _queued() -> list[dict[str, Any]]:
    return receive_all(boto3.client("sqs"), queue_url("IngestQueue"))


def test_valid_events_are_queued_with_sendmessagebatch(handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 25 valid events and a counter of SQS calls
    from neruba.dal import clients

    calls: list[str] = []
    sqs = clients.client("sqs")
    original = sqs.send_message_batch
    monkeypatch.setattr(sqs, "send_message_batch", lambda **kw: calls.append("batch") or original(**kw))
    events = [_event(f"tx-{i}", properties={"value": i}) for i in range(25)]
    # WHEN they are sent in one request
    status, body, headers = call(handler, api_event("POST", "/v1/events", body={"events": events}))
    # THEN all are queued, in 3 SendMessageBatch calls (10 + 10 + 5), each answer naming the request
    assert status == 202
    assert body["queued"] == 25 and body["rejected"] == 0
    assert [e["status"] for e in body["events"]] == ["queued"] * 25
    assert body["request_id"] == headers["X-Request-Id"]
    assert calls == ["batch"] * 3
    messages = _queued()
    assert len(messages) == 25
    first = json.loads(messages[0]["Body"])
    assert first["rid"] == body["request_id"]


def test_mixed_batch_queues_valid_and_reports_each_rejection(handler: Any) -> None:
    # GIVEN one valid event and one of each kind of invalid event
    now = datetime.now(UTC)
    events = [
        _event("ok-1"),
        {"customer_id": "acme", "code": "api_calls"},
        _event("unknown-field", colour="blue"),
        _event("bad-prop", properties={"nested": {"a": 1}}),
        _event("huge", properties={"v": "HUGE"}),
        _event("old", timestamp=(now - timedelta(days=36)).isoformat()),
        _event("future", timestamp=(now + timedelta(minutes=10)).isoformat()),
        _event("naive", timestamp="2026-01-01T00:00:00"),
        "not an object",
        _event("many-props", properties={f"p{i}": i for i in range(51)}),
    ]
    # WHEN sent together
    raw = json.dumps({"events": events}).replace('"HUGE"', "1e1000000")
    status, body, _ = call(handler, api_event("POST", "/v1/events", raw_body=raw))
    # THEN the valid one is queued and each invalid one carries its own machine-readable code
    assert status == 202
    codes = [e["error"]["code"] if e["error"] else None for e in body["events"]]
    assert codes == [
        None,
        "missing_field",
        "unknown_field",
        "invalid_property",
        "number_out_of_range",  # 1e1000000: no number DynamoDB can store
        "timestamp_too_old",
        "timestamp_in_future",
        "invalid_timestamp",
        "invalid_event",
        "too_many_properties",
    ]
    assert body["queued"] == 1
    assert body["rejected"] == 9
    assert len(_queued()) == 1


def test_all_invalid_gives_400_with_details_and_queues_nothing(handler: Any) -> None:
    # GIVEN two invalid events
    events = [{"customer_id": "acme"}, _event("x", code="bad code!")]
    # WHEN sent
    status, body, _ = call(handler, api_event("POST", "/v1/events", body={"events": events}))
    # THEN 400 in the one error shape, with one detail per event, and nothing queued
    assert status == 400
    assert body["error"]["code"] == "all_events_rejected"
    assert body["error"]["request_id"]
    assert [d["param"].split(".")[1] for d in body["error"]["details"]] == ["0", "1"]
    assert _queued() == []


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"events": []}, 422, "validation_error"),
        ({"events": [_event(f"t{i}") for i in range(101)]}, 422, "validation_error"),
        ({"events": [_event("t")], "extra": 1}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_request_shape_errors(handler: Any, payload: dict[str, Any], status: int, code: str) -> None:
    status_got, body, _ = call(handler, api_event("POST", "/v1/events", body=payload))
    assert status_got == status
    assert body["error"]["code"] == code
    assert _queued() == []


def test_invalid_json_is_400(handler: Any) -> None:
    status, body, _ = call(handler, api_event("POST", "/v1/events", raw_body='{"events": [}'))
    assert status == 400
    assert body["error"]["code"] == "invalid_json"


def test_nan_is_not_a_number(handler: Any) -> None:
    status, body, _ = call(
        handler,
        api_event(
            "POST",
            "/v1/events",
            raw_body='{"events": [{"transaction_id": "t", "customer_id": "a", '
            '"code": "c", "properties": {"v": NaN}}]}',
        ),
    )
    assert status == 400
    assert body["error"]["code"] == "invalid_json"


def test_body_over_256_kib_is_413(handler: Any) -> None:
    big = "x" * 1000
    events = [_event(f"t{i}", properties={f"p{j}": big for j in range(3)}) for i in range(100)]
    status, body, _ = call(handler, api_event("POST", "/v1/events", body={"events": events}))
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert _queued() == []


def test_decimal_properties_stay_exact_in_the_queue(handler: Any) -> None:
    raw = (
        '{"events": [{"transaction_id": "d", "customer_id": "acme", "code": "tokens", "properties": '
        '{"tokens": 0.100000000000000005551115123125}}]}'
    )
    status, _, _ = call(handler, api_event("POST", "/v1/events", raw_body=raw))
    assert status == 202
    message = _queued()[0]["Body"]
    assert '"tokens":0.100000000000000005551115123125' in message


@pytest.mark.parametrize(
    ("scopes", "status", "code"), [(None, 401, "unauthorized"), ("read", 403, "insufficient_scope")]
)
def test_scopes(handler: Any, scopes: str | None, status: int, code: str) -> None:
    got, body, _ = call(
        handler, api_event("POST", "/v1/events", body={"events": [_event("s")]}, scopes=scopes)
    )
    assert got == status
    assert body["error"]["code"] == code
    assert _queued() == []
