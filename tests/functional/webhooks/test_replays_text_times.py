"""A retried create or rotate answers the secret it made while that secret still signs; free text of the
endpoint refuses control characters; an event's times have one format, the API's."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.support.api import api_event, call

ENDPOINTS = "/admin/webhook-endpoints"
BODY = {"url": "http://127.0.0.1:8123/hooks", "enabled_events": ["customer.created"]}


@pytest.fixture
def handler(aws: dict[str, str]) -> Any:
    return importlib.import_module("functions.webhooks_api.app").lambda_handler


def post(handler: Any, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    return call(handler, api_event("POST", path, body=body, **kw))


def rotate(handler: Any, endpoint_id: str, overlap: int, key: str | None = None) -> tuple[int, Any]:
    status, answer, _ = post(
        handler, f"{ENDPOINTS}/{endpoint_id}/rotate-secret", {"overlap_seconds": overlap},
        path_parameters={"endpoint_id": endpoint_id}, headers={"Idempotency-Key": key} if key else None,
    )  # fmt: skip
    return status, answer


def test_a_retried_rotate_answers_the_same_secret_and_rotates_once(handler: Any) -> None:
    made = post(handler, ENDPOINTS, BODY)[1]
    status, first = rotate(handler, made["id"], 600, key="rk1")
    assert status == 200 and first["secret"].startswith("whsec_")
    status, again = rotate(handler, made["id"], 600, key="rk1")
    assert status == 200 and again["secret"] == first["secret"]
    assert again == first
    path = f"{ENDPOINTS}/{made['id']}"
    _, shown, _ = call(handler, api_event("GET", path, path_parameters={"endpoint_id": made["id"]}))
    assert shown["secrets_active"] == 2 and shown["secret_hint"] == first["secret"][-4:]  # rotated once
    # once that secret no longer signs, a replay shows it no more
    rotate(handler, made["id"], 0, key="rk2")
    status, late = rotate(handler, made["id"], 600, key="rk1")
    assert status == 200 and late["secret"] is None and late["id"] == made["id"]


def test_a_retried_create_answers_the_same_secret_while_it_signs(handler: Any) -> None:
    key = {"Idempotency-Key": "ck1"}
    status, first, _ = post(handler, ENDPOINTS, BODY, headers=key)
    assert status == 201 and first["secret"].startswith("whsec_")
    status, again, _ = post(handler, ENDPOINTS, BODY, headers=key)
    assert status == 201 and again == first
    _, page, _ = call(handler, api_event("GET", ENDPOINTS))
    assert len(page["data"]) == 1
    rotate(handler, first["id"], 600)  # the first secret still signs during the overlap
    assert post(handler, ENDPOINTS, BODY, headers=key)[1]["secret"] == first["secret"]
    rotate(handler, first["id"], 0)  # now it stops
    assert post(handler, ENDPOINTS, BODY, headers=key)[1]["secret"] is None


def test_a_replay_after_the_endpoint_was_deleted_shows_no_secret(handler: Any) -> None:
    key = {"Idempotency-Key": "ck2"}
    first = post(handler, ENDPOINTS, BODY, headers=key)[1]
    path = f"{ENDPOINTS}/{first['id']}"
    call(handler, api_event("DELETE", path, path_parameters={"endpoint_id": first["id"]}))
    status, again, _ = post(handler, ENDPOINTS, BODY, headers=key)
    assert status == 201 and again["id"] == first["id"] and again["secret"] is None


def test_the_secret_is_not_stored_in_the_idempotency_record(handler: Any) -> None:
    import boto3

    from neruba.settings import get_settings

    first = post(handler, ENDPOINTS, BODY, headers={"Idempotency-Key": "ck3"})[1]
    settings = get_settings()
    for table in {settings.ops_table, settings.billing_table}:
        items = boto3.client("dynamodb").scan(TableName=table)["Items"]
        holders = [i for i in items if first["secret"] in str(i)]
        assert all(i["pk"]["S"].startswith("WHEP") for i in holders), holders


@pytest.mark.parametrize("text", ["a\u0000b", "a\nb", "a\rb", "tab\there", "a\x1bb", "a\x7fb", "a\u2028b"])
def test_a_description_with_control_characters_is_a_422(handler: Any, text: str) -> None:
    status, error, _ = post(handler, ENDPOINTS, {**BODY, "description": text})
    assert status == 422, error
    [detail] = error["error"]["details"]
    assert detail["param"] == "description" and "control character" in detail["message"]
    made = post(handler, ENDPOINTS, {**BODY, "description": "fine é ✓"})[1]
    assert made["description"] == "fine é ✓"
    path = f"{ENDPOINTS}/{made['id']}"
    status, error, _ = post(handler, path, {"description": text}, path_parameters={"endpoint_id": made["id"]})
    assert status == 422 and error["error"]["details"][0]["param"] == "description"


@pytest.mark.parametrize(("field", "text"), [("reason", "why\u0000 not"), ("ticket", "T-1\nX")])
def test_resend_reason_and_ticket_refuse_control_characters(handler: Any, field: str, text: str) -> None:
    body = {"failed_since": "2026-01-01T00:00:00Z", "reason": "a retry", field: text}
    status, error, _ = post(handler, "/admin/webhook-resends", body)
    assert status == 422 and error["error"]["details"][0]["param"] == field


def test_an_events_times_use_the_apis_format(handler: Any) -> None:
    import re
    from datetime import UTC, datetime

    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_customer
    from neruba.logic.webhooks import relay_once
    from neruba.models.catalog import Customer

    made = post(handler, ENDPOINTS, BODY)[1]
    create_customer(bootstrap.plans(), Customer(external_id="acme", name="Acme", currency="USD"))
    relay_once(bootstrap.webhooks(), datetime.now(UTC))
    status, page, _ = call(handler, api_event("GET", "/admin/webhook-events", query={"customer_id": "acme"}))
    assert status == 200
    [summary] = page["data"]
    evt = summary["id"]
    path = f"/admin/webhook-events/{evt}"
    _, shown, _ = call(handler, api_event("GET", path, path_parameters={"event_id": evt}))
    customers = importlib.import_module("functions.read_api.app").lambda_handler
    _, listed, _ = call(customers, api_event("GET", "/v1/customers", scopes="read"))
    api_format = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
    times = {
        "customer": listed["data"][0]["created_at"],
        "payload.created_at": shown["payload"]["data"]["object"]["created_at"],
        "payload.created": shown["payload"]["created"],
        "view.created": shown["created"],
        "list.created": summary["created"],
        "endpoint.created_at": made["created_at"],
        "endpoint.updated_at": made["updated_at"],
        "delivery.next_at": shown["deliveries"][0]["next_at"],
    }
    assert all(api_format.match(t) for t in times.values()), times
    assert len({shown["created"], summary["created"], shown["payload"]["created"]}) == 1, times
