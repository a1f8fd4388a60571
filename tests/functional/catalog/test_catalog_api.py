"""The catalog through the real admin and read handlers: customers, meters, plans, subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

Api = Callable[..., tuple[int, Any]]


PLAN = {
    "code": "pro",
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "fixed_fee": {"amount": "30.00", "timing": "advance"},
    "charges": [
        {
            "meter_code": "api_calls",
            "model": "graduated",
            "tiers": [{"up_to": 1000, "unit_price": "0"}, {"up_to": None, "unit_price": "0.002"}],
        }
    ],
}


def _seed(admin: Api) -> None:
    assert (
        admin("POST", "/v1/customers", {"external_id": "acme", "name": "Acme", "currency": "usd"})[0] == 201
    )
    assert (
        admin("POST", "/v1/meters", {"code": "api_calls", "name": "API calls", "aggregation": "count"})[0]
        == 201
    )


def test_customer_lifecycle_and_pagination(admin: Api, reader: Api) -> None:
    # GIVEN 5 customers
    for i in range(5):
        status, body = admin(
            "POST", "/v1/customers", {"external_id": f"c{i}", "name": f"C {i}", "currency": "EUR"}
        )
        assert status == 201, body
    # WHEN one is created twice, one is updated, and the list is read 2 at a time
    status, body = admin("POST", "/v1/customers", {"external_id": "c0", "name": "Again", "currency": "EUR"})
    assert (status, body["error"]["code"]) == (409, "customer_exists")
    status, body = admin("PATCH", "/v1/customers/c1", {"name": "Renamed"}, params={"customer_id": "c1"})
    assert (status, body["name"], body["currency"]) == (200, "Renamed", "EUR")
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"starting_after": cursor} if cursor else {})}
        status, page = reader("/v1/customers", query=query)
        assert status == 200, page
        seen += [c["external_id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    # THEN every customer is listed once, in order
    assert seen == ["c0", "c1", "c2", "c3", "c4"]
    assert reader("/v1/customers/c1", params={"customer_id": "c1"})[1]["name"] == "Renamed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"external_id": "x", "name": "X", "currency": "ZZZ"}, 422),
        ({"external_id": "bad id!", "name": "X", "currency": "USD"}, 422),
        ({"external_id": "x", "name": "X", "currency": "USD", "colour": "red"}, 422),
    ],
)
def test_invalid_customers_are_rejected(admin: Api, body: dict[str, Any], status: int) -> None:
    got, parsed = admin("POST", "/v1/customers", body)
    assert got == status
    assert parsed["error"]["code"] == "validation_error"


def test_bad_cursor_is_400(reader: Api) -> None:
    status, body = reader("/v1/customers", query={"starting_after": "not-a-cursor"})
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")


def test_writes_need_admin_scope(admin: Api) -> None:
    status, body = admin(
        "POST", "/v1/customers", {"external_id": "x", "name": "X", "currency": "USD"}, scopes="read"
    )
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")


def test_plans_are_versioned_and_immutable(admin: Api, reader: Api) -> None:
    # GIVEN a plan
    _seed(admin)
    status, plan = admin("POST", "/v1/plans", PLAN)
    assert status == 201, plan
    assert plan["version"] == 1
    assert plan["versions"] == [1]
    # WHEN a changed plan is published
    changed = {k: v for k, v in PLAN.items() if k != "code"} | {
        "fixed_fee": {"amount": "35", "timing": "advance"}
    }
    status, v2 = admin("POST", "/v1/plans/pro/versions", changed, params={"plan_code": "pro"})
    assert status == 201, v2
    # THEN version 2 exists, version 1 is unchanged, and the plan shows the latest
    assert v2["version"] == 2
    v1 = reader("/v1/plans/pro/versions/1", params={"plan_code": "pro", "version": "1"})[1]
    assert v1["fixed_fee"]["amount"] == "30"  # canonical decimal text (given as "30.00")
    assert reader("/v1/plans/pro", params={"plan_code": "pro"})[1]["versions"] == [1, 2]
    assert admin("POST", "/v1/plans", PLAN)[1]["error"]["code"] == "plan_exists"


def test_plan_with_unknown_meter_or_bad_tiers_is_rejected(admin: Api) -> None:
    _seed(admin)
    unknown = PLAN | {"charges": [{"meter_code": "nope", "model": "per_unit", "unit_price": "1"}]}
    assert admin("POST", "/v1/plans", unknown)[1]["error"]["code"] == "meter_not_found"
    bad = PLAN | {
        "charges": [
            {
                "meter_code": "api_calls",
                "model": "graduated",
                "tiers": [
                    {"up_to": 10, "unit_price": "1"},
                    {"up_to": 5, "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ],
            }
        ]
    }
    status, body = admin("POST", "/v1/plans", bad)
    assert (status, body["error"]["code"]) == (422, "validation_error")
    assert "tier bounds must increase" in body["error"]["details"][0]["message"]


def test_subscription_create_is_idempotent_with_a_key(admin: Api, reader: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    body = {"customer_id": "acme", "plan_code": "pro"}
    first = admin("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": "k-1"})
    again = admin("POST", "/v1/subscriptions", body, headers={"Idempotency-Key": "k-1"})
    other = admin("POST", "/v1/subscriptions", body)
    assert first[0] == 201
    assert again[1]["id"] == first[1]["id"]
    # a create without the key is not a retry: it is refused, as it would bill api_calls twice
    assert (other[0], other[1]["error"]["code"]) == (409, "subscription_overlap")
    assert other[1]["error"]["details"][0]["subscription_id"] == first[1]["id"]
    listed = reader("/v1/customers/acme/subscriptions", params={"customer_id": "acme"})[1]["data"]
    assert len(listed) == 1


def test_plan_change_and_cancel(admin: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    v2 = {k: v for k, v in PLAN.items() if k != "code"} | {"fixed_fee": {"amount": "60", "timing": "advance"}}
    admin("POST", "/v1/plans/pro/versions", v2, params={"plan_code": "pro"})
    start = datetime.now(UTC) - timedelta(days=3)
    _, sub = admin(
        "POST",
        "/v1/subscriptions",
        {"customer_id": "acme", "plan_code": "pro", "plan_version": 1, "start_at": start.isoformat()},
    )
    sid = sub["id"]
    status, changed = admin(
        "POST",
        f"/v1/subscriptions/{sid}/change-plan",
        {"plan_code": "pro", "plan_version": 2},
        params={"subscription_id": sid},
    )
    assert status == 200, changed
    assert [p["plan_version"] for p in changed["phases"]] == [1, 2]
    assert changed["phases"][0]["end_at"] == changed["phases"][1]["start_at"]
    too_late = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    status, body = admin(
        "POST",
        f"/v1/subscriptions/{sid}/change-plan",
        {"plan_code": "pro", "at": too_late},
        params={"subscription_id": sid},
    )
    assert (status, body["error"]["code"]) == (400, "invalid_change_time")
    status, canceled = admin(
        "POST", f"/v1/subscriptions/{sid}/cancel", {"at_period_end": False}, params={"subscription_id": sid}
    )
    assert (status, canceled["status"]) == (200, "canceled")
    status, body = admin("POST", f"/v1/subscriptions/{sid}/cancel", {}, params={"subscription_id": sid})
    assert body["error"]["code"] == "subscription_canceled"


def test_currency_mismatch_is_rejected(admin: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN | {"code": "euro", "currency": "EUR"})
    status, body = admin("POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "euro"})
    assert (status, body["error"]["code"]) == (400, "currency_mismatch")


def test_usage_per_billing_period(admin: Api, reader: Api) -> None:
    # GIVEN a monthly subscription that started 40 days ago, and usage in each of its two periods
    from neruba.dal.usage import DayWrite, GroupRef, GroupWrite, UsageRepository
    from neruba.domain.ingest import GroupTotals
    from neruba.domain.periods import add_interval
    from neruba.settings import get_settings

    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    start = (datetime.now(UTC) - timedelta(days=40)).replace(minute=0, second=0, microsecond=0)
    admin(
        "POST",
        "/v1/subscriptions",
        {"customer_id": "acme", "plan_code": "pro", "start_at": start.isoformat()},
    )
    usage = UsageRepository(get_settings().usage_table)
    second = add_interval(start, "month", 1)
    for batch, at, n in (("b1", start + timedelta(hours=1), 3), ("b2", second + timedelta(hours=2), 5)):
        totals = GroupTotals()
        for i in range(n):
            totals.add(f"{batch}-{i}", "count", at.isoformat(), None)
        ref = GroupRef("acme", "api_calls", at.strftime("%Y-%m-%dT%H"))
        usage.count_group(batch, DayWrite.of(GroupWrite(ref, "count", totals)), datetime.now(UTC))
    # WHEN usage is read per period
    status, body = reader(
        "/v1/customers/acme/usage",
        params={"customer_id": "acme"},
        query={
            "meter": "api_calls",
            "from": (start - timedelta(days=1)).isoformat(),
            "to": datetime.now(UTC).isoformat(),
            "granularity": "period",
        },
    )
    # THEN there is one bucket per billing period, keyed by its start (in UTC with Z, as every answer time)
    from neruba.timefmt import iso_z

    assert status == 200, body
    assert [(row["bucket"], row["quantity"]) for row in body["data"]] == [
        (iso_z(start), "3"),
        (iso_z(second), "5"),
    ]
    assert body["total"] == "8"


def test_subscription_times_need_an_offset_and_a_started_subscription(admin: Api) -> None:
    _seed(admin)
    admin("POST", "/v1/plans", PLAN)
    status, body = admin(
        "POST",
        "/v1/subscriptions",
        {"customer_id": "acme", "plan_code": "pro", "start_at": "2026-01-01T00:00:00"},
    )
    assert (status, body["error"]["code"]) == (422, "validation_error")
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    _, sub = admin(
        "POST", "/v1/subscriptions", {"customer_id": "acme", "plan_code": "pro", "start_at": future}
    )
    status, body = admin(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change-plan",
        {"plan_code": "pro"},
        params={"subscription_id": sub["id"]},
    )
    assert (status, body["error"]["code"]) == (400, "subscription_not_started")
