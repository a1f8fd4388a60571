"""``GET /v1/invoices`` across customers: by status, by period, cursor-paged (``invoices-by-status``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event, call


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


@pytest.fixture
def billed(world: World, monkeypatch: Any) -> list[dict[str, Any]]:
    """Finalized invoices of acme and globex for the first period."""
    for customer in ("acme", "globex"):
        world.subscribe(customer)
        world.usage(customer, START + day(0, 2), 3)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    schedule(world, now + day(0, 2))
    return world.invoices("acme") + world.invoices("globex")


def _list(api: Any, query: dict[str, str], scopes: str = "read") -> tuple[int, Any]:
    status, body, _ = call(api, api_event("GET", "/v1/invoices", query=query, scopes=scopes))
    return status, body


def _all(api: Any, query: dict[str, str]) -> list[str]:
    ids: list[str] = []
    while True:
        status, page = _list(api, query)
        assert status == 200, page
        ids += [i["id"] for i in page["data"]]
        if not page["has_more"]:
            return ids
        query = {**query, "starting_after": page["next_cursor"]}


def test_lists_one_status_across_customers_page_by_page(api: Any, billed: list[dict[str, Any]]) -> None:
    finalized = {i["id"] for i in billed if i["status"] == "finalized"}
    assert {i["customer_id"] for i in billed if i["id"] in finalized} == {"acme", "globex"}
    # WHEN the finalized invoices of every customer are read one per page
    ids = _all(api, {"status": "finalized", "limit": "1"})
    # THEN each comes once, and only those
    assert sorted(ids) == sorted(finalized)
    status, drafts = _list(api, {"status": "draft"})
    assert (status, drafts["data"]) == (200, [])


def test_filters_by_period_and_customer(api: Any, billed: list[dict[str, Any]]) -> None:
    starts = sorted({i["period_start"] for i in billed})
    first = starts[0]
    before = (START - day(40)).isoformat()
    # period_from is inclusive, period_to exclusive, on the invoice's period start
    in_first = {i["id"] for i in billed if i["period_start"] == first and i["status"] == "finalized"}
    got = _all(
        api,
        {"status": "finalized", "period_from": START.isoformat(), "period_to": (START + day(1)).isoformat()},
    )
    assert set(got) == in_first and in_first
    assert _all(api, {"status": "finalized", "period_to": START.isoformat()}) == [
        i["id"] for i in billed if i["period_start"] < first
    ]
    assert _all(api, {"status": "finalized", "period_from": before, "customer_id": "globex"}) != []
    assert {
        i["customer_id"] for i in _list(api, {"customer_id": "globex", "period_from": before})[1]["data"]
    } == {"globex"}
    # the customer's own list keeps working without a status
    assert sorted(_all(api, {"customer_id": "acme"})) == sorted(
        i["id"] for i in billed if i["customer_id"] == "acme"
    )


def _cursor(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: {"S": v} for k, v in key.items()}).encode()).decode()


def test_bad_filters_and_cursors_are_4xx(api: Any, billed: list[dict[str, Any]]) -> None:
    acme_page = _list(api, {"customer_id": "acme", "limit": "1"})[1]
    status_page = _list(api, {"status": "finalized", "limit": "1"})[1]
    assert acme_page["has_more"] and status_page["has_more"]
    cases = [
        ({}, 400, "filter_required"),
        ({"status": "open"}, 422, "validation_error"),
        (
            {"status": "paid", "period_from": "2026-02-01T00:00:00Z", "period_to": "2026-01-01T00:00:00Z"},
            400,
            "invalid_time_range",
        ),
        ({"status": "paid", "period_from": "2026-02-01T00:00:00"}, 400, "invalid_time_range"),
        ({"status": "paid", "limit": "101"}, 422, "validation_error"),
        ({"status": "paid", "period": "2026-01"}, 400, "unknown_parameter"),
        ({"status": "paid", "starting_after": "garbage"}, 400, "invalid_cursor"),
        # a cursor of the customer's list on the cross-customer list, and the other way round
        ({"status": "finalized", "starting_after": acme_page["next_cursor"]}, 400, "invalid_cursor"),
        ({"customer_id": "acme", "starting_after": status_page["next_cursor"]}, 400, "invalid_cursor"),
        # a cursor of another status, and one outside the period asked
        ({"status": "paid", "starting_after": status_page["next_cursor"]}, 400, "invalid_cursor"),
        (
            {
                "status": "finalized",
                "period_from": (START + day(400)).isoformat(),
                "starting_after": status_page["next_cursor"],
            },
            400,
            "invalid_cursor",
        ),
        (
            {
                "status": "finalized",
                "starting_after": _cursor(
                    {"status": "finalized", "list_sk": "2026#in_1", "pk": "INV#in_2", "sk": "#"}
                ),
            },
            400,
            "invalid_cursor",
        ),
    ]
    for query, status, code in cases:
        got, body = _list(api, query)
        assert (got, body["error"]["code"]) == (status, code), (query, body)
    got, body = _list(api, {"status": "paid"}, scopes="ingest")
    assert (got, body["error"]["code"]) == (403, "insufficient_scope")


def _edited(cursor: str, old: str, new: str) -> str:
    """The cursor with every text value ``old`` in its JSON replaced by ``new`` (a hand-edited cursor)."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return new if value == old else value

    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps(walk(data)).encode()).decode().rstrip("=")


