"""``GET /v1/events``: a customer's stored events in time order, filtered by meter and time, cursor-paged."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev
from tests.support.api import api_event, call

BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def _at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


def _list(query: dict[str, str], scopes: str = "read") -> tuple[int, Any]:
    from functions.read_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("GET", "/v1/events", query=query, scopes=scopes))
    return status, body


@pytest.fixture
def stored(catalog: Any, send: Any, process: Any) -> None:
    send(
        ev("a1", timestamp=_at(0)),
        ev("t1", code="tokens", timestamp=_at(10), properties={"tokens": 5, "model": "m"}),
        ev("a2", timestamp=_at(20)),
        ev("a3", timestamp=_at(30)),
        ev("g1", customer="globex", timestamp=_at(15)),
    )
    process()


def test_lists_a_customers_events_in_time_order_page_by_page(stored: None) -> None:
    # WHEN acme's events are read two at a time
    seen: list[str] = []
    query = {"customer_id": "acme", "limit": "2"}
    pages = 0
    while True:
        status, page = _list(query)
        assert status == 200 and page["object"] == "list", page
        assert len(page["data"]) <= 2
        seen += [e["transaction_id"] for e in page["data"]]
        pages += 1
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        query = {**query, "starting_after": page["next_cursor"]}
    # THEN every event of acme comes once, oldest first, and none of globex's
    assert seen == ["a1", "t1", "a2", "a3"]
    assert pages in (2, 3)
    # AND each item is the stored event as GET /v1/events/{transaction_id} shows it
    status, page = _list({"customer_id": "acme", "limit": "1"})
    assert page["data"][0]["object"] == "event" and page["data"][0]["status"] == "accepted"
    assert page["data"][0]["outcomes"][0]["outcome"] == "accepted"


def test_filters_by_meter_and_time(stored: None) -> None:
    status, page = _list({"customer_id": "acme", "meter": "tokens"})
    assert status == 200 and [e["transaction_id"] for e in page["data"]] == ["t1"]
    # from is inclusive, to exclusive
    status, page = _list({"customer_id": "acme", "from": _at(10), "to": _at(30)})
    assert status == 200 and [e["transaction_id"] for e in page["data"]] == ["t1", "a2"]
    status, page = _list({"customer_id": "acme", "from": _at(20)})
    assert [e["transaction_id"] for e in page["data"]] == ["a2", "a3"]
    status, page = _list({"customer_id": "acme", "to": _at(10)})
    assert [e["transaction_id"] for e in page["data"]] == ["a1"]
    # a filtered page that ends early still hands a working cursor
    status, page = _list({"customer_id": "acme", "meter": "api_calls", "limit": "2"})
    assert [e["transaction_id"] for e in page["data"]] == ["a1", "a2"] and page["has_more"]
    status, rest = _list({"customer_id": "acme", "meter": "api_calls", "starting_after": page["next_cursor"]})
    assert [e["transaction_id"] for e in rest["data"]] == ["a3"]


def test_a_customer_without_events_is_an_empty_list(catalog: Any) -> None:
    status, page = _list({"customer_id": "nobody"})
    assert (status, page["data"], page["has_more"]) == (200, [], False)


def _cursor(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: {"S": v} for k, v in key.items()}).encode()).decode()


@pytest.mark.parametrize(
    ("query", "status", "code", "param"),
    [
        ({}, 422, "validation_error", "query.customer_id"),
        ({"customer_id": "acme", "from": _at(10), "to": _at(10)}, 400, "invalid_time_range", "to"),
        ({"customer_id": "acme", "from": _at(20), "to": _at(10)}, 400, "invalid_time_range", "to"),
        ({"customer_id": "acme", "from": "2026-01-01T00:00:00"}, 400, "invalid_time_range", "from"),
        ({"customer_id": "acme", "from": "yesterday"}, 422, "validation_error", "query.from"),
        ({"customer_id": "acme", "limit": "0"}, 422, "validation_error", "query.limit"),
        ({"customer_id": "acme", "limit": "1000000"}, 422, "validation_error", "query.limit"),
        ({"customer_id": "acme", "meter": "bad code!"}, 422, "validation_error", "query.meter"),
        ({"customer_id": "acme", "colour": "blue"}, 400, "unknown_parameter", "colour"),
        ({"customer_id": "acme", "starting_after": "not-a-cursor"}, 400, "invalid_cursor", "starting_after"),
        (
            {
                "customer_id": "acme",
                "starting_after": _cursor({"pk": "EVT#globex#g1", "sk": "#", "c": "globex", "ts": _at(15)}),
            },
            400,
            "invalid_cursor",
            "starting_after",
        ),
        (
            {
                "customer_id": "acme",
                "starting_after": _cursor({"pk": "EVT#globex#g1", "sk": "#", "c": "acme", "ts": _at(15)}),
            },
            400,
            "invalid_cursor",
            "starting_after",
        ),
        (
            {
                "customer_id": "acme",
                "from": _at(20),
                "starting_after": _cursor({"pk": "EVT#acme#a1", "sk": "#", "c": "acme", "ts": _at(0)}),
            },
            400,
            "invalid_cursor",
            "starting_after",
        ),
        (
            {
                "customer_id": "acme",
                "starting_after": _cursor({"list_pk": "INVC#acme", "list_sk": "1", "pk": "INV#1", "sk": "#"}),
            },
            400,
            "invalid_cursor",
            "starting_after",
        ),
    ],
    ids=[
        "no customer",
        "from equals to",
        "from after to",
        "from without offset",
        "from not a time",
        "limit 0",
        "huge limit",
        "bad meter code",
        "unknown filter",
        "garbage cursor",
        "another customer's cursor",
        "a cursor naming another customer's event",
        "a cursor outside the time range",
        "another list's cursor",
    ],
)
def test_bad_filters_and_cursors_are_4xx(
    stored: None, query: dict[str, str], status: int, code: str, param: str
) -> None:
    got, body = _list(query)
    assert (got, body["error"]["code"]) == (status, code), body
    params = [body["error"].get("param")] + [d.get("param") for d in body["error"].get("details") or []]
    assert param in params, body


def test_needs_the_read_scope(catalog: Any) -> None:
    got, body = _list({"customer_id": "acme"}, scopes="ingest")
    assert (got, body["error"]["code"]) == (403, "insufficient_scope")
