"""Times at the edge of what a datetime holds: a valid RFC 3339 time whose UTC instant falls outside years
1..9999 (0001-01-01T00:00:00+14:00, 9999-12-31T23:59:59-14:00) is a 4xx with a code on every route that
takes a time, in the query or in the body, never a 500."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.support.api import api_event, call

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]

QUERY_ROUTES = [
    ("billing_api", "/v1/invoices", {"status": "draft"}, "period_from"),
    ("billing_api", "/v1/invoices", {"status": "draft"}, "period_to"),
    ("billing_api", "/v1/invoices", {"customer_id": "acme"}, "period_from"),
    ("read_api", "/v1/ingest/outcomes", {"to": "2026-01-01T00:00:00Z"}, "from"),
    ("read_api", "/v1/ingest/outcomes", {"from": "2026-01-01T00:00:00Z"}, "to"),
    ("read_api", "/v1/customers/acme/usage", {"meter": "m", "to": "2026-01-01T00:00:00Z"}, "from"),
    ("stripe_admin_api", "/admin/stripe-events", {}, "from"),
]

BODY_ROUTES = [
    ("admin_api", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "p"}, "start_at"),
    ("billing_api", "/admin/billing-runs", {"reason": "edge case"}, "at"),
]


def _send(folder: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    module = importlib.import_module(f"functions.{folder}.app")
    status, body, _ = call(module.lambda_handler, api_event(method, path, scopes="ingest read admin", **kw))
    return status, body


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize(("folder", "path", "query", "param"), QUERY_ROUTES)
def test_a_time_outside_the_representable_range_in_the_query_is_a_4xx(
    aws: dict[str, str], folder: str, path: str, query: dict[str, str], param: str, edge: str
) -> None:
    status, body = _send(folder, "GET", path, query={**query, param: edge})
    assert 400 <= status < 500, (status, body)
    assert isinstance(body["error"]["code"], str), body


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize(("folder", "path", "body", "param"), BODY_ROUTES)
def test_a_time_outside_the_representable_range_in_a_body_is_a_4xx(
    aws: dict[str, str], folder: str, path: str, body: dict[str, Any], param: str, edge: str
) -> None:
    status, answer = _send(folder, "POST", path, body={**body, param: edge})
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer["error"]["code"], str), answer
