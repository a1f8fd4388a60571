"""The outgoing-webhook admin routes of the client (endpoints, secret rotation, events, resends) over
a scripted transport, sync and async."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx

import neruba_client as nc
from neruba_client import models
from tests.client.conftest import Script, error

ENDPOINT_ID = "we_0123456789abcdef0123"
EVENT_ID = "evt_0123456789abcdef01234567"


def endpoint(endpoint_id: str = ENDPOINT_ID, secret: str | None = None, active: int = 1) -> dict[str, Any]:
    return {
        "object": "webhook_endpoint",
        "id": endpoint_id,
        "url": "https://hooks.example.test/neruba",
        "enabled_events": ["invoice.finalized"],
        "description": "",
        "enabled": True,
        "status": "enabled",
        "disabled_reason": None,
        "failing_since": None,
        "secret": secret,
        "secret_hint": "abcd",
        "secrets_active": active,
        "created_at": "2026-03-01T00:00:00Z",
        "updated_at": "2026-03-01T00:00:00Z",
    }


def _page(ids: list[str], cursor: str | None) -> httpx.Response:
    body = {"object": "list", "data": [endpoint(i) for i in ids], "has_more": cursor is not None}
    return httpx.Response(200, json={**body, "next_cursor": cursor})


def test_create_posts_the_endpoint_with_an_idempotency_key_and_reads_the_secret(make_client: Any) -> None:
    script = Script(httpx.Response(201, json=endpoint(secret="whsec_new")))
    got = make_client(script).admin.create_webhook_endpoint(
        url="https://hooks.example.test/neruba", enabled_events=["invoice.finalized"]
    )
    assert isinstance(got, models.Endpoint) and got.secret == "whsec_new"
    assert got.created_at == datetime(2026, 3, 1, tzinfo=UTC)
    (request,) = script.requests
    assert (request.method, request.url.raw_path) == ("POST", b"/base/admin/webhook-endpoints")
    assert json.loads(request.content) == {
        "url": "https://hooks.example.test/neruba",
        "enabled_events": ["invoice.finalized"],
    }
    assert request.headers["Idempotency-Key"]


def test_create_retries_a_5xx_with_the_same_idempotency_key(make_client: Any, sleeps: list[float]) -> None:
    script = Script(error(503, "unavailable", "api_error"), httpx.Response(201, json=endpoint()))
    make_client(script).admin.create_webhook_endpoint(
        url="https://hooks.example.test/neruba", enabled_events=["customer.created"], idempotency_key="k-1"
    )
    assert len(script.requests) == 2 and len(sleeps) == 1
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k-1", "k-1"]


def test_list_follows_the_cursor_through_every_page(make_client: Any) -> None:
    script = Script(_page(["we_a", "we_b"], "we_b"), _page(["we_c"], None))
    got = [e.id for e in make_client(script).admin.webhook_endpoints(limit=2)]
    assert got == ["we_a", "we_b", "we_c"]
    assert [dict(r.url.params) for r in script.requests] == [
        {"limit": "2"},
        {"limit": "2", "starting_after": "we_b"},
    ]


def _event(event_id: str, sequence: int) -> dict[str, Any]:
    return {"object": "event", "id": event_id, "type": "invoice.finalized", "customer_id": "acme",
            "sequence": sequence, "created": "2026-03-01T00:00:00Z"}  # fmt: skip


def test_a_customers_events_are_listed_with_their_filters_through_every_page(make_client: Any) -> None:
    first = {"object": "list", "data": [_event(EVENT_ID, 2)], "has_more": True, "next_cursor": "c1"}
    last = {"object": "list", "data": [_event("evt_" + "1" * 24, 1)], "has_more": False, "next_cursor": None}
    script = Script(httpx.Response(200, json=first), httpx.Response(200, json=last))
    got = list(
        make_client(script).admin.webhook_events(
            customer_id="acme", type_="invoice.finalized", from_=datetime(2026, 3, 1, tzinfo=UTC), limit=1
        )
    )
    assert [(e.id, e.sequence) for e in got] == [(EVENT_ID, 2), ("evt_" + "1" * 24, 1)]
    assert isinstance(got[0], models.WebhookEventSummary) and got[0].created == datetime(
        2026, 3, 1, tzinfo=UTC
    )
    assert {r.url.path for r in script.requests} == {"/base/admin/webhook-events"}
    query = {"customer_id": "acme", "type": "invoice.finalized", "limit": "1"}
    params = [dict(r.url.params) for r in script.requests]
    assert [{k: v for k, v in p.items() if k != "from"} for p in params] == [
        query,
        {**query, "starting_after": "c1"},
    ]
    assert all(p["from"].startswith("2026-03-01T00:00:00") for p in params)


def test_retrieve_update_and_delete_address_the_endpoint(make_client: Any) -> None:
    deleted = {"object": "webhook_endpoint", "id": ENDPOINT_ID, "deleted": True}
    script = Script(
        httpx.Response(200, json=endpoint()),
        httpx.Response(200, json={**endpoint(), "enabled": False, "status": "disabled"}),
        httpx.Response(200, json=deleted),
    )
    admin = make_client(script).admin
    assert admin.webhook_endpoint(ENDPOINT_ID).secret is None
    assert admin.update_webhook_endpoint(ENDPOINT_ID, enabled=False).status == "disabled"
    assert admin.delete_webhook_endpoint(ENDPOINT_ID).deleted is True
    path = f"/base/admin/webhook-endpoints/{ENDPOINT_ID}".encode()
    assert [(r.method, r.url.raw_path) for r in script.requests] == [
        ("GET", path),
        ("POST", path),
        ("DELETE", path),
    ]
    assert json.loads(script.requests[1].content) == {"enabled": False}
    assert "Idempotency-Key" not in script.requests[1].headers
    assert script.requests[2].content == b""


def test_update_and_delete_are_not_retried_after_a_5xx(make_client: Any) -> None:
    # neither takes an Idempotency-Key: a second send could act on a changed endpoint
    for call in (
        lambda a: a.update_webhook_endpoint(ENDPOINT_ID, description="x"),
        lambda a: a.delete_webhook_endpoint(ENDPOINT_ID),
    ):
        script = Script(error(502, "bad_gateway", "api_error"), httpx.Response(200, json=endpoint()))
        try:
            call(make_client(script).admin)
        except nc.ServerError:
            pass
        else:
            raise AssertionError("a 502 should have been raised")
        assert len(script.requests) == 1


def test_rotate_sends_the_overlap_and_an_idempotency_key(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=endpoint(secret="whsec_next", active=2)))
    got = make_client(script).admin.rotate_webhook_secret(ENDPOINT_ID, overlap_seconds=3600)
    assert (got.secret, got.secrets_active) == ("whsec_next", 2)
    (request,) = script.requests
    assert request.url.raw_path == f"/base/admin/webhook-endpoints/{ENDPOINT_ID}/rotate-secret".encode()
    assert json.loads(request.content) == {"overlap_seconds": 3600}
    assert request.headers["Idempotency-Key"]


def test_rotate_without_an_overlap_sends_an_empty_object(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=endpoint(secret="whsec_next", active=2)))
    make_client(script).admin.rotate_webhook_secret(ENDPOINT_ID)
    assert json.loads(script.requests[0].content) == {}


def test_an_event_reads_with_its_deliveries_and_attempts(make_client: Any) -> None:
    event = {
        "object": "event",
        "id": EVENT_ID,
        "type": "invoice.finalized",
        "customer_id": "acme",
        "sequence": 7,
        "created": "2026-03-01T00:00:00Z",
        "payload": {
            "id": EVENT_ID,
            "object": "event",
            "type": "invoice.finalized",
            "customer_id": "acme",
            "sequence": 7,
            "created": "2026-03-01T00:00:00Z",
            "data": {
                "object": {
                    "id": "in_0123456789abcdef01234567",
                    "customer_id": "acme",
                    "currency": "USD",
                    "subtotal_minor": 1250,
                    "total_minor": 1250,
                    "status": "finalized",
                    "finalized_at": "2026-03-01T00:00:00Z",
                }
            },
        },
        "deliveries": [{"endpoint_id": ENDPOINT_ID, "status": "failed", "attempts": 2, "failed_at": None}],
        "attempts": [
            {
                "endpoint_id": ENDPOINT_ID,
                "attempt": 1,
                "at": "2026-03-01T00:00:01Z",
                "status_code": 0,
                "latency_ms": 10000,
                "response_excerpt": "",
                "error": "timeout",
            }
        ],
    }
    script = Script(httpx.Response(200, json=event))
    got = make_client(script).admin.webhook_event(EVENT_ID)
    assert script.requests[0].url.raw_path == f"/base/admin/webhook-events/{EVENT_ID}".encode()
    assert got.deliveries[0].status == "failed" and got.attempts[0].status_code == 0
    assert isinstance(got.payload, models.InvoiceFinalizedEvent)
    assert got.payload.data["object"].total_minor == 1250


def test_an_event_of_a_type_this_client_does_not_know_still_reads() -> None:
    # a payload of an event type added after this client was released reads as a plain object
    view = models.EventView.model_validate(
        {
            "object": "event",
            "id": EVENT_ID,
            "type": "invoice.finalized",
            "customer_id": "acme",
            "sequence": 8,
            "created": "2026-03-01T00:00:00Z",
            "payload": {"id": EVENT_ID, "type": "invoice.voided", "data": {"object": {"id": "in_1"}}},
            "deliveries": [],
            "attempts": [],
        }
    )
    assert isinstance(view.payload, dict) and view.payload["type"] == "invoice.voided"


def test_resend_posts_the_request_with_an_idempotency_key(make_client: Any) -> None:
    answer = {"object": "webhook_resend", "resent": 1, "deliveries": [{"event_id": EVENT_ID}]}
    script = Script(httpx.Response(200, json=answer))
    got = make_client(script).admin.resend_webhooks(
        failed_since=datetime(2026, 3, 1, tzinfo=UTC), endpoint_id=ENDPOINT_ID, idempotency_key="r-1"
    )
    assert got.resent == 1
    (request,) = script.requests
    assert (request.method, request.url.raw_path) == ("POST", b"/base/admin/webhook-resends")
    assert json.loads(request.content) == {
        "failed_since": "2026-03-01T00:00:00+00:00",
        "endpoint_id": ENDPOINT_ID,
    }
    assert request.headers["Idempotency-Key"] == "r-1"


def test_the_async_client_lists_and_rotates_the_same_way() -> None:
    script = Script(
        _page(["we_a"], "we_a"),
        _page(["we_b"], None),
        httpx.Response(200, json=endpoint(secret="whsec_next", active=2)),
    )

    async def run() -> tuple[list[str], models.Endpoint]:
        async with nc.AsyncNeruba(
            "nrb_test_key",
            base_url="https://api.example.test/base",
            http_transport=httpx.MockTransport(script),
        ) as client:
            ids = [e.id async for e in client.admin.webhook_endpoints()]
            rotated = await client.admin.rotate_webhook_secret("we_b", overlap_seconds=0)
            return ids, rotated

    ids, rotated = asyncio.run(run())
    assert ids == ["we_a", "we_b"] and rotated.secrets_active == 2
    assert script.requests[-1].headers["Idempotency-Key"]
    assert json.loads(script.requests[-1].content) == {"overlap_seconds": 0}
