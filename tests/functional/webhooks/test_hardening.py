"""Hostile input on the webhooks admin API and the delivery worker: URLs that cannot be posted to, an
attempt that raises, resend bodies, secret rotation bounds, unknown query parameters, strict fields."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from neruba.logic.webhooks import delivery, relay
from tests.functional.webhooks.conftest import NOW, MemoryQueue, Receiver
from tests.functional.webhooks.test_delivery import endpoint, new_customer
from tests.support.api import api_event, call

ENDPOINTS = "/admin/webhook-endpoints"


@pytest.fixture
def handler(aws: dict[str, str]) -> Any:
    return importlib.import_module("functions.webhooks_api.app").lambda_handler


def post(handler: Any, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    return call(handler, api_event("POST", path, body=body, **kw))


def created(handler: Any, url: str = "http://127.0.0.1:8123/hooks") -> dict[str, Any]:
    status, answer, _ = post(handler, ENDPOINTS, {"url": url, "enabled_events": ["customer.created"]})
    assert status == 201
    return answer


# ---------------------------------------------------------------- 1. URLs that cannot be posted to


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/\r\nX: y",
        "http://127.0.0.1:8123/a\nb",
        "http://127.0.0.1:8123/a b",
        "http://127.0.0.1:8123/a\tb",
        "http://127.0.0.1:8123/a\x00b",
        "http://127.0.0.1:8123/a\x7fb",
        "http://127.0.0.1:8123/a\u2028b",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "http://127.0.0.1:port/",
    ],
)
def test_a_url_with_control_characters_whitespace_or_a_bad_port_is_refused(handler: Any, url: str) -> None:
    known = created(handler)
    update = ENDPOINTS + "/" + known["id"]
    for path, body, params in (
        (ENDPOINTS, {"url": url, "enabled_events": ["customer.created"]}, None),
        (update, {"url": url}, {"endpoint_id": known["id"]}),
    ):
        status, error, _ = call(handler, api_event("POST", path, body=body, path_parameters=params))
        assert status == 422, error
        assert error["error"]["code"] == "validation_error"
        [detail] = error["error"]["details"]
        assert detail["param"] == "url" and "url" in detail["message"]
    _, page, _ = call(handler, api_event("GET", ENDPOINTS))
    assert all(e["url"] == "http://127.0.0.1:8123/hooks" for e in page["data"])


def test_the_largest_and_smallest_ports_are_accepted(handler: Any) -> None:
    assert created(handler, "http://127.0.0.1:1/")["url"] == "http://127.0.0.1:1/"
    assert created(handler, "http://127.0.0.1:65535/")["url"] == "http://127.0.0.1:65535/"


def _one_attempt(hooks: MemoryQueue) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Relay one customer.created event and run its first message; (outcome, delivery, attempts)."""
    import json

    new_customer("acme")
    relay.relay_once(hooks, NOW)
    body, _ = hooks.queue.pop(0)
    outcome = delivery.process_message(body, hooks, NOW)
    [state], attempts = hooks.repo.deliveries_of(json.loads(body)["event_id"])
    return outcome, state, attempts


def test_a_stored_url_that_cannot_be_posted_to_is_a_failed_attempt_not_a_poison_message(
    memory_hooks: MemoryQueue,
) -> None:
    made = endpoint(memory_hooks, "http://127.0.0.1:8123/hooks")
    found = memory_hooks.repo.endpoint(made["id"])
    assert found is not None
    bad = {**found[0], "url": "http://127.0.0.1:99999/\r\nX: y"}  # stored before the rule existed
    memory_hooks.repo.put_endpoint(bad, found[1], was=found)
    outcome, state, [attempt] = _one_attempt(memory_hooks)
    assert outcome == "pending" and state.status == "pending" and state.attempts == 1
    assert attempt.status_code == 0 and attempt.error == "invalid_url"
    assert len(memory_hooks.queue) == 1  # the retry is scheduled


def test_any_exception_while_posting_is_a_failed_attempt_with_an_excerpt_and_a_retry(
    memory_hooks: MemoryQueue, receiver: Receiver
) -> None:
    endpoint(memory_hooks, receiver.url)

    def broken(url: str, body: bytes, headers: dict[str, str]) -> Any:
        raise RuntimeError("the HTTP client broke in an unexpected way")

    memory_hooks.post = broken
    outcome, state, [attempt] = _one_attempt(memory_hooks)
    assert outcome == "pending" and state.status == "pending" and state.attempts == 1
    assert attempt.status_code == 0
    assert attempt.error.startswith("RuntimeError: the HTTP client broke")
    assert len(memory_hooks.queue) == 1 and receiver.received == []


# ---------------------------------------------------------------- 2. resend's failed_since


@pytest.mark.parametrize(
    "since",
    [
        "garbage",
        "2026-01-01T00:00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1969-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "",
        20260101,
    ],
)
def test_a_bad_failed_since_is_a_422_naming_the_field(handler: Any, since: Any) -> None:
    status, error, _ = post(handler, "/admin/webhook-resends", {"failed_since": since})
    assert status == 422, error
    assert error["error"]["code"] == "validation_error"
    [detail] = error["error"]["details"]
    assert detail["param"] == "failed_since" and "failed_since" in detail["message"]