def test_a_cursor_is_bound_to_the_filters_that_produced_it(api: Any, billed: list[dict[str, Any]]) -> None:
    # GIVEN genuine second-page cursors of a customer's list and of a status list
    acme_page = _list(api, {"customer_id": "acme", "limit": "1"})[1]
    status_page = _list(api, {"status": "finalized", "limit": "1"})[1]
    assert acme_page["has_more"] and status_page["has_more"]
    acme_cursor, status_cursor = acme_page["next_cursor"], status_page["next_cursor"]
    first_start = min(i["period_start"] for i in billed)
    cases = {
        # the same partition, another filter: a status added to the customer's list
        "status added": ({"customer_id": "acme", "status": "draft"}, acme_cursor),
        "status added (finalized)": ({"customer_id": "acme", "status": "finalized"}, acme_cursor),
        # a period bound added that the cursor's position still falls in
        "period_from added": ({"customer_id": "acme", "period_from": "2000-01-01T00:00:00Z"}, acme_cursor),
        "period_to added": ({"status": "finalized", "period_to": "2999-01-01T00:00:00Z"}, status_cursor),
        # the cursor edited to another status and used on that status's list
        "status edited": ({"status": "paid"}, _edited(status_cursor, "finalized", "paid")),
        "status edited (draft)": ({"status": "draft"}, _edited(status_cursor, "finalized", "draft")),
        # the position edited within the same list
        "position edited": (
            {"status": "finalized"},
            _edited(status_cursor, next(iter(_strings(status_cursor, "#"))), first_start[:4] + "#in_x"),
        ),
    }
    for name, (query, cursor) in cases.items():
        got, body = _list(api, {**query, "starting_after": cursor})
        # THEN 400 invalid_cursor, never a page (empty or not) of a list the cursor was not made for
        assert (got, body.get("error", {}).get("code")) == (400, "invalid_cursor"), (name, got, body)
    # and each cursor still reads its own next page
    for query, cursor in (
        ({"customer_id": "acme", "limit": "1"}, acme_cursor),
        ({"status": "finalized"}, status_cursor),
    ):
        got, body = _list(api, {**query, "starting_after": cursor})
        assert got == 200 and body["data"], body


def _strings(cursor: str, needle: str) -> list[str]:
    """The text values of a cursor's JSON containing ``needle``."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, str) and needle in value:
            found.append(value)

    walk(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))))
    return found
