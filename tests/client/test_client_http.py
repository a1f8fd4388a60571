"""The sync and async clients over a scripted transport: auth, errors, retries, idempotency keys,
pagination."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

import neruba_client as nc
from neruba_client import errors
from tests.client.conftest import Script, customer, error


def test_requests_carry_the_key_and_the_base_url(make_client: Any) -> None:
    script = Script(httpx.Response(200, json=customer()))
    client = make_client(script)
    got = client.customers.retrieve("acme/1")
    assert got.external_id == "acme"
    (request,) = script.requests
    assert request.headers["authorization"] == "Bearer nrb_test_key"
    assert str(request.url) == "https://api.example.test/base/v1/customers/acme%2F1"
    assert request.headers["user-agent"].startswith("neruba-client-python/")


def test_a_missing_key_or_base_url_is_refused_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NERUBA_API_KEY", raising=False)
    monkeypatch.delenv("NERUBA_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="API key"):
        nc.Neruba(base_url="http://x")
    with pytest.raises(ValueError, match="base URL"):
        nc.Neruba("k")
    monkeypatch.setenv("NERUBA_API_KEY", "k2")
    monkeypatch.setenv("NERUBA_BASE_URL", "http://y/")
    assert nc.Neruba().config.base_url == "http://y"


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (400, "invalid_request_error", errors.InvalidRequestError),
        (404, "invalid_request_error", errors.InvalidRequestError),
        (401, "authentication_error", errors.AuthenticationError),
        (403, "permission_error", errors.PermissionDeniedError),
        (409, "idempotency_error", errors.IdempotencyError),
        (500, "api_error", errors.ServerError),
        (429, "api_error", errors.RateLimitError),
    ],
)
def test_error_answers_raise_one_class_per_type(
    make_client: Any, status: int, error_type: str, expected: type[errors.APIError]
) -> None:
    answer = error(status, "some_code", error_type, fields={"param": "customer_id"})
    client = make_client(Script(answer), retry=nc.RetryPolicy(max_retries=0))
    with pytest.raises(expected) as caught:
        client.customers.retrieve("acme")
    raised = caught.value
    assert isinstance(raised, errors.APIError) and isinstance(raised, errors.NerubaError)
    assert (raised.status, raised.code, raised.type, raised.param, raised.request_id) == (
        status,
        "some_code",
        error_type,
        "customer_id",
        "req-1",
    )


def test_an_answer_outside_the_error_shape_still_raises_with_its_status(make_client: Any) -> None:
    client = make_client(Script(httpx.Response(502, text="Bad gateway")), retry=nc.RetryPolicy(max_retries=0))
    with pytest.raises(errors.ServerError) as caught:
        client.customers.retrieve("acme")
    assert caught.value.status == 502 and caught.value.code == "http_502"


def test_5xx_and_network_errors_are_retried_on_reads(make_client: Any, sleeps: list[float]) -> None:
    script = Script(
        error(503, "unavailable", "api_error"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(200, json=customer()),
    )
    client = make_client(script, rng=random.Random(7))
    assert client.customers.retrieve("acme").external_id == "acme"
    assert len(script.requests) == 4
    assert len(sleeps) == 3
    # full jitter: each wait is within [0, base * 2**attempt]
    for attempt, waited in enumerate(sleeps):
        assert 0.0 <= waited <= 0.25 * 2**attempt


def test_retries_stop_after_max_retries_and_raise_the_last_error(
    make_client: Any, sleeps: list[float]
) -> None:
    script = Script(error(500, "internal_error", "api_error"))
    client = make_client(script, retry=nc.RetryPolicy(max_retries=2))
    with pytest.raises(errors.ServerError):
        client.customers.retrieve("acme")
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_a_timeout_raises_apitimeouterror_after_the_retries(make_client: Any) -> None:
    client = make_client(Script(httpx.ReadTimeout("slow")), retry=nc.RetryPolicy(max_retries=1))
    with pytest.raises(errors.APITimeoutError):
        client.customers.retrieve("acme")


def test_retry_after_is_honoured(make_client: Any, sleeps: list[float]) -> None:
    script = Script(
        error(429, "temporarily_unavailable", "api_error", headers={"Retry-After": "3"}),
        httpx.Response(200, json=customer()),
    )
    make_client(script).customers.retrieve("acme")
    assert sleeps == [3.0]


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = nc.RetryPolicy(base_delay=1.0, max_delay=5.0)

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [policy.delay(n, None, Top()) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_post_without_idempotency_is_not_retried_after_a_5xx(make_client: Any) -> None:
    # PATCH /v1/customers/{id} may have changed the customer before the 500: sending it again is not safe
    script = Script(error(500, "internal_error", "api_error"), httpx.Response(200, json=customer()))
    client = make_client(script)
    with pytest.raises(errors.ServerError):
        client.customers.update("acme", name="Acme")
    assert len(script.requests) == 1


def test_a_post_without_idempotency_is_retried_when_nothing_was_sent(make_client: Any) -> None:
    script = Script(
        httpx.ConnectError("refused"), error(429, "busy", "api_error"), httpx.Response(200, json=customer())
    )
    client = make_client(script)
    assert client.customers.update("acme", name="Acme").name == "Acme"
    assert len(script.requests) == 3


def test_idempotency_key_is_sent_and_reused_on_every_retry(make_client: Any) -> None:
    run = {
        "object": "billing_run",
        "id": "run-1",
        "as_of": "2026-01-31T00:00:00Z",
        "trigger": "api",
        "windows_found": 0,
        "invoiced": 0,
        "failed": 0,
    }
    script = Script(httpx.ReadTimeout("slow"), error(502, "bad", "api_error"), httpx.Response(201, json=run))
    client = make_client(script)
    assert client.admin.create_billing_run(reason="month end").id == "run-1"
    keys = [r.headers.get("idempotency-key") for r in script.requests]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    # a key the caller chose is used as given; routes without the header get none
    script2 = Script(httpx.Response(201, json=run), httpx.Response(200, json=customer()))
    client2 = make_client(script2)
    client2.admin.create_billing_run(reason="r", idempotency_key="my-key")
    client2.customers.update("acme", name="A")
    assert script2.requests[0].headers["idempotency-key"] == "my-key"
    assert "idempotency-key" not in script2.requests[1].headers


def test_bodies_carry_exact_decimals_and_drop_unset_fields(make_client: Any) -> None:
    from decimal import Decimal

    plan = {"code": "p", "version": 1, "name": "P", "currency": "USD", "interval": "month", "charges": []}
    script = Script(httpx.Response(201, json=plan))
    make_client(script).plans.create(
        code="p",
        name="P",
        currency="USD",
        interval="month",
        charges=[{"meter_code": "m", "model": "per_unit", "unit_price": Decimal("0.0000125")}],
    )
    body = json.loads(script.requests[0].content)
    assert body == {
        "code": "p",
        "name": "P",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "m", "model": "per_unit", "unit_price": "0.0000125"}],
    }


def _page(items: list[str], cursor: str | None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [customer(i) for i in items],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        },
    )


def test_pagination_is_lazy_and_follows_cursors(make_client: Any) -> None:
    script = Script(_page(["a", "b"], "c1"), _page(["c", "d"], "c2"), _page(["e"], None))
    client = make_client(script)
    pages = client.customers.list(limit=2)
    assert script.requests == []  # nothing is fetched before iterating
    iterator = iter(pages)
    assert next(iterator).external_id == "a"
    assert len(script.requests) == 1
    assert [c.external_id for c in iterator] == ["b", "c", "d", "e"]
    assert [r.url.params.get("starting_after") for r in script.requests] == [None, "c1", "c2"]
    assert all(r.url.params["limit"] == "2" for r in script.requests)


def test_every_list_route_is_paginated() -> None:
    from neruba_client import resources
    from neruba_client._resource import paginated
    from neruba_client.routes import ROUTES

    listed = {
        d.build.__name__
        for cls in vars(resources).values()
        if isinstance(cls, type)
        for d in vars(cls).values()
        if isinstance(d, paginated)
    }
    assert listed == {name for name, spec in ROUTES.items() if spec.listing}


def test_async_client_retries_and_paginates() -> None:
    script = Script(
        error(503, "unavailable", "api_error"),
        _page(["a"], "c1"),
        httpx.ConnectError("refused"),
        _page(["b"], None),
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> list[str]:
        async with nc.AsyncNeruba(
            "k", base_url="http://x", http_transport=httpx.MockTransport(script), sleep=sleep
        ) as client:
            return [c.external_id async for c in client.customers.list()]

    assert asyncio.run(main()) == ["a", "b"]
    assert len(waits) == 2


def test_async_errors_carry_the_code() -> None:
    script = Script(error(404, "customer_not_found", fields={"param": "customer_id"}))

    async def main() -> None:
        client = nc.AsyncNeruba("k", base_url="http://x", http_transport=httpx.MockTransport(script))
        try:
            await client.customers.retrieve("nobody")
        finally:
            await client.close()

    with pytest.raises(errors.InvalidRequestError) as caught:
        asyncio.run(main())
    assert caught.value.code == "customer_not_found" and caught.value.status == 404


def test_send_gives_each_event_a_transaction_id_kept_across_retries(make_client: Any) -> None:
    def accepted(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        statuses = [
            {"index": i, "transaction_id": e["transaction_id"], "status": "queued", "error": None}
            for i, e in enumerate(events)
        ]
        return httpx.Response(
            202, json={"request_id": "r", "queued": len(events), "rejected": 0, "events": statuses}
        )

    script = Script(httpx.RemoteProtocolError("dropped"), error(500, "internal_error", "api_error"), accepted)
    answer = make_client(script).events.send(
        [{"customer_id": "acme", "code": "calls", "properties": {"n": 1}}]
    )
    assert answer.queued == 1
    ids = [json.loads(r.content)["events"][0]["transaction_id"] for r in script.requests]
    assert len(ids) == 3 and ids[0] and len(set(ids)) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from neruba_client._core import parse_retry_after

    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-1") == 0.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    # a long Retry-After is capped
    answer = httpx.Response(429, headers={"Retry-After": "3600"})
    assert nc.RetryPolicy(max_retry_after=60).delay(0, answer, random.Random(1)) == 60


def test_a_success_answer_that_is_not_json_raises_servererror(make_client: Any) -> None:
    client = make_client(Script(httpx.Response(200, text="<html>proxy</html>")))
    with pytest.raises(errors.ServerError) as caught:
        client.customers.retrieve("acme")
    assert caught.value.code == "invalid_answer" and caught.value.status == 200
