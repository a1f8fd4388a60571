"""``POST /v1/customers/{id}/archive``: the customer keeps its data, its subscriptions end now (canceled
as ``POST /v1/subscriptions/{id}/cancel`` does, so their final window is billed), new usage and new
subscriptions are refused with ``customer_archived``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.functional.catalog.conftest import Api
from tests.functional.catalog.test_catalog_api import PLAN, _seed
from tests.support.api import api_event, call


def _archive(admin: Api, customer: str = "acme", body: Any = None, **kw: Any) -> tuple[int, Any]:
    return admin(
        "POST",
        f"/v1/customers/{customer}/archive",
        body if body is not None else {},
        params={"customer_id": customer},
        **kw,
    )


def _subscribe(admin: Api) -> dict[str, Any]:
    admin("POST", "/v1/plans", PLAN)
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    status, sub = admin(
        "POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "pro", "start_at": start}
    )
    assert status == 201, sub
    return sub  # type: ignore[no-any-return]


def test_archive_ends_subscriptions_keeps_the_customer_and_is_idempotent(admin: Api, reader: Api) -> None:
    _seed(admin)
    sub = _subscribe(admin)
    # WHEN acme is archived
    status, archived = _archive(admin, body={"reason": "contract ended", "ticket": "SUP-9"})
    # THEN the customer is still there, marked archived, and its subscription ended at the archive time
    assert status == 200, archived
    assert archived["external_id"] == "acme" and archived["archived_at"]
    status, read = reader("/v1/customers/acme", params={"customer_id": "acme"})
    assert status == 200 and read["archived_at"] == archived["archived_at"]
    status, subs = reader("/v1/customers/acme/subscriptions", params={"customer_id": "acme"})
    ended = next(s for s in subs["data"] if s["id"] == sub["id"])
    at = datetime.fromisoformat(archived["archived_at"])
    assert ended["status"] == "canceled" and datetime.fromisoformat(ended["ended_at"]) == at
    # AND archiving again changes nothing (same answer, same time)
    status, again = _archive(admin)
    assert (status, again["archived_at"]) == (200, archived["archived_at"])


def test_an_archived_customer_refuses_new_usage_and_subscriptions(admin: Api) -> None:
    from functions.ingest_api.app import lambda_handler

    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    assert _archive(admin)[0] == 200
    # WHEN events are sent for it, beside one for another customer
    admin("POST", "/v1/customers", {"external_id": "globex", "name": "Globex", "currency": "USD"})
    event = {"transaction_id": "t1", "customer_id": "acme", "code": "api_calls"}
    status, body, _ = call(
        lambda_handler,
        api_event("POST", "/v1/events", body={"events": [event, {**event, "customer_id": "globex"}]}),
    )
    # THEN its event is refused with customer_archived, the other queued
    assert status == 202, body
    assert body["events"][0]["error"]["code"] == "customer_archived"
    assert body["events"][0]["error"]["param"] == "events.0.customer_id"
    assert body["events"][1]["status"] == "queued"
    # AND a new subscription is 409 customer_archived
    status, body = admin("POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "pro"})
    assert (status, body["error"]["code"]) == (409, "customer_archived")


def test_the_worker_parks_usage_sent_after_the_archive(admin: Api, monkeypatch: Any) -> None:
    # GIVEN an event queued past the API's check after acme was archived (its cache not yet expired)
    from functions.ingest_worker import app as worker
    from neruba.dal.queue import send_batch
    from neruba.dal.usage import UsageRepository
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn
    from neruba.settings import get_settings
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    _seed(admin)
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert _archive(admin)[0] == 200
    after = datetime.now(UTC) + timedelta(seconds=1)
    events = [
        UsageEventIn.model_validate({"transaction_id": tx, "customer_id": "acme", "code": "api_calls"})
        for tx in ("sent-before", "sent-after")
    ]
    messages = [
        (str(i), queue_message(e, "r", i, at))
        for i, (e, at) in enumerate(zip(events, (before, after), strict=True))
    ]
    assert send_batch(queue_url("IngestQueue"), messages) == []
    drain(worker.lambda_handler, queue_url("IngestQueue"), batch_size=10)
    usage = UsageRepository(get_settings().usage_table)
    # THEN what was sent before the archive counts; what was sent after is parked customer_archived
    counted = usage.get_event("acme", "sent-before")
    assert counted is not None and counted.status == "accepted"
    parked = usage.get_event("acme", "sent-after")
    assert parked is not None and (parked.status, parked.reason) == ("failed", "customer_archived")


def test_archive_errors(admin: Api) -> None:
    _seed(admin)
    status, body = _archive(admin, customer="nobody")
    assert (status, body["error"]["code"]) == (404, "customer_not_found")
    status, body = _archive(admin, body={"colour": "blue"})
    assert (status, body["error"]["code"]) == (422, "validation_error")
    status, body = _archive(admin, scopes="read")
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")
    # the archive time is not something a client sets on creation
    status, body = admin(
        "POST",
        "/v1/customers",
        {"external_id": "x", "name": "X", "currency": "USD", "archived_at": "2026-01-01T00:00:00Z"},
    )
    assert status == 422, body


def test_a_warm_worker_sees_the_archive_at_once(admin: Api) -> None:
    # GIVEN a worker that has just processed acme's usage (its catalog read, so a cache would hold acme)
    from functions.ingest_worker import app as worker
    from neruba.dal.queue import send_batch
    from neruba.dal.usage import UsageRepository
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn
    from neruba.settings import get_settings
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    _seed(admin)

    def process(transaction_id: str, at: datetime) -> None:
        event = UsageEventIn.model_validate(
            {"transaction_id": transaction_id, "customer_id": "acme", "code": "api_calls"}
        )
        assert send_batch(queue_url("IngestQueue"), [("0", queue_message(event, "r", 0, at))]) == []
        drain(worker.lambda_handler, queue_url("IngestQueue"), batch_size=10)

    process("warm", datetime.now(UTC))
    # WHEN acme is archived and an event sent a moment later reaches the same worker
    assert _archive(admin)[0] == 200
    process("right-after", datetime.now(UTC) + timedelta(seconds=1))
    # THEN the worker read the catalog again: the event is parked, not counted (and never billed)
    usage = UsageRepository(get_settings().usage_table)
    warm, late = usage.get_event("acme", "warm"), usage.get_event("acme", "right-after")
    assert warm is not None and warm.status == "accepted"
    assert late is not None and (late.status, late.reason) == ("failed", "customer_archived")


def test_an_archive_racing_another_one_still_answers_the_customer(admin: Api, monkeypatch: Any) -> None:
    # GIVEN acme with an active subscription, and a second archive request that ends it first (simulated:
    # the cancel this request makes finds the subscription already canceled by the other one)
    from neruba.logic.catalog import subscriptions

    _seed(admin)
    _subscribe(admin)
    real_cancel = subscriptions.cancel

    def cancel_after_the_other_request(*args: Any, **kwargs: Any) -> Any:
        real_cancel(*args, **kwargs)  # the concurrent archive's cancel lands first
        return real_cancel(*args, **kwargs)  # ours then finds it canceled (409 subscription_canceled)

    monkeypatch.setattr(subscriptions, "cancel", cancel_after_the_other_request)
    # WHEN this request archives acme
    status, archived = _archive(admin)
    # THEN it answers the archived customer, as a retry would, and the subscription ended once
    assert status == 200, archived
    assert archived["archived_at"]
    monkeypatch.setattr(subscriptions, "cancel", real_cancel)
    status, again = _archive(admin)
    assert (status, again["archived_at"]) == (200, archived["archived_at"])
