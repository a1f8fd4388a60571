"""Archiving a customer and listing invoices across customers, through the sync and async clients over
a scripted transport."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import neruba_client as nc
from neruba_client import errors, models
from tests.client.conftest import Script, customer, error, invoice


def _archived(external_id: str = "acme") -> dict[str, Any]:
    return {**customer(external_id), "archived_at": "2026-02-03T04:05:06Z"}


def _invoices(rows: list[tuple[str, str]], cursor: str | None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [invoice(i, c) for i, c in rows],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        },
    )


def test_archive_posts_the_reason_and_answers_the_archived_customer(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=_archived("acme/eu")))
    got = make_client(script).customers.archive("acme/eu", reason="closed the account", ticket="T-9")
    assert got.archived_at == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    (request,) = script.requests
    assert request.method == "POST"
    assert request.url.raw_path == b"/base/v1/customers/acme%2Feu/archive"
    assert json.loads(request.content) == {"reason": "closed the account", "ticket": "T-9"}


def test_archive_without_a_reason_sends_an_empty_object(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=_archived()))
    make_client(script).customers.archive("acme")
    assert json.loads(script.requests[0].content) == {}


def test_archive_is_retried_after_a_5xx_since_archiving_again_changes_nothing(
    make_client: Any, sleeps: list[float]
) -> None:
    script = Script(error(503, "unavailable", "api_error"), httpx.Response(200, json=_archived()))
    got = make_client(script).customers.archive("acme", reason="churned")
    assert got.archived_at is not None
    assert len(script.requests) == 2 and len(sleeps) == 1
    assert script.requests[0].content == script.requests[1].content


def test_a_customer_not_archived_reads_archived_at_as_none(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=customer()))
    assert make_client(script).customers.retrieve("acme").archived_at is None


def test_invoices_of_one_status_across_customers_follow_the_cursor(make_client: Any) -> None:
    script = Script(
        _invoices([("in_3", "acme"), ("in_2", "globex")], "cur1"),
        _invoices([("in_1", "initech")], None),
    )
    listing = make_client(script).invoices.list(
        status="payment_failed",
        period_from=datetime(2026, 1, 1, tzinfo=UTC),
        period_to="2026-03-01T00:00:00Z",
        limit=2,
    )
    assert script.requests == []  # lazy until iterated
    got = [(i.id, i.customer_id) for i in listing]
    assert got == [("in_3", "acme"), ("in_2", "globex"), ("in_1", "initech")]
    first, second = (dict(r.url.params) for r in script.requests)
    assert first == {
        "status": "payment_failed",
        "period_from": "2026-01-01T00:00:00+00:00",
        "period_to": "2026-03-01T00:00:00Z",
        "limit": "2",
    }
    assert second == {**first, "starting_after": "cur1"}  # the cursor is good for the same filters only


def test_invoice_listing_without_a_filter_raises_filter_required(make_client: Any) -> None:
    script = Script(error(400, "filter_required"))
    with pytest.raises(errors.InvalidRequestError) as caught:
        list(make_client(script).invoices.list())
    assert caught.value.code == "filter_required" and caught.value.status == 400
    assert len(script.requests) == 1 and dict(script.requests[0].url.params) == {}


def test_async_client_archives_and_lists_invoices_across_customers() -> None:
    script = Script(
        httpx.Response(200, json=_archived()),
        _invoices([("in_2", "acme")], "cur1"),
        _invoices([("in_1", "globex")], None),
    )

    async def main() -> tuple[models.CustomerView, list[str]]:
        async with nc.AsyncNeruba("k", base_url="http://x", http_transport=httpx.MockTransport(script)) as c:
            archived = await c.customers.archive("acme", reason="churned")
            ids = [i.id async for i in c.invoices.list(status="payment_failed")]
            return archived, ids

    archived, ids = asyncio.run(main())
    assert archived.archived_at is not None and ids == ["in_2", "in_1"]
    assert [r.url.path for r in script.requests] == [
        "/v1/customers/acme/archive",
        "/v1/invoices",
        "/v1/invoices",
    ]
    assert [r.url.params.get("starting_after") for r in script.requests[1:]] == [None, "cur1"]
