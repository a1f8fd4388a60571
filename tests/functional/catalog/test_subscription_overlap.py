"""One meter billed once: overlapping subscriptions are refused, creation is idempotent and atomic.

Through the real admin handler on moto: the overlap rule (same meter or same plan, overlapping times),
blind retries, Idempotency-Key replays, two concurrent creations, and a crash while the subscription's
writes are committed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.catalog.conftest import Api
from tests.functional.catalog.test_catalog_api import PLAN, _seed

OTHER = PLAN | {"code": "pro_plus", "name": "Pro plus"}  # another plan charging api_calls
STORAGE = {
    "code": "storage",
    "name": "Storage",
    "currency": "USD",
    "interval": "month",
    "charges": [{"meter_code": "storage_gb", "model": "per_unit", "unit_price": "0.1"}],
}


@pytest.fixture
def catalog(admin: Api) -> Api:
    _seed(admin)
    meter = {"code": "storage_gb", "name": "Storage", "aggregation": "max", "field": "gb"}
    assert admin("POST", "/v1/meters", meter)[0] == 201
    for plan in (PLAN, OTHER, STORAGE):
        assert admin("POST", "/v1/plans", plan)[0] == 201, plan["code"]
    return admin


def _listed(customer_id: str = "acme") -> list[dict[str, Any]]:
    from neruba.dal.plans import PlansRepository
    from neruba.settings import get_settings

    return [
        s.document for s in PlansRepository(get_settings().catalog_table).customer_subscriptions(customer_id)
    ]


def _subscribe(
    admin: Api, plan: str = "pro", start: datetime | None = None, key: str | None = None
) -> tuple[int, Any]:
    body: dict[str, Any] = {"customer_id": "acme", "plan_code": plan}
    if start is not None:
        body["start_at"] = start.isoformat()
    headers = {"Idempotency-Key": key} if key else None
    return admin("POST", "/v1/subscriptions", body, headers=headers)


def _overlap(answer: tuple[int, Any]) -> dict[str, Any]:
    status, body = answer
    assert (status, body["error"]["code"]) == (409, "subscription_overlap"), body
    return dict(body["error"]["details"][0])


def test_a_second_subscription_charging_the_same_meter_is_refused(catalog: Api) -> None:
    # GIVEN acme subscribed to pro (which charges api_calls)
    status, first = _subscribe(catalog)
    assert status == 201, first
    # WHEN acme subscribes to pro again, or to another plan charging api_calls
    same_plan = _overlap(_subscribe(catalog))
    same_meter = _overlap(_subscribe(catalog, "pro_plus"))
    # THEN both are refused, naming the subscription already charging the meter
    assert same_plan["subscription_id"] == same_meter["subscription_id"] == first["id"]
    assert same_meter["meter_code"] == "api_calls"
    # AND a plan charging only other meters is accepted
    assert _subscribe(catalog, "storage")[0] == 201
    assert len(_listed()) == 2


def test_a_blind_retry_without_a_key_creates_nothing_and_names_the_first(catalog: Api) -> None:
    # GIVEN a creation whose answer was lost
    start = datetime.now(UTC) - timedelta(days=1)
    status, first = _subscribe(catalog, start=start)
    assert status == 201
    # WHEN the client sends the same body again without an Idempotency-Key
    found = _overlap(_subscribe(catalog, start=start))
    # THEN nothing new exists and the answer lets the client recognise its first creation
    assert [s["id"] for s in _listed()] == [first["id"]]
    assert found["subscription_id"] == first["id"]
    assert (found["plan_code"], found["plan_version"], found["start_at"]) == ("pro", 1, first["start_at"])


def test_periods_that_do_not_overlap_are_accepted(catalog: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # GIVEN a subscription that started 10 days ago and is canceled at the end of its period
    _, first = _subscribe(catalog, start=now - timedelta(days=10))
    sid = first["id"]
    status, canceled = catalog("POST", f"/v1/subscriptions/{sid}/cancel", {}, {"subscription_id": sid})
    assert status == 200, canceled
    from neruba.domain.periods import add_interval

    period_end = add_interval(datetime.fromisoformat(first["start_at"]), "month", 1)
    # WHEN a new subscription charging the same meter starts before that end, THEN it is refused
    assert _overlap(_subscribe(catalog, start=period_end - timedelta(seconds=1)))["subscription_id"] == sid
    # WHEN it starts exactly at the end, inside an hour, THEN it is refused too: the first one's last
    # window bills that whole hour (a meter's usage is kept per hour)
    assert _overlap(_subscribe(catalog, "pro_plus", start=period_end))["subscription_id"] == sid
    # WHEN it starts at the next whole hour, THEN it is accepted (periods are half-open)
    next_hour = period_end.replace(minute=0, second=0) + timedelta(hours=1)
    status, second = _subscribe(catalog, "pro_plus", start=next_hour)
    assert status == 201, second
    # AND a future-dated subscription blocks an open-ended one starting earlier
    assert _overlap(_subscribe(catalog, start=now))["subscription_id"] in {sid, second["id"]}


def test_an_immediately_canceled_subscription_stops_blocking_from_the_next_whole_hour(catalog: Api) -> None:
    _, first = _subscribe(catalog, start=datetime.now(UTC) - timedelta(days=2))
    sid = first["id"]
    status, ended = catalog(
        "POST", f"/v1/subscriptions/{sid}/cancel", {"at_period_end": False}, {"subscription_id": sid}
    )
    assert status == 200
    # WHEN another subscription charging the meter starts now, in the hour the first one ended in
    # THEN it is refused: usage is kept per hour, and the first one's final window bills that whole hour
    ended_at = datetime.fromisoformat(ended["ended_at"])
    next_hour = ended_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    details = _overlap(_subscribe(catalog, "pro_plus"))
    assert details["subscription_id"] == sid
    assert datetime.fromisoformat(details["overlap_end"].replace("Z", "+00:00")) == next_hour
    # AND started at the next whole hour it is accepted
    status, second = _subscribe(catalog, start=next_hour)
    assert status == 201, second
    # but a backdated one reaching into the first one's life is still refused
    assert _overlap(_subscribe(catalog, "pro_plus", start=datetime.now(UTC) - timedelta(days=1)))


def test_a_plan_change_onto_a_meter_another_subscription_charges_is_refused(catalog: Api) -> None:
    # GIVEN acme on storage (storage_gb) and on pro (api_calls)
    start = datetime.now(UTC) - timedelta(days=2)
    _, storage = _subscribe(catalog, "storage", start=start)
    _, pro = _subscribe(catalog, "pro", start=start)
    # WHEN the storage subscription moves to pro_plus (which charges api_calls)
    status, body = catalog(
        "POST",
        f"/v1/subscriptions/{storage['id']}/change-plan",
        {"plan_code": "pro_plus"},
        {"subscription_id": storage["id"]},
    )
    # THEN it is refused, naming pro's subscription, and the storage subscription is unchanged
    assert _overlap((status, body))["subscription_id"] == pro["id"]
    stored = next(s for s in _listed() if s["id"] == storage["id"])
    assert [p["plan_code"] for p in stored["phases"]] == ["storage"]
    # AND moving pro itself to pro_plus (same meter, same subscription) is a plan change, accepted
    status, changed = catalog(
        "POST",
        f"/v1/subscriptions/{pro['id']}/change-plan",
        {"plan_code": "pro_plus"},
        {"subscription_id": pro["id"]},
    )
    assert status == 200, changed


def test_the_idempotency_key_replays_the_first_answer_and_refuses_another_body(catalog: Api) -> None:
    first = _subscribe(catalog, key="sub-k1")
    again = _subscribe(catalog, key="sub-k1")
    assert first[0] == again[0] == 201
    assert again[1] == first[1]
    status, body = _subscribe(catalog, "storage", key="sub-k1")
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
    assert len(_listed()) == 1


Hook = Callable[..., None]
Register = Callable[..., None]


@pytest.fixture
def before_transaction(aws: dict[str, str]) -> Iterator[Register]:
    """Register a hook run before each TransactWriteItems or PutItem request (the writes of a create),
    and optionally one run after it answered."""
    from neruba.dal.clients import client

    events = client("dynamodb").meta.events
    registered: list[tuple[str, Hook]] = []

    def register(hook: Hook, after: Hook | None = None) -> None:
        for operation in ("TransactWriteItems", "PutItem"):
            for name, handler in (
                (f"before-parameter-build.dynamodb.{operation}", hook),
                (f"after-call.dynamodb.{operation}", after),
            ):
                if handler is not None:
                    events.register(name, handler)
                    registered.append((name, handler))

    yield register
    for name, hook in registered:
        events.unregister(name, hook)


def _reads_before_writes(before_transaction: Register) -> None:
    """Make two threads both finish their reads before either sends its first write.

    The writes then reach the store one at a time: DynamoDB serialises transactions on the same item,
    while moto in-process checks and applies a transaction without a lock, so two threads inside it at
    once could both pass a condition only one of them can pass on AWS.
    """
    barrier = threading.Barrier(2, timeout=5)
    waited: set[int] = set()
    one_at_a_time = threading.Lock()

    def wait_for_the_other(**_: Any) -> None:
        me = threading.get_ident()
        if me not in waited:
            waited.add(me)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        one_at_a_time.acquire()

    def answered(**_: Any) -> None:
        one_at_a_time.release()

    before_transaction(wait_for_the_other, answered)


def _in_parallel(*calls: Callable[[], tuple[int, Any]]) -> list[tuple[int, Any]]:
    answers: list[tuple[int, Any]] = [(0, None)] * len(calls)

    def run(index: int) -> None:
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_two_concurrent_creations_cannot_both_pass(catalog: Api, before_transaction: Register) -> None:
    # GIVEN two creations of overlapping subscriptions that both finish their reads before either writes
    _reads_before_writes(before_transaction)
    answers = _in_parallel(lambda: _subscribe(catalog, "pro"), lambda: _subscribe(catalog, "pro_plus"))
    # THEN exactly one is created and the other is refused, naming it
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409], answers
    created = next(body for status, body in answers if status == 201)
    refused = next(body for status, body in answers if status == 409)
    assert refused["error"]["details"][0]["subscription_id"] == created["id"]
    assert [s["id"] for s in _listed()] == [created["id"]]


def test_a_plan_change_racing_a_creation_onto_the_same_meter_cannot_both_pass(
    catalog: Api, before_transaction: Register
) -> None:
    # GIVEN acme on storage, moved to pro_plus (api_calls) while a pro subscription (api_calls) is created
    _, storage = _subscribe(catalog, "storage", start=datetime.now(UTC) - timedelta(days=1))
    sid = storage["id"]
    _reads_before_writes(before_transaction)
    change, create = _in_parallel(
        lambda: catalog(
            "POST",
            f"/v1/subscriptions/{sid}/change-plan",
            {"plan_code": "pro_plus"},
            {"subscription_id": sid},
        ),
        lambda: _subscribe(catalog, "pro"),
    )
    # THEN one of them is refused as an overlap
    assert sorted([change[0], create[0]]) in ([200, 409], [201, 409]), (change, create)
    refused = change if change[0] == 409 else create
    assert refused[1]["error"]["code"] == "subscription_overlap"
    charging = [s for s in _listed() if any(p["plan_code"] in ("pro", "pro_plus") for p in s["phases"])]
    assert len(charging) == 1


class Crash(Exception):
    pass


def _touches(params: dict[str, Any], table: str) -> bool:
    """True when a write request (single or transactional) writes to ``table``."""
    actions = [next(iter(action.values())) for action in params.get("TransactItems", [])]
    return any(p.get("TableName") == table for p in [params, *actions])


def test_a_crash_while_writing_leaves_nothing_half_made(catalog: Api, before_transaction: Register) -> None:
    from neruba.dal.billing import BillingRepository
    from neruba.settings import get_settings

    billing_table = get_settings().billing_table
    armed = [True]

    def crash_on_billing_write(params: dict[str, Any], **_: Any) -> None:
        if armed[0] and _touches(params, billing_table):
            armed[0] = False
            raise Crash("the function died while writing")

    before_transaction(crash_on_billing_write)
    # WHEN the create dies while writing the billing state
    assert _subscribe(catalog)[0] == 500
    # THEN nothing of it exists (or all of it), and a blind retry leaves one subscription with its state
    assert len(_listed()) in (0, 1)
    status, body = _subscribe(catalog)
    subs = _listed()
    assert len(subs) == 1, subs
    assert BillingRepository(billing_table).state(subs[0]["id"]) is not None
    assert status == 201, body


def test_a_crash_while_canceling_leaves_billing_consistent(
    catalog: Api, before_transaction: Register
) -> None:
    from neruba.dal.billing import BillingRepository
    from neruba.settings import get_settings

    billing_table = get_settings().billing_table
    _, sub = _subscribe(catalog, start=datetime.now(UTC) - timedelta(days=3))
    sid = sub["id"]
    armed = [True]

    def crash_on_billing_write(params: dict[str, Any], **_: Any) -> None:
        if armed[0] and _touches(params, billing_table):
            armed[0] = False
            raise Crash("the function died while writing")

    from neruba.dal.clients import client

    client("dynamodb").meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem", crash_on_billing_write
    )
    before_transaction(crash_on_billing_write)
    try:
        body = {"at_period_end": False}
        assert catalog("POST", f"/v1/subscriptions/{sid}/cancel", body, {"subscription_id": sid})[0] == 500
        # WHEN the operator retries the cancel
        status, canceled = catalog("POST", f"/v1/subscriptions/{sid}/cancel", body, {"subscription_id": sid})
    finally:
        client("dynamodb").meta.events.unregister(
            "before-parameter-build.dynamodb.UpdateItem", crash_on_billing_write
        )
    # THEN the subscription is canceled and billing stops at its end
    state = BillingRepository(billing_table).state(sid)
    assert state is not None and state.ends_at, (status, canceled, state)
    assert (status, canceled["status"]) == (200, "canceled"), canceled


def test_a_key_used_before_idempotency_records_were_kept_still_replays(catalog: Api) -> None:
    # GIVEN a subscription created with key k-old when only its id recorded the key (no IDEM record)
    import hashlib

    from neruba.dal.plans import PlansRepository
    from neruba.settings import get_settings

    sid = "sub_" + hashlib.sha256(b"acme:k-old").hexdigest()[:20]
    start = datetime.now(UTC).isoformat()
    phase = {"plan_code": "pro", "plan_version": 1, "start_at": start, "end_at": None}
    doc = {
        "id": sid,
        "customer_id": "acme",
        "status": "active",
        "currency": "USD",
        "interval": "month",
        "start_at": start,
        "trial_end": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [phase],
        "created_at": start,
    }
    PlansRepository(get_settings().catalog_table).create_subscription(doc)
    # WHEN the client retries with that key, THEN it gets that subscription; another plan is a conflict
    status, body = _subscribe(catalog, key="k-old")
    assert (status, body["id"]) == (201, sid)
    status, body = _subscribe(catalog, "storage", key="k-old")
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
    assert len(_listed()) == 1


@pytest.mark.parametrize("start", ["9999-12-15T00:00:00+00:00", "9999-12-31T23:59:59+00:00"])
def test_a_start_whose_first_period_runs_past_the_calendar_is_refused(catalog: Api, start: str) -> None:
    # GIVEN a monthly plan, WHEN a subscription would start so late that its first period ends after 9999
    status, body = _subscribe(catalog, start=datetime.fromisoformat(start))
    # THEN it is refused naming start_at, and nothing is stored
    assert (status, body["error"]["code"], body["error"].get("param")) == (
        400,
        "start_past_calendar",
        "start_at",
    )
    assert _listed() == []
