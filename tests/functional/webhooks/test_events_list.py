"""GET /admin/webhook-events: a customer's events newest first, its filters, its cursor bound to the
query, and the 4xx answers of bad filters."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import api_event, call

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def handler(aws: dict[str, str]) -> Any:
    return importlib.import_module("functions.webhooks_api.app").lambda_handler


def emit(events: list[tuple[str, str, datetime]]) -> list[str]:
    """Write (type, customer, created) events through the outbox and relay them; their ids in order."""
    from neruba import bootstrap
    from neruba.dal.transaction import Transaction
    from neruba.logic.webhooks import relay_once
    from neruba.logic.webhooks.outbox import notify

    ids = []
    for event_type, customer, created in events:
        unit = Transaction()
        ids.append(notify(unit, event_type, customer, {"n": len(ids)}, created))
        unit.commit()
    relay_once(bootstrap.webhooks(), datetime.now(UTC))
    return ids


def listed(handler: Any, **query: str) -> tuple[int, Any]:
    status, body, _ = call(handler, api_event("GET", "/admin/webhook-events", query=query))
    return status, body


def test_a_customers_events_newest_first_with_type_and_created_filters(handler: Any) -> None:
    kinds = ["customer.created", "invoice.created", "invoice.finalized", "invoice.created", "balance.low"]
    ids = emit([(k, "acme", T0 + timedelta(hours=n)) for n, k in enumerate(kinds)])
    emit([("customer.created", "other", T0)])
    status, page = listed(handler, customer_id="acme")
    assert status == 200 and page["has_more"] is False and page["next_cursor"] is None
    assert [e["id"] for e in page["data"]] == ids[::-1]
    assert [e["sequence"] for e in page["data"]] == [5, 4, 3, 2, 1]
    assert page["data"][0] == {
        "id": ids[4], "object": "event", "type": "balance.low", "customer_id": "acme", "sequence": 5,
        "created": "2026-03-01T16:00:00Z",
    }  # fmt: skip
    _, page = listed(handler, customer_id="acme", type="invoice.created")
    assert [e["id"] for e in page["data"]] == [ids[3], ids[1]]
    _, page = listed(
        handler, customer_id="acme", **{"from": "2026-03-01T13:00:00Z", "to": "2026-03-01T14:00:00Z"}
    )
    assert [e["id"] for e in page["data"]] == [ids[2], ids[1]]
    _, page = listed(handler, customer_id="nobody")
    assert page["data"] == [] and page["has_more"] is False


def test_pages_follow_the_cursor_and_a_cursor_of_other_filters_is_refused(handler: Any) -> None:
    ids = emit([("invoice.created" if n % 2 else "customer.updated", "acme", T0) for n in range(7)])
    seen: list[str] = []
    cursor = None
    while True:
        query = {"customer_id": "acme", "limit": "2", **({"starting_after": cursor} if cursor else {})}
        status, page = listed(handler, **query)
        assert status == 200 and len(page["data"]) <= 2
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == ids[::-1]
    _, first = listed(handler, customer_id="acme", limit="1", type="invoice.created")
    _, second = listed(handler, customer_id="acme", limit="5", type="invoice.created",
                       starting_after=first["next_cursor"])  # fmt: skip
    assert [e["id"] for e in first["data"] + second["data"]] == [ids[5], ids[3], ids[1]]
    for other in ({"type": "customer.updated"}, {"customer_id": "zeta"}, {"from": "2026-01-01T00:00:00Z"}):
        query = {
            "customer_id": "acme",
            "type": "invoice.created",
            "starting_after": first["next_cursor"],
            **other,
        }
        status, error = listed(handler, **query)
        assert status == 400 and error["error"]["code"] == "invalid_cursor", other


def test_a_relay_stopped_between_the_event_and_its_list_entry_lists_it_once_when_run_again(
    handler: Any,
) -> None:
    import boto3

    from neruba import bootstrap
    from neruba.settings import get_settings

    [evt] = emit([("customer.created", "acme", T0)])
    repo = bootstrap.webhooks().repo
    stored = repo.event(evt)
    assert stored is not None
    # the relay stopped after storing the event, before its list entry: the outbox item is still there
    boto3.client("dynamodb").delete_item(
        TableName=get_settings().ops_table, Key={"pk": {"S": "WHEVC#acme"}, "sk": {"S": f"{1:012d}"}}
    )
    _, page = listed(handler, customer_id="acme")
    assert page["data"] == []
    for _ in range(2):  # run again, twice
        assert repo.put_event(stored.summary(), "another body") == stored.body
    _, page = listed(handler, customer_id="acme")
    assert [(e["id"], e["sequence"]) for e in page["data"]] == [(evt, 1)]


def test_events_of_no_customer_list_under_global(handler: Any) -> None:
    [evt] = emit([("dlq.message_parked", None, T0)])  # type: ignore[list-item]
    status, page = listed(handler, customer_id="_global")
    assert status == 200 and [e["id"] for e in page["data"]] == [evt]


@pytest.mark.parametrize(
    ("query", "status", "code", "param"),
    [
        ({}, 422, "validation_error", None),
        ({"customer_id": "acme", "type": "invoice.exploded"}, 422, "validation_error", None),
        ({"customer_id": "bad id"}, 422, "validation_error", None),
        ({"customer_id": "acme", "from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, 400,
         "invalid_range", "from"),
        ({"customer_id": "acme", "from": "yesterday"}, 422, "validation_error", None),
        ({"customer_id": "acme", "starting_after": "not-a-cursor"}, 400, "invalid_cursor", "starting_after"),
        ({"customer_id": "acme", "status": "failed"}, 400, "unknown_parameter", "status"),
        ({"customer_id": "acme", "limit": "0"}, 422, "validation_error", None),
    ],
)  # fmt: skip
def test_bad_filters_are_4xx_with_a_code(
    handler: Any, query: dict[str, str], status: int, code: str, param: str | None
) -> None:
    got, error = listed(handler, **query)
    assert got == status and error["error"]["code"] == code
    if param is not None:
        assert error["error"]["param"] == param


def test_the_list_needs_the_admin_scope(handler: Any) -> None:
    query = {"customer_id": "acme"}
    status, error, _ = call(handler, api_event("GET", "/admin/webhook-events", query=query, scopes="read"))
    assert status == 403 and error["error"]["code"] == "insufficient_scope"


def test_a_narrow_filter_reads_a_bounded_number_of_entries_a_page_and_goes_on_by_cursor(
    handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neruba.dal.webhooks as stored

    monkeypatch.setattr(stored, "READ_BUDGET", 3)
    ids = emit([("invoice.created", "acme", T0)] + [("customer.updated", "acme", T0)] * 5)
    status, first = listed(handler, customer_id="acme", type="invoice.created", limit="10")
    assert status == 200 and first["data"] == [] and first["has_more"] is True  # 3 entries read, none kept
    seen, cursor, pages = [], first["next_cursor"], 1
    while cursor is not None:
        _, page = listed(
            handler, customer_id="acme", type="invoice.created", limit="10", starting_after=cursor
        )
        seen += [e["id"] for e in page["data"]]
        cursor, pages = page["next_cursor"], pages + 1
    assert seen == [ids[0]] and pages <= 3
