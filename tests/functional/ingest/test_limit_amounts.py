"""Caps and alerts in amounts (docs/limits.md, "Caps and alerts in amounts"): an amount cap decided with
the contribution that counts the usage (never passed under parallel batches), spend alerts once per level
and period under duplicate storms and redelivery, late events, and prices that cannot be capped exactly
refused with 400."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from neruba import bootstrap
from tests.functional.ingest.conftest import ev
from tests.functional.ingest.test_limits import _batch, _run, _statuses
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

NOW = datetime.now(UTC)
MONTH = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
LAST_MONTH = (MONTH - timedelta(days=1)).replace(day=1)

GB_TIERS = [{"up_to": "10", "unit_price": "1.00"}, {"up_to": None, "unit_price": "0.50"}]


@pytest.fixture
def priced(catalog: Any) -> Any:
    """acme subscribed since last month to a plan pricing api_calls at 0.10 each and gb_out (an
    ungrouped sum meter) graduated: 1.00 a GB up to 10, 0.50 above."""
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Meter, PlanCreate, SubscriptionCreate

    catalog.create_meter(Meter(code="gb_out", name="GB out", aggregation="sum", field="gb"))
    plans = bootstrap.plans()
    plan = {
        "code": "metered",
        "name": "Metered",
        "currency": "USD",
        "interval": "month",
        "charges": [
            {"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"},
            {"meter_code": "gb_out", "model": "graduated", "tiers": GB_TIERS},
        ],
    }
    create_plan(plans, PlanCreate.model_validate(plan))
    body = SubscriptionCreate(customer_id="acme", plan_code="metered", start_at=LAST_MONTH)
    create_subscription(plans, body, "sub-acme", now=LAST_MONTH)
    return plans


def _put(body: dict[str, Any], customer: str = "acme") -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    event = api_event(
        "PUT", f"/v1/customers/{customer}/limits", body=body, scopes="admin",
        path_parameters={"customer_id": customer},
    )  # fmt: skip
    status, answer, _ = call(lambda_handler, event)
    return status, answer


def _limits(customer: str = "acme") -> dict[str, Any]:
    from functions.read_api.app import lambda_handler

    event = api_event(
        "GET", f"/v1/customers/{customer}/limits", scopes="read", path_parameters={"customer_id": customer}
    )
    status, answer, _ = call(lambda_handler, event)
    assert status == 200, answer
    return dict(answer)


def _at(base: datetime, i: int) -> str:
    return (base + timedelta(seconds=i)).isoformat()


def _spend_alerts() -> list[dict[str, Any]]:
    return [e["data"] for e in outbox("alert.triggered") if e["data"]["kind"] == "spend"]


def test_an_amount_cap_refuses_events_past_the_plan_price(
    priced: Any, send: Any, process: Any, read: Any
) -> None:
    # GIVEN acme may spend 12.00 a month on gb_out (1.00 a GB up to 10, 0.50 above)
    status, body = _put({"meters": [{"meter_code": "gb_out", "hard_cap_amount_minor": 1200}]})
    assert status == 200, body
    # WHEN 8, 4, 3 and 2 GB arrive in one batch (in that order of timestamp)
    base = NOW - timedelta(minutes=5)
    sizes = (8, 4, 3, 2)
    send(
        *(
            ev(f"g{i}", code="gb_out", timestamp=_at(base, i), properties={"gb": n})
            for i, n in enumerate(sizes)
        )
    )
    process()
    # THEN 8 (8.00) and 4 (11.00) count, 3 (12.50) is refused whole, 2 lands exactly on the cap (12.00)
    assert _statuses(read, "acme", ["g0", "g1", "g2", "g3"]) == {
        "g0": "accepted", "g1": "accepted", "g2": "over_limit", "g3": "accepted",
    }  # fmt: skip
    (row,) = _limits()["meters"]
    assert (row["usage"], row["amount_minor"], row["hard_cap_amount_minor"]) == ("14", 1200, 1200)
    # AND the next event of any size is refused
    send(ev("g4", code="gb_out", properties={"gb": "0.01"}))
    process()
    assert _statuses(read, "acme", ["g4"]) == {"g4": "over_limit"}


def test_parallel_batches_near_an_amount_cap_never_pass_it(
    priced: Any, send: Any, read: Any, atomic_requests: None
) -> None:
    # GIVEN a cap of 1.00 on api_calls at 0.10 each (10 calls), and 4 batches of 5 calls received
    status, body = _put({"meters": [{"meter_code": "api_calls", "hard_cap_amount_minor": 100}]})
    assert status == 200, body
    send(*(ev(f"t{i}", properties={}) for i in range(20)))
    batches = [receive_batch(queue_url("IngestQueue"), 5) for _ in range(4)]
    assert [len(b) for b in batches] == [5] * 4
    # WHEN four workers count them at the same time
    barrier = threading.Barrier(4)
    left: list[list[str]] = []

    def work(messages: list[dict[str, Any]]) -> None:
        batch = _batch()
        barrier.wait()
        failed = _run(batch, messages)
        while failed:  # what a worker gives back to SQS comes again
            failed = _run(_batch(), [m for m in messages if m["MessageId"] in failed])
        left.append(failed)

    threads = [threading.Thread(target=work, args=(m,)) for m in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly 10 calls count (1.00) and 10 are refused: never past the cap, nothing lost
    assert left == [[]] * 4
    statuses = list(_statuses(read, "acme", [f"t{i}" for i in range(20)]).values())
    assert sorted(statuses) == ["accepted"] * 10 + ["over_limit"] * 10
    (row,) = _limits()["meters"]
    assert (row["usage"], row["amount_minor"]) == ("10", 100)


def test_spend_alerts_fire_once_per_level_under_duplicate_storms_and_redelivery(
    priced: Any, send: Any, process: Any
) -> None:
    # GIVEN spend alerts at 1.00 and 5.00 for the month, across api_calls and gb_out
    status, body = _put({"spend_alerts_minor": [500, 100]})
    assert status == 200, body
    # WHEN 6 calls (0.60) and 5 GB (5.00) are sent five times over, and a batch is delivered twice
    events = [ev(f"c{i}", properties={}) for i in range(6)]
    events += [ev(f"g{i}", code="gb_out", properties={"gb": 1}) for i in range(5)]
    for _ in range(5):
        send(*events)
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    assert _run(first, messages) == []
    assert _run(_batch(first.now + timedelta(seconds=200)), messages) == []
    process()
    # THEN the spend is 5.60 and each level fired exactly once, in the current period, not late
    limits = _limits()
    assert limits["spend_minor"] == 560
    assert limits["spend_alerts_fired"] == [
        {
            "alert": f"spend:{level}",
            "kind": "spend",
            "meter_code": None,
            "threshold": None,
            "threshold_minor": level,
            "currency": "USD",
            "period_start": limits["period_start"],
            "period_end": limits["period_end"],
        }
        for level in (100, 500)
    ]
    fired = sorted((a["alert"], a["late"], a["period_start"][:10]) for a in _spend_alerts())
    assert fired == [
        ("spend:100", False, MONTH.date().isoformat()),
        ("spend:500", False, MONTH.date().isoformat()),
    ]
    assert all(a["currency"] == "USD" and a["meter_code"] is None for a in _spend_alerts())


def test_a_late_event_crossing_a_spend_level_fires_in_its_own_period(
    priced: Any, send: Any, process: Any
) -> None:
    # GIVEN spend alerts at 1.00, and 9 calls (0.90) last month
    status, body = _put({"spend_alerts_minor": [100]})
    assert status == 200, body
    end_of_last = MONTH - timedelta(hours=2)
    send(*(ev(f"old{i}", timestamp=_at(end_of_last, i), properties={}) for i in range(9)))
    # AND 9 calls this month
    send(*(ev(f"new{i}", properties={}) for i in range(9)))
    process()
    assert _spend_alerts() == []
    # WHEN one more call of last month arrives late
    send(ev("late", timestamp=_at(end_of_last, 30), properties={}))
    process()
    # THEN last month's spend reached 1.00: the alert fires once, for that period, marked late
    (alert,) = _spend_alerts()
    assert (alert["alert"], alert["spend_minor"], alert["late"]) == ("spend:100", 100, True)
    assert alert["period_start"][:10] == LAST_MONTH.date().isoformat()
    assert _limits()["spend_minor"] == 90  # this month is untouched


def test_prices_that_cannot_be_capped_exactly_are_refused(priced: Any, catalog: Any) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanCreate, SubscriptionCreate

    # GIVEN globex charged on tokens, a meter that groups usage by model (each group is its own line)
    plan = {
        "code": "grouped", "name": "Grouped", "currency": "USD", "interval": "month",
        "charges": [{"meter_code": "tokens", "model": "package", "package_size": 1000, "package_price": "1"}],
    }  # fmt: skip
    create_plan(priced, PlanCreate.model_validate(plan))
    create_subscription(
        priced, SubscriptionCreate(customer_id="globex", plan_code="grouped", start_at=MONTH), "g", now=MONTH
    )
    # WHEN an amount cap or spend alerts are set on it THEN 400 amount_limit_unsupported, nothing stored
    for body, param in (
        (
            {"meters": [{"meter_code": "tokens", "hard_cap_amount_minor": 500}]},
            "meters.0.hard_cap_amount_minor",
        ),
        ({"spend_alerts_minor": [500]}, "spend_alerts_minor"),
    ):
        status, answer = _put(body, "globex")
        assert status == 400, answer
        assert (answer["error"]["code"], answer["error"]["param"]) == ("amount_limit_unsupported", param)
        assert "group" in answer["error"]["message"]
    assert _limits("globex")["meters"] == [] and _limits("globex")["spend_alerts_minor"] == []
    # AND a unit cap on the same meter is still fine; an amount cap is refused whatever the aggregation
    status, answer = _put({"meters": [{"meter_code": "tokens", "hard_cap": "500"}]}, "globex")
    assert status == 200, answer
    status, answer = _put({"meters": [{"meter_code": "api_calls", "hard_cap_amount_minor": 0}]})
    assert status == 422, answer


def test_customers_without_amounts_read_no_subscription(
    priced: Any, send: Any, process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a unit cap only (no amount cap, no spend alert) on acme, and none on globex
    status, body = _put({"meters": [{"meter_code": "api_calls", "hard_cap": "100"}]})
    assert status == 200, body
    reads: list[str] = []
    real = type(priced).customer_subscriptions
    monkeypatch.setattr(
        type(priced), "customer_subscriptions", lambda self, c: reads.append(c) or real(self, c)
    )
    # WHEN both send usage
    send(ev("a1", properties={}), ev("b1", customer="globex", properties={}))
    process()
    # THEN no subscription was read to count it
    assert reads == []
    assert Decimal(_limits()["meters"][0]["usage"]) == 1


def test_each_event_is_priced_by_the_phase_in_force_at_its_timestamp(
    priced: Any, send: Any, process: Any, read: Any
) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import change_plan
    from neruba.models.catalog import PlanChange, PlanCreate

    # GIVEN a cap of 1.00 on api_calls, 0.10 a call, and 5 calls counted (0.50)
    status, body = _put({"meters": [{"meter_code": "api_calls", "hard_cap_amount_minor": 100}]})
    assert status == 200, body
    send(*(ev(f"a{i}", timestamp=_at(NOW - timedelta(minutes=20), i), properties={}) for i in range(5)))
    process()
    # AND the plan changed 5 minutes ago to one at 0.20 a call
    pricey = {
        "code": "pricey", "name": "Pricey", "currency": "USD", "interval": "month",
        "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.20"}],
    }  # fmt: skip
    create_plan(priced, PlanCreate.model_validate(pricey))
    (subscription,) = priced.customer_subscriptions("acme")
    change_plan(priced, subscription.id, PlanChange(plan_code="pricey", at=NOW - timedelta(minutes=5)))
    # WHEN a call of now arrives: 6 calls at 0.20 = 1.20, past the cap
    send(ev("new", timestamp=NOW.isoformat(), properties={}))
    process()
    # AND one from before the change: 6 calls at 0.10 = 0.60
    send(ev("old", timestamp=(NOW - timedelta(minutes=10)).isoformat(), properties={}))
    process()
    # THEN the first is refused and the second counted, each priced by its own phase
    assert _statuses(read, "acme", ["new", "old"]) == {"new": "over_limit", "old": "accepted"}
    (row,) = _limits()["meters"]
    assert (row["usage"], row["amount_minor"]) == ("6", 60)


def test_parallel_batches_of_two_meters_add_up_their_spend_and_fire_each_level_once(
    priced: Any, send: Any, atomic_requests: None
) -> None:
    # GIVEN spend alerts at 1.00, 2.00 and 3.00; 10 calls (1.00) and 10 x 0.2 GB (2.00) in 4 batches
    status, body = _put({"spend_alerts_minor": [100, 200, 300]})
    assert status == 200, body
    send(*(ev(f"c{i}", properties={}) for i in range(10)))
    send(*(ev(f"g{i}", code="gb_out", properties={"gb": "0.2"}) for i in range(10)))
    batches = [receive_batch(queue_url("IngestQueue"), 5) for _ in range(4)]
    assert sorted(len(b) for b in batches) == [5] * 4
    # WHEN four workers count them at once (two meters of one customer share its spend counter)
    barrier = threading.Barrier(4)
    left: list[list[str]] = []

    def work(messages: list[dict[str, Any]]) -> None:
        batch = _batch()
        barrier.wait()
        failed = _run(batch, messages)
        while failed:
            failed = _run(_batch(), [m for m in messages if m["MessageId"] in failed])
        left.append(failed)

    threads = [threading.Thread(target=work, args=(m,)) for m in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN the spend is exactly 3.00 and each level fired once
    assert left == [[]] * 4
    assert _limits()["spend_minor"] == 300
    assert sorted(a["alert"] for a in _spend_alerts()) == ["spend:100", "spend:200", "spend:300"]


def _plan_with_defaults(defaults: dict[str, Any]) -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    body = {
        "code": "pro", "name": "Pro", "currency": "USD", "interval": "month",
        "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"}],
        "defaults": defaults,
    }  # fmt: skip
    status, answer, _ = call(lambda_handler, api_event("POST", "/v1/plans", body=body))
    return status, answer


def test_a_plan_version_takes_no_amount_cap(catalog: Any) -> None:
    status, answer = _plan_with_defaults(
        {"meters": [{"meter_code": "api_calls", "hard_cap_amount_minor": 100}]}
    )
    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["param"]) == (
        "amount_limit_unsupported",
        "defaults.meters.0.hard_cap_amount_minor",
    )


def test_spend_alerts_of_the_customer_apply_under_plan_defaults(
    catalog: Any, send: Any, process: Any, read: Any
) -> None:
    from functions.admin_api.app import lambda_handler

    # GIVEN globex on a plan whose version caps api_calls at 5 calls, and its own spend alert at 0.30
    status, answer = _plan_with_defaults({"meters": [{"meter_code": "api_calls", "hard_cap": "5"}]})
    assert status == 201, answer
    sub = {"customer_id": "globex", "plan_code": "pro", "start_at": LAST_MONTH.isoformat()}
    event = api_event("POST", "/v1/subscriptions", body=sub, headers={"Idempotency-Key": "s-globex"})
    status, answer, _ = call(lambda_handler, event)
    assert status == 201, answer
    status, body = _put({"spend_alerts_minor": [30]}, "globex")
    assert status == 200, body
    # WHEN 7 calls arrive
    send(*(ev(f"p{i}", customer="globex", properties={}) for i in range(7)))
    process()
    # THEN the plan's cap refuses 2 and the customer's spend alert fires once, at 0.30
    statuses = sorted(_statuses(read, "globex", [f"p{i}" for i in range(7)]).values())
    assert statuses == ["accepted"] * 5 + ["over_limit"] * 2
    assert [(a["customer_id"], a["alert"], a["spend_minor"]) for a in _spend_alerts()] == [
        ("globex", "spend:30", 50)
    ]


def test_a_plan_changed_later_to_a_price_that_cannot_be_rated_adds_no_amount(
    priced: Any, send: Any, process: Any, read: Any
) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import change_plan
    from neruba.models.catalog import PlanChange, PlanCreate

    # GIVEN a cap of 12.00 on gb_out, and 8 GB counted (8.00)
    status, body = _put({"meters": [{"meter_code": "gb_out", "hard_cap_amount_minor": 1200}]})
    assert status == 200, body
    send(ev("a0", code="gb_out", timestamp=_at(NOW - timedelta(minutes=20), 0), properties={"gb": 8}))
    process()
    # AND the plan changed since to one bounding each event's charge (no running total decides it)
    bounded = {
        "code": "bounded", "name": "Bounded", "currency": "USD", "interval": "month",
        "charges": [{"meter_code": "gb_out", "model": "percentage", "rate": "50", "per_event_max": "1"}],
    }  # fmt: skip
    create_plan(priced, PlanCreate.model_validate(bounded))
    (subscription,) = priced.customer_subscriptions("acme")
    change_plan(priced, subscription.id, PlanChange(plan_code="bounded", at=NOW - timedelta(minutes=5)))
    # WHEN 10 GB arrive (14.00 at the old price)
    send(ev("n0", code="gb_out", properties={"gb": 10}))
    process()
    # THEN they count without an amount: the amount cap does not guess a price
    assert _statuses(read, "acme", ["n0"]) == {"n0": "accepted"}
    (row,) = _limits()["meters"]
    assert (row["usage"], row["amount_minor"]) == ("18", 800)
    # AND setting the limits again is refused
    status, answer = _put({"meters": [{"meter_code": "gb_out", "hard_cap_amount_minor": 1200}]})
    assert (status, answer["error"]["code"]) == (400, "amount_limit_unsupported"), answer
