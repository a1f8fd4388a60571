"""``POST /v1/events`` reports what the catalog refuses in its answer: an unknown customer, an unknown meter,
a missing aggregated property. Those events are not queued (never stored, never billed); the rest of the
batch is. The worker keeps its own checks for messages that reach the queue by other means."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call
from tests.support.aws import queue_url, receive_all


def _post(*events: Any) -> tuple[int, Any]:
    from functions.ingest_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": list(events)}))
    return status, body


def _queued() -> list[dict[str, Any]]:
    return [json.loads(m["Body"])["e"] for m in receive_all(boto3.client("sqs"), queue_url("IngestQueue"))]


def _stored(read: Any, tx: str, customer: str = "acme") -> tuple[int, Any]:
    return read(f"/v1/events/{tx}", query={"customer_id": customer}, path_parameters={"transaction_id": tx})  # type: ignore[no-any-return]


def test_catalog_refusals_are_per_event_errors_and_only_the_rest_is_queued(
    catalog: Any, process: Any, read: Any
) -> None:
    # GIVEN a batch with one good event and one event of each catalog refusal
    events = [
        ev("good"),
        ev("who", customer="initech"),
        ev("what", code="no_such_meter"),
        ev("bare", code="tokens", properties={"model": "small"}),  # the sum meter's 'tokens' is absent
        ev("filtered-out", code="eu_calls", properties={"region": "us"}),  # counts nothing, still valid
    ]
    # WHEN it is sent
    status, body = _post(*events)
    # THEN each refusal is in the 202 answer with its code and the field at fault, as a body path
    assert status == 202, body
    errors = [e["error"] for e in body["events"]]
    assert [e and (e["code"], e["param"]) for e in errors] == [
        None,
        ("unknown_customer", "events.1.customer_id"),
        ("unknown_meter", "events.2.code"),
        ("missing_property", "events.3.properties.tokens"),
        None,
    ]
    assert "initech" in errors[1]["message"] and "no_such_meter" in errors[2]["message"]
    assert body["queued"] == 2 and body["rejected"] == 3
    # AND only the accepted events reach the queue, so the refused ones are never stored nor counted
    assert sorted(e["transaction_id"] for e in _queued()) == ["filtered-out", "good"]


def test_refused_events_leave_no_stored_event(catalog: Any, send: Any, process: Any, read: Any) -> None:
    send(ev("good"), ev("who", customer="initech"))
    process()
    assert _stored(read, "good")[0] == 200
    status, body = _stored(read, "who", customer="initech")
    assert status == 404 and body["error"]["code"] == "event_not_found"


def test_the_same_transaction_id_is_accepted_once_the_customer_exists(
    catalog: Any, process: Any, read: Any
) -> None:
    from neruba.models.catalog import Customer

    # GIVEN an event refused for an unknown customer (the only event: the whole request is refused)
    status, body = _post(ev("early", customer="initech"))
    assert status == 400 and body["error"]["code"] == "all_events_rejected"
    assert body["error"]["details"][0]["code"] == "unknown_customer"
    # WHEN the customer is created and the same event is sent again at once
    catalog.create_customer(Customer(external_id="initech", name="Initech", currency="USD"))
    status, body = _post(ev("early", customer="initech"))
    # THEN it is queued and accepted (a miss is never cached), counted once
    assert status == 202 and body["queued"] == 1, body
    process()
    status, stored = _stored(read, "early", customer="initech")
    assert status == 200 and stored["status"] == "accepted"
    assert [o["outcome"] for o in stored["outcomes"]] == ["accepted"]


def test_400_details_and_202_errors_name_the_same_param(catalog: Any) -> None:
    # GIVEN the same two bad events, once alone (400) and once after a good one (202)
    bad = [ev("t1", customer="initech"), ev("t2", timestamp="2026-01-01T00:00:00")]
    status, refused = _post(*bad)
    assert status == 400
    status, mixed = _post(*bad, ev("ok"))
    assert status == 202
    # THEN the 400 details and the 202 errors name each event's field by the same body path
    in_details = [(d["code"], d["param"]) for d in refused["error"]["details"]]
    in_statuses = [(e["error"]["code"], e["error"]["param"]) for e in mixed["events"] if e["error"]]
    assert (
        in_details
        == in_statuses
        == [
            ("unknown_customer", "events.0.customer_id"),
            ("invalid_timestamp", "events.1.timestamp"),
        ]
    )


def test_a_warm_cache_reads_nothing_and_a_miss_is_read_each_time(
    catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal import clients

    dynamodb = clients.client("dynamodb")
    original = dynamodb.batch_get_item
    keys: list[int] = []

    def counting(**kwargs: Any) -> Any:
        keys.append(sum(len(v["Keys"]) for v in kwargs["RequestItems"].values()))
        return original(**kwargs)

    monkeypatch.setattr(dynamodb, "batch_get_item", counting)
    batch = [
        ev(
            f"t{i}",
            customer=("acme", "globex")[i % 2],
            code=("api_calls", "seats")[i % 2],
            properties={"user": "u"},
        )
        for i in range(100)
    ]
    # WHEN 100 events of 2 customers and 2 meters are sent twice
    assert _post(*batch)[0] == 202
    assert _post(*batch)[0] == 202
    # THEN the first request reads the 4 keys in one BatchGetItem, the second reads nothing
    assert keys == [4]
    # AND an unknown customer is read again on every request (never cached as missing)
    _post(ev("x", customer="initech"), ev("y"))
    _post(ev("x", customer="initech"), ev("y"))
    assert keys == [4, 1, 1]


def test_an_unreachable_catalog_queues_the_events_for_the_worker_to_check(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, process: Any, read: Any
) -> None:
    from neruba.dal.catalog import CatalogRepository

    def down(*_: Any) -> Any:
        raise RuntimeError("catalog unreachable")

    monkeypatch.setattr(CatalogRepository, "lookup", down)
    # WHEN the catalog cannot be read, an event for an unknown customer is queued all the same
    status, body = _post(ev("blind", customer="initech"))
    assert status == 202 and body["queued"] == 1
    monkeypatch.undo()
    # THEN the worker's own check parks it as failed, with the same code the API would have given
    process()
    status, stored = _stored(read, "blind", customer="initech")
    assert status == 200 and stored["status"] == "failed" and stored["reason"] == "unknown_customer"