def test_failed_since_with_any_offset_is_accepted(handler: Any) -> None:
    for since in ("2026-01-01T00:00:00Z", "2026-01-01T09:00:00+09:00", "2026-01-01T00:00:00.5-05:00"):
        status, done, _ = post(handler, "/admin/webhook-resends", {"failed_since": since})
        assert status == 200 and done["resent"] == 0, done


# ---------------------------------------------------------------- 4. resend naming an unknown endpoint


def test_a_resend_naming_an_unknown_or_deleted_endpoint_is_a_404(handler: Any) -> None:
    gone = created(handler)["id"]
    status, _, _ = call(
        handler, api_event("DELETE", f"{ENDPOINTS}/{gone}", path_parameters={"endpoint_id": gone})
    )
    assert status == 200
    for endpoint_id in ("we_" + "0" * 20, gone):
        for target in ({"failed_since": "2026-01-01T00:00:00Z"}, {"event_id": "evt_" + "0" * 24}):
            status, error, _ = post(handler, "/admin/webhook-resends", {**target, "endpoint_id": endpoint_id})
            assert status == 404, error
            assert error["error"]["code"] == "webhook_endpoint_not_found"
            assert error["error"]["param"] == "endpoint_id"


# ---------------------------------------------------------------- 5. unknown parameters, strict fields


def test_listing_endpoints_refuses_an_unknown_query_parameter(handler: Any) -> None:
    status, error, _ = call(handler, api_event("GET", ENDPOINTS, query={"foo": "1"}))
    assert status == 400 and error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "foo"
    status, page, _ = call(handler, api_event("GET", ENDPOINTS, query={"limit": "5"}))
    assert status == 200 and page["data"] == []


@pytest.mark.parametrize("overlap", [True, "10", 10.0, 10.5, None])
def test_rotation_overlap_must_be_an_integer(handler: Any, overlap: Any) -> None:
    endpoint_id = created(handler)["id"]
    path = f"{ENDPOINTS}/{endpoint_id}/rotate-secret"
    status, error, _ = post(
        handler, path, {"overlap_seconds": overlap}, path_parameters={"endpoint_id": endpoint_id}
    )
    assert status == 422, error
    [detail] = error["error"]["details"]
    assert detail["param"] == "overlap_seconds"
    status, rotated, _ = post(
        handler, path, {"overlap_seconds": 10}, path_parameters={"endpoint_id": endpoint_id}
    )
    assert status == 200 and rotated["secrets_active"] == 2


@pytest.mark.parametrize("enabled", ["true", "yes", 1, 0])
def test_enabled_must_be_a_boolean(handler: Any, enabled: Any) -> None:
    endpoint_id = created(handler)["id"]
    path = f"{ENDPOINTS}/{endpoint_id}"
    status, error, _ = post(handler, path, {"enabled": enabled}, path_parameters={"endpoint_id": endpoint_id})
    assert status == 422, error
    [detail] = error["error"]["details"]
    assert detail["param"] == "enabled"


# ---------------------------------------------------------------- 3. rotation keeps at most two secrets


def test_rotations_keep_at_most_the_new_secret_and_the_one_before_it(
    memory_hooks: MemoryQueue, receiver: Receiver
) -> None:
    from datetime import timedelta

    from neruba.logic.webhooks import endpoints, verify
    from neruba.models.webhooks import SecretRotation
    from tests.functional.webhooks.conftest import ADMIN

    made = endpoint(memory_hooks, receiver.url)
    shown = [made["secret"]]
    week = SecretRotation(overlap_seconds=7 * 86_400)
    for n in range(12):
        rotated = endpoints.rotate(memory_hooks, made["id"], week, ADMIN, NOW + timedelta(minutes=n))
        shown.append(rotated["secret"])
        assert rotated["secrets_active"] == 2
    at = NOW + timedelta(hours=1)
    new_customer("acme")
    relay.relay_once(memory_hooks, at)
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, at) == "delivered"
    raw, headers = receiver.received[-1]
    header = headers["Neruba-Signature"]
    assert header.count("v1=") == 2
    assert verify(raw, header, [shown[-1]], now=at.timestamp())
    assert verify(raw, header, [shown[-2]], now=at.timestamp())
    assert not any(verify(raw, header, [old], now=at.timestamp()) for old in shown[:-2])
    # a rotation without overlap ends every older secret at once
    rotated = endpoints.rotate(memory_hooks, made["id"], SecretRotation(overlap_seconds=0), ADMIN, at)
    assert rotated["secrets_active"] == 1


def test_an_endpoint_stored_with_more_active_secrets_signs_with_the_two_newest(
    memory_hooks: MemoryQueue,
) -> None:
    from datetime import timedelta

    from neruba.logic.webhooks import endpoints
    from neruba.timefmt import iso

    made = endpoint(memory_hooks, "http://127.0.0.1:8123/hooks")
    found = memory_hooks.repo.endpoint(made["id"])
    assert found is not None
    later = iso(NOW + timedelta(days=3))
    stored = [found[1][0], *({"secret": f"whsec_old{n}", "expires_at": later} for n in range(3))]
    memory_hooks.repo.put_endpoint(found[0], stored, was=found)  # as rotations before the rule left it
    assert endpoints.get(memory_hooks, made["id"], NOW)["secrets_active"] == 2
    assert delivery.active_secrets(stored, NOW) == [stored[0]["secret"], "whsec_old0"]
