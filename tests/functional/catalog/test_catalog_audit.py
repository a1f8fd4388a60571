"""Catalog writes leave audit records (``GET /admin/audit``), committed with the change itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.functional.catalog.conftest import Api
from tests.functional.catalog.test_catalog_api import PLAN, _seed
from tests.support.api import api_event, call

ACTOR = "key:0123456789ab"  # the principal of tests.support.api.api_event


def _audit(customer_id: str) -> list[dict[str, Any]]:
    from functions.ledger_api.app import lambda_handler

    event = api_event(
        "GET", "/admin/audit", query={"customer_id": customer_id, "limit": "100"}, scopes="admin"
    )
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body
    return list(reversed(body["data"]))  # oldest first


def test_subscription_create_change_and_cancel_are_audited(admin: Api) -> None:
    # GIVEN a customer, a meter and two plan versions
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    admin(
        "POST",
        "/v1/plans/pro/versions",
        {k: v for k, v in PLAN.items() if k != "code"},
        params={"plan_code": "pro"},
    )
    start = datetime.now(UTC) - timedelta(days=2)
    # WHEN an operator subscribes acme, changes its plan and cancels it, with reasons and tickets
    _, sub = admin(
        "POST",
        "/v1/subscriptions",
        {
            "customer_id": "acme",
            "plan_code": "pro",
            "plan_version": 1,
            "start_at": start.isoformat(),
            "reason": "signed",
            "ticket": "SUP-1",
        },
        headers={"Idempotency-Key": "audit-1"},
    )
    sid = sub["id"]
    status, _ = admin(
        "POST",
        f"/v1/subscriptions/{sid}/change-plan",
        {"plan_code": "pro", "plan_version": 2, "reason": "upgrade", "ticket": "SUP-2"},
        params={"subscription_id": sid},
    )
    assert status == 200
    status, _ = admin(
        "POST",
        f"/v1/subscriptions/{sid}/cancel",
        {"at_period_end": False, "reason": "churn"},
        params={"subscription_id": sid},
    )
    assert status == 200
    # THEN acme's audit trail shows each action with actor, target, reason, ticket, before and after
    records = [r for r in _audit("acme") if r["action"].startswith("subscription.")]
    assert [r["action"] for r in records] == [
        "subscription.create",
        "subscription.change_plan",
        "subscription.cancel",
    ]
    assert {r["actor"] for r in records} == {ACTOR}
    assert {r["target"] for r in records} == {sid}
    assert [(r["reason"], r["ticket"]) for r in records] == [
        ("signed", "SUP-1"),
        ("upgrade", "SUP-2"),
        ("churn", None),
    ]
    create, change, cancel = records
    assert create["before"] is None and create["after"]["phases"][0]["plan_version"] == 1
    assert [p["plan_version"] for p in change["after"]["phases"]] == [1, 2]
    assert (cancel["before"]["status"], cancel["after"]["status"]) == ("active", "canceled")
    assert all(r["request_id"] for r in records)


def test_a_replayed_create_writes_no_second_record(admin: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    body = {"customer_id": "acme", "plan_code": "pro"}
    for _ in range(2):
        assert admin("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": "k-aud"})[0] == 201
    assert [r["action"] for r in _audit("acme")].count("subscription.create") == 1


def test_customer_meter_and_plan_writes_are_audited(admin: Api) -> None:
    # WHEN an operator creates and updates a customer, creates a meter, a plan and a new version
    _seed(admin)
    admin("PATCH", "/v1/customers/acme", {"name": "Acme Inc"}, params={"customer_id": "acme"})
    admin("POST", "/v1/plans", PLAN)
    admin(
        "POST",
        "/v1/plans/pro/versions",
        {k: v for k, v in PLAN.items() if k != "code"},
        params={"plan_code": "pro"},
    )
    # THEN the customer's trail holds its creation and update, with the fields before and after
    customer = _audit("acme")
    assert [r["action"] for r in customer] == ["customer.create", "customer.update"]
    assert (customer[1]["before"]["name"], customer[1]["after"]["name"]) == ("Acme", "Acme Inc")
    assert {r["actor"] for r in customer} == {ACTOR}
    # AND catalog-wide writes are in the global trail
    catalog_wide = [(r["action"], r["target"]) for r in _audit("_global")]
    assert catalog_wide == [
        ("meter.create", "api_calls"),
        ("plan.create", "pro"),
        ("plan.publish_version", "pro"),
    ]


def test_cancel_at_period_end_twice_changes_nothing_and_cancel_now_clears_the_flag(admin: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    _, sub = admin("POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "pro"})
    sid = sub["id"]
    path, params = f"/v1/subscriptions/{sid}/cancel", {"subscription_id": sid}
    # WHEN it is canceled at period end twice
    _, first = admin("POST", path, {"at_period_end": True, "reason": "bye"}, params=params)
    status, second = admin("POST", path, {"at_period_end": True, "reason": "bye"}, params=params)
    # THEN the second changes nothing and is not audited again
    assert status == 200 and second["canceled_at"] == first["canceled_at"]
    assert [r["action"] for r in _audit("acme")].count("subscription.cancel") == 1
    # WHEN it is then canceled now, it reads canceled now, not "at period end"
    status, now = admin("POST", path, {"at_period_end": False}, params=params)
    assert status == 200
    assert (now["status"], now["cancel_at_period_end"]) == ("canceled", False) and now["ended_at"]
