"""Request media types end to end: over real HTTP, through the local gateway and authorizer, to the API
functions. Any spelling of JSON is read as JSON; any other declared type is 415 in the one error shape."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration

ACCEPTED = [
    "application/json",
    "APPLICATION/JSON",
    "application/json; charset=UTF-8",
    "application/vnd.api+json",
    None,
]
REFUSED = ["text/plain", "application/xml", "application/x-www-form-urlencoded", "TEXT/HTML; charset=utf-8"]


@pytest.fixture(scope="module")
def admin_key(local_stack: Any) -> str:
    from neruba_tools.local.seed import seed_demo

    return seed_demo().api_key


def _send(
    base: str, method: str, path: str, key: str | None, body: bytes, content_type: str | None
) -> tuple[int, Any]:
    """One request with exactly the headers given (http.client adds no Content-Type of its own)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)
    headers = {"Content-Length": str(len(body))}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
    finally:
        connection.close()
    return response.status, json.loads(text) if text.startswith(b"{") else text.decode()


@pytest.mark.parametrize("content_type", ACCEPTED, ids=[str(c) for c in ACCEPTED])
def test_json_in_any_spelling_creates_the_customer(
    local_stack: Any, admin_key: str, content_type: str | None
) -> None:
    external_id = f"media-{ACCEPTED.index(content_type)}"
    body = json.dumps({"external_id": external_id, "name": "Media", "currency": "USD"}).encode()
    # WHEN a customer is posted with the body declared as some spelling of JSON (or not declared)
    status, answer = _send(local_stack.base_url, "POST", "/v1/customers", admin_key, body, content_type)
    # THEN it is created
    assert status == 201, answer
    assert _send(local_stack.base_url, "GET", f"/v1/customers/{external_id}", admin_key, b"", None)[0] == 200


@pytest.mark.parametrize("content_type", REFUSED)
def test_another_media_type_is_415_and_writes_nothing(
    local_stack: Any, admin_key: str, content_type: str
) -> None:
    external_id = f"refused-{REFUSED.index(content_type)}"
    body = json.dumps({"external_id": external_id, "name": "Media", "currency": "USD"}).encode()
    # WHEN a JSON body is declared as another media type
    status, answer = _send(local_stack.base_url, "POST", "/v1/customers", admin_key, body, content_type)
    # THEN 415 unsupported_media_type in the one error shape, and no customer
    assert status == 415, answer
    assert answer["error"]["code"] == "unsupported_media_type" and answer["error"]["request_id"]
    assert _send(local_stack.base_url, "GET", f"/v1/customers/{external_id}", admin_key, b"", None)[0] == 404


@pytest.mark.parametrize(
    ("path", "key"),
    [("/v1/events", True), ("/admin/customers/acme/credit-grants", True), ("/webhooks/stripe", False)],
)
def test_other_body_routes_answer_415_too(local_stack: Any, admin_key: str, path: str, key: bool) -> None:
    status, answer = _send(
        local_stack.base_url, "POST", path, admin_key if key else None, b"{}", "text/plain"
    )
    assert status == 415, answer
    assert answer["error"]["code"] == "unsupported_media_type"


def _headers_of(base: str, method: str, path: str, key: str | None) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {key}"} if key else {})
        response = connection.getresponse()
        text = response.read()
    finally:
        connection.close()
    return response.status, dict(response.getheaders()), json.loads(text) if text else None


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/events", "GET, POST"),
        ("POST", "/admin/dlqs", "GET"),
        ("DELETE", "/v1/invoices", "GET"),
        ("DELETE", "/v1/customers/acme", "GET, PATCH"),
        ("PUT", "/v1/customers", "GET, POST"),  # GET: the read function, POST: the admin one
    ],
)
def test_a_method_no_route_declares_is_405_through_the_gateway(
    local_stack: Any, admin_key: str, method: str, path: str, allow: str
) -> None:
    # WHEN a path is called with a method none of its events declares, with or without a key
    for key in (admin_key, None):
        status, headers, answer = _headers_of(local_stack.base_url, method, path, key)
        # THEN the gateway routes it to the path's ANY event: 405 with every method the path serves
        assert status == 405, answer
        assert answer["error"]["code"] == "method_not_allowed"
        assert headers["Allow"] == allow
        assert headers["X-Request-Id"] == answer["error"]["request_id"]
        assert headers["Cache-Control"] == "no-store"


def test_a_declared_method_still_reaches_its_own_function(local_stack: Any, admin_key: str) -> None:
    # WHEN GET is sent to paths that also have an ANY event
    status, headers, answer = _headers_of(local_stack.base_url, "GET", "/v1/customers", admin_key)
    # THEN the read function answers it
    assert status == 200, answer
    assert "Allow" not in headers
    # AND without a key the authorizer still refuses it (the ANY event's NONE does not open GET)
    status, _, answer = _headers_of(local_stack.base_url, "GET", "/v1/customers", None)
    assert status == 401, answer
