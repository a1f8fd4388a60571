"""customer.updated (archive too) and subscription.created/updated/canceled are written in the transaction
of the change they report: a crash at the commit writes neither, a repeat writes no second event, and
the relay numbers one customer's events in the order they were committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from neruba.logic.webhooks.relay import relay_once
from tests.functional.catalog.conftest import Api, admin, reader  # noqa: F401 - the catalog fixtures
from tests.functional.catalog.test_catalog_api import PLAN, _seed
from tests.functional.webhooks.conftest import MemoryQueue
from tests.functional.webhooks.sources import crash_with_outbox, outbox


def _types() -> list[str]:
    return [e["type"] for e in outbox() if e["customer_id"] == "acme"]


def test_customer_and_subscription_events_land_with_their_change(
    admin: Api,  # noqa: F811
    reader: Api,  # noqa: F811
    memory_hooks: MemoryQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _seed(admin)
    path = {"customer_id": "acme"}
    # a crash at the commit of an update writes neither the change nor the event
    with crash_with_outbox(monkeypatch) as crashes:
        assert admin("PATCH", "/v1/customers/acme", {"name": "Acme Inc"}, params=path)[0] == 500
    assert crashes == [1]
    assert reader("/v1/customers/acme", params=path)[1]["name"] == "Acme"
    assert _types() == ["customer.created"]
    # the update lands with its event; the same update again changes nothing and writes no event
    assert admin("PATCH", "/v1/customers/acme", {"name": "Acme Inc"}, params=path)[0] == 200
    assert admin("PATCH", "/v1/customers/acme", {"name": "Acme Inc"}, params=path)[0] == 200
    # the balance.low threshold is a JSON integer from 0 (a refused value writes nothing)
    for bad in ("10", -1, 1.5, True):
        status, body = admin("PATCH", "/v1/customers/acme", {"balance_low_threshold_minor": bad}, params=path)
        assert (status, body["error"]["details"][0]["param"]) == (422, "balance_low_threshold_minor"), body
    (updated,) = outbox("customer.updated")
    assert updated["data"]["name"] == "Acme Inc"
    assert updated["data"]["previous_attributes"] == {"name": "Acme"}

    # subscription.created: once, even when the client repeats the request with its key
    admin("POST", "/v1/plans", PLAN)
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    body = {"customer_id": "acme", "plan_code": "pro", "start_at": start}
    key = {"Idempotency-Key": "sub-1"}
    with crash_with_outbox(monkeypatch) as crashes:
        assert admin("POST", "/v1/subscriptions", body, headers=key)[0] == 500
    assert crashes == [1]
    assert reader("/v1/customers/acme/subscriptions", params=path)[1]["data"] == []
    status, sub = admin("POST", "/v1/subscriptions", body, headers=key)
    assert status == 201, sub
    assert admin("POST", "/v1/subscriptions", body, headers=key)[1]["id"] == sub["id"]
    (created,) = outbox("subscription.created")
    assert created["data"]["id"] == sub["id"] and created["data"]["status"] == "active"

    # subscription.updated on a plan change, with the phases before
    version = {k: v for k, v in PLAN.items() if k != "code"}
    assert admin("POST", "/v1/plans/pro/versions", version, params={"plan_code": "pro"})[0] == 201
    sub_path = {"subscription_id": sub["id"]}
    status, changed = admin(
        "POST", f"/v1/subscriptions/{sub['id']}/change-plan", {"plan_code": "pro", "plan_version": 2},
        params=sub_path,
    )  # fmt: skip
    assert status == 200, changed
    (moved,) = outbox("subscription.updated")
    assert [p["plan_version"] for p in moved["data"]["phases"]] == [1, 2]
    assert [p["plan_version"] for p in moved["data"]["previous_attributes"]["phases"]] == [1]

    # archive: customer.updated (archived_at) and subscription.canceled, each once; a crash writes none
    with crash_with_outbox(monkeypatch) as crashes:
        assert admin("POST", "/v1/customers/acme/archive", {}, params=path)[0] == 500
    assert crashes == [1]
    assert reader("/v1/customers/acme", params=path)[1]["archived_at"] is None
    assert admin("POST", "/v1/customers/acme/archive", {}, params=path)[0] == 200
    assert admin("POST", "/v1/customers/acme/archive", {}, params=path)[0] == 200
    archived = outbox("customer.updated")[1:]
    assert [e["data"]["previous_attributes"] for e in archived] == [{"archived_at": None}]
    (canceled,) = outbox("subscription.canceled")
    assert canceled["data"]["status"] == "canceled" and canceled["data"]["id"] == sub["id"]
    assert _types() == [
        "customer.created",
        "customer.updated",
        "subscription.created",
        "subscription.updated",
        "customer.updated",
        "subscription.canceled",
    ]

    # the relay numbers them in commit order
    order = [e["id"] for e in outbox() if e["customer_id"] == "acme"]
    relay_once(memory_hooks, datetime.now(UTC))
    sequences = [memory_hooks.repo.event(event_id).sequence for event_id in order]  # type: ignore[union-attr]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
