"""The product over real HTTP on the local stack: health, keys, ingest through the queue and the worker,
reading the outcome back, the docs posture, and the catalog."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration


def _http(base: str, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text.startswith(b"{") else text.decode()


@pytest.fixture(scope="module")
def demo(local_stack: Any) -> Any:
    from neruba_tools.local.seed import seed_demo

    return seed_demo()


def test_health_and_ready_need_no_key(local_stack: Any) -> None:
    assert _http(local_stack.base_url, "GET", "/health")[0] == 200
    status, body = _http(local_stack.base_url, "GET", "/ready")
    assert status == 200, body


def test_missing_and_wrong_keys_get_401_in_the_error_shape(local_stack: Any, demo: Any) -> None:
    for key in (None, "nrb_0123456789ab_" + "z" * 43):
        status, body = _http(local_stack.base_url, "GET", "/v1/meters", key=key)
        assert status == 401
        assert body["error"]["code"] == "unauthorized"
        assert body["error"]["request_id"]


def test_ingest_is_metered_and_read_back(local_stack: Any, demo: Any) -> None:
    # GIVEN the seeded demo customer and meter
    event = {
        "transaction_id": "e2e-1",
        "customer_id": demo.customer_id,
        "code": demo.meter_code,
        "properties": {"value": 3},
    }
    # WHEN an event is sent twice over HTTP
    status, first = _http(local_stack.base_url, "POST", "/v1/events", demo.api_key, {"events": [event]})
    assert status == 202, first
    _http(local_stack.base_url, "POST", "/v1/events", demo.api_key, {"events": [event]})
    # THEN the pollers feed the worker, and the event reads back accepted once with a duplicate copy
    path = f"/v1/events/e2e-1?customer_id={demo.customer_id}"
    deadline = time.monotonic() + 20
    outcomes: list[str] = []
    while time.monotonic() < deadline:
        status, body = _http(local_stack.base_url, "GET", path, demo.api_key)
        if status == 200:
            outcomes = sorted(o["outcome"] for o in body["outcomes"])
            if len(outcomes) == 2:
                break
        time.sleep(0.2)
    assert outcomes == ["accepted", "duplicate"]
    assert (
        body["outcomes"][0]["request_id"] == first["request_id"]
        or body["outcomes"][1]["request_id"] == first["request_id"]
    )


def test_demo_seed_is_idempotent_and_subscribed(local_stack: Any, demo: Any) -> None:
    from neruba_tools.local.seed import seed_demo

    again = seed_demo()
    assert again.subscription_id == demo.subscription_id
    assert again.api_key == demo.api_key  # the demo key is reused, not minted again
    status, body = _http(
        local_stack.base_url, "GET", f"/v1/subscriptions/{demo.subscription_id}", demo.api_key
    )
    assert status == 200, body
    assert body["phases"][0]["plan_code"] == demo.plan_code


def test_docs_are_served_locally(local_stack: Any) -> None:
    status, spec = _http(local_stack.base_url, "GET", "/openapi.json")
    assert status == 200
    assert "/v1/events" in spec["paths"]


def test_swagger_try_it_out_reaches_the_local_routes(local_stack: Any) -> None:
    # the document Swagger UI loads names a server under which the routes answer (no stage prefix locally)
    status, spec = _http(local_stack.base_url, "GET", "/docs?format=json")
    assert status == 200
    (server,) = spec["servers"]
    status, body = _http(local_stack.base_url.rstrip("/") + server["url"].rstrip("/"), "GET", "/health")
    assert status == 200 and body["status"] == "ok"
