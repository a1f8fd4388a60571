"""Plan-version defaults over HTTP: a plan version's caps, alerts and features apply to every customer
subscribed to it, a customer's own setting wins per meter and per feature, the version's body is checked
by the rules of a customer's limits, and an entitlement check still costs at most two reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call

DEFAULTS = {
    "meters": [
        {"meter_code": "api_calls", "hard_cap": "3", "alerts": ["2"]},
        {"meter_code": "tokens", "hard_cap": "10"},
    ],
    "features": [
        {"feature": "sso", "kind": "boolean"},
        {"feature": "calls", "kind": "metered", "meter_code": "api_calls", "limit": "2"},
    ],
}


def _admin(method: str, path: str, body: Any, headers: dict[str, str] | None = None, **params: str) -> Any:
    from functions.admin_api.app import lambda_handler

    event = api_event(method, path, body=body, path_parameters=params or None, headers=headers)
    status, answer, _ = call(lambda_handler, event)
    return status, answer


def _plan(defaults: dict[str, Any] | None, code: str = "pro") -> tuple[int, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "charges": [
            {"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"},
            {"meter_code": "tokens", "model": "per_unit", "unit_price": "0.01"},
        ],
    }
    if defaults is not None:
        body["defaults"] = defaults
    return _admin("POST", "/v1/plans", body)


def _subscribe(customer: str, plan: str = "pro") -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    body = {"customer_id": customer, "plan_code": plan, "start_at": start}
    status, sub = _admin("POST", "/v1/subscriptions", body, {"Idempotency-Key": f"s-{customer}-{plan}"})
    assert status == 201, sub
    return dict(sub)


def _statuses(read: Any, customer: str, ids: list[str]) -> list[str]:
    found = []
    for tx in ids:
        status, body = read(
            f"/v1/events/{tx}", query={"customer_id": customer}, path_parameters={"transaction_id": tx}
        )
        assert status == 200, body
        found.append(body["status"])
    return found


@pytest.mark.parametrize(
    ("defaults", "code", "param"),
    [
        (
            {"meters": [{"meter_code": "nope", "hard_cap": "1"}]},
            "meter_not_found",
            "defaults.meters.0.meter_code",
        ),
        (
            {"meters": [{"meter_code": "storage_gb", "hard_cap": "1"}]},
            "limit_aggregation_unsupported",
            "defaults.meters.0.meter_code",
        ),
        ({"meters": [{"meter_code": "api_calls"}]}, "limit_empty", "defaults.meters.0"),
        (
            {"meters": [{"meter_code": "api_calls", "hard_cap": "1", "soft_cap": "2"}]},
            "soft_cap_above_hard_cap",
            "defaults.meters.0",
        ),
        ({"features": [{"feature": "f", "kind": "metered"}]}, "feature_incomplete", "defaults.features.0"),
        ({"invoice_threshold_minor": 0}, "validation_error", "defaults.invoice_threshold_minor"),
        ({"meters": [{"meter_code": "api_calls", "hard_cap": "1e3"}]}, "validation_error", None),
        ({"colour": "red"}, "validation_error", "defaults.colour"),
    ],
)
def test_plan_defaults_are_checked_like_a_customers_limits(
    catalog: Any, defaults: dict[str, Any], code: str, param: str | None
) -> None:
    status, body = _plan(defaults)
    assert status in (400, 422), body
    assert body["error"]["code"] == code
    found = body["error"].get("param") or body["error"]["details"][0]["param"]
    if param is not None:
        assert found == param, body
    else:
        assert found.startswith("defaults.meters.0."), body
    from functions.read_api.app import lambda_handler

    event = api_event("GET", "/v1/plans/pro", scopes="read", path_parameters={"plan_code": "pro"})
    status, body, _ = call(lambda_handler, event)
    assert (status, body["error"]["code"]) == (404, "plan_not_found")


def test_a_plan_default_cap_refuses_over_limit_and_a_customer_override_wins_per_meter(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a plan version capping api_calls at 3 and tokens at 10; acme and globex subscribe to it,
    # globex with its own api_calls cap of 4 (and nothing of its own on tokens)
    status, plan = _plan(DEFAULTS)
    assert status == 201, plan
    assert plan["defaults"]["meters"][0]["hard_cap"] == "3"
    _subscribe("acme")
    _subscribe("globex")
    own = {"meters": [{"meter_code": "api_calls", "hard_cap": "4"}]}
    assert _admin("PUT", "/v1/customers/globex/limits", own, customer_id="globex")[0] == 200

    # WHEN each sends 5 api_calls, and globex 8 then 5 tokens
    for customer in ("acme", "globex"):
        send(*(ev(f"{customer}-{i}", customer) for i in range(5)))
    tokens = [
        ev(f"tok-{i}", "globex", code="tokens", properties={"tokens": n, "model": "a"})
        for i, n in enumerate((8, 5))
    ]
    send(*tokens)
    process()

    # THEN acme is held to the plan's 3, globex to its own 4; the plan's tokens cap still holds globex
    acme = _statuses(read, "acme", [f"acme-{i}" for i in range(5)])
    globex = _statuses(read, "globex", [f"globex-{i}" for i in range(5)])
    assert sorted(acme) == ["accepted"] * 3 + ["over_limit"] * 2
    assert sorted(globex) == ["accepted"] * 4 + ["over_limit"]
    assert _statuses(read, "globex", ["tok-0", "tok-1"]) == ["accepted", "over_limit"]


def test_a_plan_default_alert_fires_once_per_crossing(
    send: Any, enqueue: Any, process: Any, catalog: Any
) -> None:
    # GIVEN acme on a version alerting at 2 api_calls
    assert _plan(DEFAULTS)[0] == 201
    _subscribe("acme")

    # WHEN 1 call, then 2 more (crossing 2), the same events again, then the cap's last call
    send(ev("a-0"))
    process()
    send(ev("a-1"), ev("a-2"))
    process()
    enqueue(ev("a-1"), ev("a-2"))  # delivered again
    process()

    # THEN the level fired once (and the hard cap's own alert when usage reached 3)
    fired = [(e["data"]["alert"], e["data"]["kind"]) for e in outbox("alert.triggered")]
    assert fired.count(("a:2", "usage")) == 1
    assert fired.count(("hard:3", "hard_cap")) == 1
    assert len(fired) == 2


@pytest.fixture
def reads() -> Iterator[list[str]]:
    from neruba.dal.clients import client

    seen: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if model.name in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"):
            seen.append(model.name)

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    yield seen
    events.unregister("before-call.dynamodb", count)


def test_plan_default_features_answer_entitlements_in_two_reads(
    send: Any, process: Any, catalog: Any, reads: list[str]
) -> None:
    from functions.read_api.app import lambda_handler

    def get(path: str, **params: str) -> Any:
        status, body, _ = call(lambda_handler, api_event("GET", path, scopes="read", path_parameters=params))
        assert status == 200, body
        return body

    # GIVEN acme and globex on the version (calls: 2 a period); globex grants itself 5 calls
    assert _plan(DEFAULTS)[0] == 201
    _subscribe("acme")
    _subscribe("globex")
    own = {"features": [{"feature": "calls", "kind": "metered", "meter_code": "api_calls", "limit": "5"}]}
    assert _admin("PUT", "/v1/customers/globex/limits", own, customer_id="globex")[0] == 200
    send(ev("a-0"), ev("a-1"), ev("g-0", "globex"), ev("g-1", "globex"))
    process()

    # WHEN their entitlements are checked
    reads.clear()
    acme = get("/v1/customers/acme/entitlements/calls", customer_id="acme", feature="calls")
    assert 1 <= len(reads) <= 2, reads
    reads.clear()
    globex = {r["feature"]: r for r in get("/v1/customers/globex/entitlements", customer_id="globex")["data"]}
    assert 1 <= len(reads) <= 2, reads

    # THEN acme used up the plan's 2; globex has its own 5 (3 left) and the plan's sso
    assert (acme["access"], acme["usage"], acme["limit"], acme["remaining"]) == (False, "2", "2", "0")
    assert (globex["calls"]["limit"], globex["calls"]["remaining"], globex["calls"]["access"]) == (
        "5",
        "3",
        True,
    )
    assert globex["sso"]["access"] is True


def test_a_plan_change_or_a_cancellation_carries_the_defaults_of_the_new_phases(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    from neruba import bootstrap

    # GIVEN acme on version 1 (api_calls capped at 3), and a version 2 that sets a cap of 1 on tokens only
    assert _plan(DEFAULTS)[0] == 201
    v2 = {
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"}],
        "defaults": {"meters": [{"meter_code": "tokens", "hard_cap": "1"}]},
    }
    assert _admin("POST", "/v1/plans/pro/versions", v2, plan_code="pro")[0] == 201
    sub = _subscribe("acme")

    # WHEN acme moves to version 2 now and sends 5 api_calls and 2 tokens
    change = {"plan_code": "pro", "plan_version": 2}
    status, body = _admin(
        "POST", f"/v1/subscriptions/{sub['id']}/change-plan", change, subscription_id=sub["id"]
    )
    assert status == 200, body
    send(*(ev(f"c{i}") for i in range(5)))
    send(*(ev(f"t{i}", code="tokens", properties={"tokens": 1, "model": "a"}) for i in range(2)))
    process()

    # THEN version 2's defaults apply from the change: no api_calls cap any more, tokens capped at 1
    assert _statuses(read, "acme", [f"c{i}" for i in range(5)]) == ["accepted"] * 5
    assert sorted(_statuses(read, "acme", ["t0", "t1"])) == ["accepted", "over_limit"]

    # WHEN the subscription is canceled now, THEN no default is in force any more
    cancel = {"at_period_end": False}
    assert (
        _admin("POST", f"/v1/subscriptions/{sub['id']}/cancel", cancel, subscription_id=sub["id"])[0] == 200
    )
    plan = bootstrap.limits().settings_texts("acme").plan
    from neruba.domain.plan_defaults import effective_settings

    assert effective_settings(None, plan, datetime.now(UTC) + timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    "defaults",
    [{}, {"meters": [], "features": []}, {"meters": [], "invoice_threshold_minor": None}],
    ids=["empty object", "empty lists", "empty lists and a null threshold"],
)
def test_defaults_that_set_nothing_are_absent_from_the_plan(catalog: Any, defaults: dict[str, Any]) -> None:
    from functions.read_api.app import lambda_handler
    from neruba_client.models import Plan, PlanVersion

    # GIVEN a plan published with defaults that set nothing, and its next version the same way
    status, plan = _plan(defaults)
    assert status == 201, plan
    body = {k: plan[k] for k in ("name", "currency", "interval", "charges")} | {"defaults": defaults}
    status, version = _admin("POST", "/v1/plans/pro/versions", body, plan_code="pro")
    assert status == 201, version
    # THEN no answer holds defaults (the description: absent when the version sets none), as read back
    for answer in (plan, version):
        assert "defaults" not in answer, answer
    status, read, _ = call(lambda_handler, api_event("GET", "/v1/plans/pro", scopes="read"))
    assert status == 200 and "defaults" not in read, read
    # AND the Python client reads them as no defaults
    assert Plan.model_validate(read).defaults is None
    assert PlanVersion.model_validate(version).defaults is None


def test_a_plan_change_and_a_cancellation_without_defaults_write_nothing_on_the_customer(
    catalog: Any,
) -> None:
    from neruba.dal.clients import client

    # GIVEN acme on a plan whose versions set no defaults
    assert _plan(None)[0] == 201
    v2 = {
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.20"}],
    }
    assert _admin("POST", "/v1/plans/pro/versions", v2, plan_code="pro")[0] == 201
    sub = _subscribe("acme")
    written: list[str] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        for action in params.get("TransactItems") or []:
            for op, body in action.items():
                names = body.get("ExpressionAttributeNames") or {}
                if any(str(n).startswith("pd_") for n in names.values()):
                    written.append(f"{op} {body['Key']['pk']['S']}")

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", note, unique_id="defaults-writes")
    try:
        # WHEN it changes to version 2, then cancels now
        change = {"plan_code": "pro", "plan_version": 2}
        path = f"/v1/subscriptions/{sub['id']}/change-plan"
        assert _admin("POST", path, change, subscription_id=sub["id"])[0] == 200
        cancel = {"at_period_end": False}
        path = f"/v1/subscriptions/{sub['id']}/cancel"
        assert _admin("POST", path, cancel, subscription_id=sub["id"])[0] == 200
    finally:
        events.unregister("provide-client-params.dynamodb", unique_id="defaults-writes")
    # THEN neither transaction wrote a defaults record on the customer's item (there was none to remove)
    assert written == []
