"""The webhooks admin routes through their handler: shapes (checked against docs/openapi.json), error codes,
the secret shown with the answer that made it (and to its retry), idempotent create, resend."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.support.api import api_event, call


@pytest.fixture
def handler(aws: dict[str, str]) -> Any:
    return importlib.import_module("functions.webhooks_api.app").lambda_handler


def post(handler: Any, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    return call(handler, api_event("POST", path, body=body, **kw))


def test_create_list_get_update_rotate_delete(handler: Any) -> None:
    status, created, _ = post(
        handler, "/admin/webhook-endpoints",
        {"url": "http://127.0.0.1:8123/hooks", "enabled_events": ["customer.created"], "description": "mine"},
    )  # fmt: skip
    assert status == 201 and created["secret"].startswith("whsec_")
    assert created["secret_hint"] == created["secret"][-4:]
    endpoint_id = created["id"]
    path = f"/admin/webhook-endpoints/{endpoint_id}"
    status, shown, _ = call(handler, api_event("GET", path, path_parameters={"endpoint_id": endpoint_id}))
    assert status == 200 and shown["secret"] is None and shown["url"] == "http://127.0.0.1:8123/hooks"
    status, page, _ = call(handler, api_event("GET", "/admin/webhook-endpoints", query={"limit": "1"}))
    assert status == 200 and [e["id"] for e in page["data"]] == [endpoint_id]
    status, changed, _ = post(
        handler, path, {"enabled_events": ["invoice.finalized", "customer.created"], "enabled": False},
        path_parameters={"endpoint_id": endpoint_id},
    )  # fmt: skip
    assert status == 200
    assert (changed["enabled_events"], changed["status"]) == (
        ["customer.created", "invoice.finalized"],
        "disabled",
    )
    status, rotated, _ = post(
        handler,
        f"{path}/rotate-secret",
        {"overlap_seconds": 600},
        path_parameters={"endpoint_id": endpoint_id},
    )
    assert (
        status == 200
        and rotated["secret"] not in (None, created["secret"])
        and rotated["secrets_active"] == 2
    )
    status, _, _ = call(handler, api_event("DELETE", path, path_parameters={"endpoint_id": endpoint_id}))
    assert status == 200
    status, error, _ = call(handler, api_event("GET", path, path_parameters={"endpoint_id": endpoint_id}))
    assert status == 404 and error["error"]["code"] == "webhook_endpoint_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://example.com/hooks", "enabled_events": ["customer.created"]}, "url_not_https"),
        ({"url": "ftp://127.0.0.1/hooks", "enabled_events": ["customer.created"]}, "invalid_url"),
        ({"url": "https://example.com/hooks", "enabled_events": ["invoice.exploded"]}, "validation_error"),
        ({"url": "https://example.com/hooks", "enabled_events": []}, "validation_error"),
    ],
)
def test_a_refused_endpoint_is_a_400_and_nothing_is_stored(handler: Any, body: Any, code: str) -> None:
    status, error, _ = post(handler, "/admin/webhook-endpoints", body)
    assert status in (400, 422) and error["error"]["code"] == code
    _, page, _ = call(handler, api_event("GET", "/admin/webhook-endpoints"))
    assert page["data"] == []


def test_create_with_an_idempotency_key_creates_once_and_shows_the_same_secret(handler: Any) -> None:
    body = {"url": "http://127.0.0.1:8123/hooks", "enabled_events": ["customer.created"]}
    key = {"Idempotency-Key": "create-1"}
    _, first, _ = post(handler, "/admin/webhook-endpoints", body, headers=key)
    status, again, _ = post(handler, "/admin/webhook-endpoints", body, headers=key)
    assert status == 201 and again["id"] == first["id"] and again["secret"] == first["secret"]
    _, page, _ = call(handler, api_event("GET", "/admin/webhook-endpoints"))
    assert len(page["data"]) == 1
    status, error, _ = post(handler, "/admin/webhook-endpoints", {**body, "description": "x"}, headers=key)
    assert status == 409 and error["error"]["code"] == "idempotency_conflict"


def test_the_routes_need_the_admin_scope(handler: Any) -> None:
    status, error, _ = call(handler, api_event("GET", "/admin/webhook-endpoints", scopes="read"))
    assert status == 403 and error["error"]["code"] == "insufficient_scope"


def test_resend_names_one_target_and_an_unknown_event_is_a_404(handler: Any) -> None:
    status, error, _ = post(handler, "/admin/webhook-resends", {})
    assert status == 400 and error["error"]["code"] == "resend_target_required"
    status, error, _ = post(handler, "/admin/webhook-resends", {"event_id": "evt_" + "0" * 24})
    assert status == 404 and error["error"]["code"] == "webhook_event_not_found"
    status, done, _ = post(handler, "/admin/webhook-resends", {"failed_since": "2026-01-01T00:00:00Z"})
    assert status == 200 and done == {"object": "webhook_resend", "resent": 0, "deliveries": []}


def test_an_event_shows_its_payload_deliveries_and_attempts(handler: Any) -> None:
    from datetime import UTC, datetime

    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_customer
    from neruba.logic.webhooks import relay_once
    from neruba.models.catalog import Customer

    _, created, _ = post(
        handler,
        "/admin/webhook-endpoints",
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["customer.created"]},
    )
    create_customer(bootstrap.plans(), Customer(external_id="acme", name="Acme", currency="USD"))
    relay_once(bootstrap.webhooks(), datetime.now(UTC))
    from tests.functional.webhooks.test_delivery import drain_sqs

    drain_sqs(bootstrap.webhooks(), datetime.now(UTC))  # port 9 refuses: one failed attempt
    import boto3

    from neruba.settings import get_settings

    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    [evt] = [i["pk"]["S"][6:] for i in items if i["pk"]["S"].startswith("WHEVT#")]
    status, shown, _ = call(
        handler, api_event("GET", f"/admin/webhook-events/{evt}", path_parameters={"event_id": evt})
    )
    assert status == 200 and shown["payload"]["id"] == evt and shown["sequence"] == 1
    assert [d["status"] for d in shown["deliveries"]] == ["pending"]
    [attempt] = shown["attempts"]
    assert attempt["endpoint_id"] == created["id"] and attempt["status_code"] == 0 and attempt["error"]
    assert attempt["at"].endswith("Z") and shown["deliveries"][0]["next_at"].endswith("Z")  # answer format


def test_a_resend_with_an_idempotency_key_sends_once(handler: Any) -> None:
    from datetime import UTC, datetime

    import boto3

    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_customer
    from neruba.logic.webhooks import relay_once
    from neruba.models.catalog import Customer
    from tests.support.aws import queue_url, receive_all

    post(
        handler,
        "/admin/webhook-endpoints",
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["customer.created"]},
    )
    create_customer(bootstrap.plans(), Customer(external_id="acme", name="Acme", currency="USD"))
    relay_once(bootstrap.webhooks(), datetime.now(UTC))
    sqs, url = boto3.client("sqs"), queue_url("WebhookDeliveryQueue")
    for message in receive_all(sqs, url):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    items = boto3.client("dynamodb").scan(TableName=bootstrap.webhooks().ops_table)["Items"]
    [evt] = [i["pk"]["S"][6:] for i in items if i["pk"]["S"].startswith("WHEVT#")]
    key = {"Idempotency-Key": "resend-1"}
    status, first, _ = post(handler, "/admin/webhook-resends", {"event_id": evt}, headers=key)
    status, again, _ = post(handler, "/admin/webhook-resends", {"event_id": evt}, headers=key)
    assert status == 200 and first == again and first["resent"] == 1
    assert len(receive_all(sqs, url)) == 1  # one message, not two
    items = boto3.client("dynamodb").scan(TableName=bootstrap.webhooks().ops_table)["Items"]
    assert len([i for i in items if "webhook.resend" in str(i)]) == 1  # audited once


def test_a_resend_keeps_the_operators_reason_and_ticket_in_its_audit_record(handler: Any) -> None:
    import json
    from datetime import UTC, datetime

    import boto3

    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_customer
    from neruba.logic.webhooks import relay_once
    from neruba.models.catalog import Customer

    post(
        handler,
        "/admin/webhook-endpoints",
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["customer.created"]},
    )
    create_customer(bootstrap.plans(), Customer(external_id="acme", name="Acme", currency="USD"))
    relay_once(bootstrap.webhooks(), datetime.now(UTC))
    table = bootstrap.webhooks().ops_table
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    [evt] = [i["pk"]["S"][6:] for i in items if i["pk"]["S"].startswith("WHEVT#")]
    # WHEN an operator resends the event saying why, under a ticket (as every other operator action does)
    body = {"event_id": evt, "reason": "endpoint back up", "ticket": "SUP-9"}
    status, answer, _ = post(handler, "/admin/webhook-resends", body)
    # THEN the resend is done and its audit record keeps the reason and the ticket
    assert status == 200, answer
    records = [
        json.loads(i["doc"]["S"])
        for i in boto3.client("dynamodb").scan(TableName=table)["Items"]
        if i["pk"]["S"].startswith("AUD#") and "webhook.resend" in i["doc"]["S"]
    ]
    assert [(r["reason"], r["ticket"], r["target"]) for r in records] == [("endpoint back up", "SUP-9", evt)]
