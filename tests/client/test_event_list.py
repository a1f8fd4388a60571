"""Listing a customer's events through the sync and async clients over a scripted transport: the query,
the typed events and the lazy pagination over the cursor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

import neruba_client as nc
from neruba_client import models
from tests.client.conftest import Script


def _event(tx: str, code: str = "api_calls") -> dict[str, Any]:
    return {
        "object": "event",
        "transaction_id": tx,
        "customer_id": "acme",
        "code": code,
        "timestamp": "2026-03-01T10:15:00+00:00",
        "properties": {"tokens": "12.5"},
        "status": "accepted",
        "reason": None,
        "reason_message": None,
        "late": False,
        "received_at": "2026-03-01T10:15:01+00:00",
        "outcomes": [
            {"outcome": "accepted", "request_id": "r1", "copy_id": "r1:0", "at": "2026-03-01T10:15:02+00:00"},
            {
                "outcome": "duplicate",
                "request_id": "r2",
                "copy_id": "r2:0",
                "at": "2026-03-01T10:16:02+00:00",
            },
        ],
        "copies": {"duplicate": 1},
    }


def _page(ids: list[str], cursor: str | None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [_event(i) for i in ids],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        },
    )


def test_events_are_listed_lazily_page_by_page_with_the_same_filters(make_client: Any) -> None:
    script = Script(_page(["tx-1", "tx-2"], "cur1"), _page(["tx-3"], None))
    listing = make_client(script).events.list(
        customer_id="acme",
        meter="api_calls",
        from_=datetime(2026, 3, 1, tzinfo=UTC),
        to="2026-03-02T00:00:00Z",
        limit=2,
    )
    assert script.requests == []  # nothing is read until iterated
    got = list(listing)
    assert [e.transaction_id for e in got] == ["tx-1", "tx-2", "tx-3"]
    assert isinstance(got[0], models.StoredEvent) and got[0].outcomes[1].outcome == "duplicate"
    assert got[0].timestamp == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    first, second = (dict(r.url.params) for r in script.requests)
    assert [r.url.path for r in script.requests] == ["/base/v1/events"] * 2
    assert first == {
        "customer_id": "acme",
        "meter": "api_calls",
        "from": "2026-03-01T00:00:00+00:00",
        "to": "2026-03-02T00:00:00Z",
        "limit": "2",
    }
    assert second == {**first, "starting_after": "cur1"}


def test_async_client_lists_events() -> None:
    script = Script(_page(["tx-1"], "cur1"), _page(["tx-2"], None))

    async def main() -> list[str]:
        async with nc.AsyncNeruba("k", base_url="http://x", http_transport=httpx.MockTransport(script)) as c:
            return [e.transaction_id async for e in c.events.list(customer_id="acme", from_="a", to="b")]

    assert asyncio.run(main()) == ["tx-1", "tx-2"]
    assert [r.url.params.get("starting_after") for r in script.requests] == [None, "cur1"]
