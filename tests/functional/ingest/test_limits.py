"""Hard caps, soft caps and alerts decided by the ingest worker with the contribution that counts the
usage (logic/limits): never past a cap under parallel batches, one alert per level and period under
duplicate storms and redelivery, late events and the period's reset as docs/limits.md states."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from neruba import bootstrap
from neruba.logic.idempotency import Actor
from neruba.logic.limits.settings import get_limits, put_limits
from neruba.models.limits import UsageLimitsIn
from tests.functional.ingest.conftest import ev
from tests.functional.webhooks.sources import outbox
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

NOW = datetime.now(UTC)


def _limits(customer: str = "acme", **meters: dict[str, Any]) -> dict[str, Any]:
    body = UsageLimitsIn.model_validate(
        {"meters": [{"meter_code": code, **limits} for code, limits in meters.items()]}
    )
    return put_limits(customer, body, None, Actor("test"))


def _usage(meter: str = "api_calls", customer: str = "acme") -> Decimal:
    rows = {row["meter_code"]: row for row in get_limits(customer)["meters"]}
    return Decimal(rows[meter]["usage"])


def _statuses(read: Callable[..., Any], customer: str, ids: list[str]) -> dict[str, str]:
    found = {}
    for tx in ids:
        status, body = read(
            f"/v1/events/{tx}", query={"customer_id": customer}, path_parameters={"transaction_id": tx}
        )
        assert status == 200, body
        found[tx] = body["status"]
    return found


def _counted(meter: str = "api_calls", customer: str = "acme") -> int:
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings

    hour = NOW.replace(minute=0, second=0, microsecond=0)
    cells = UsageRepository(get_settings().usage_table).aggregates(
        customer,
        meter,
        (hour - timedelta(days=40)).strftime("%Y-%m-%dT%H"),
        (hour + timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
    )
    return sum(cell.usage.count for cell in cells)


def test_events_past_a_hard_cap_are_refused_over_limit_and_not_counted(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN acme may send 3 api_calls a period
    _limits(api_calls={"hard_cap": "3"})
    # WHEN 5 events arrive in one batch
    send(*(ev(f"t{i}", properties={}) for i in range(5)))
    process()
    # THEN the first 3 (by timestamp, then id) count; the last 2 are refused over_limit, uncounted
    statuses = _statuses(read, "acme", [f"t{i}" for i in range(5)])
    assert sorted(statuses.values()) == ["accepted"] * 3 + ["over_limit"] * 2
    assert _counted() == 3
    assert _usage() == 3
    # AND the outcome counters show them
    span = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    status, body = read("/v1/ingest/outcomes", query=span)
    assert status == 200, body
    assert body["totals"]["accepted"] == 3 and body["totals"]["over_limit"] == 2


ARN = "arn:aws:sqs:us-east-1:123456789012:test-IngestQueue"


def _batch(at: datetime | None = None) -> Any:
    from neruba.logic.ingest.worker import IngestBatch

    at = at or datetime.now(UTC)
    return IngestBatch(
        usage=bootstrap.usage(), lookup=bootstrap.ingest_worker_catalog().lookup, now=at, clock=lambda: at
    )


def _run(batch: Any, messages: list[dict[str, Any]]) -> list[str]:
    from neruba_tools.local.pollers import build_sqs_event

    records = build_sqs_event(messages, ARN)["Records"]
    batch.begin(records)
    for record in records:
        batch.process_record(record)
    return list(batch.finish())


def _alerts(meter: str = "api_calls") -> list[dict[str, Any]]:
    return [e["data"] for e in outbox("alert.triggered") if e["data"]["meter_code"] == meter]


def test_parallel_batches_near_a_cap_never_pass_it(send: Any, catalog: Any, atomic_requests: None) -> None:
    # GIVEN a hard cap of 10 tokens a period, and 4 batches of 5 events of 1 token each already received
    _limits(tokens={"hard_cap": "10", "alerts": ["5"]})
    send(*(ev(f"t{i}", code="tokens", properties={"tokens": 1, "model": "a"}) for i in range(20)))
    batches = [receive_batch(queue_url("IngestQueue"), 5) for _ in range(4)]
    assert [len(b) for b in batches] == [5] * 4
    # WHEN four workers count them at the same time
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def work(messages: list[dict[str, Any]]) -> None:
        batch = _batch()
        barrier.wait()
        failed = _run(batch, messages)
        outcomes = [dict(batch.outcomes)]
        while failed:  # what a worker leaves to SQS comes back in another batch (nothing is lost)
            retry = _batch()
            failed = _run(retry, [m for m in messages if m["MessageId"] in failed])
            outcomes.append(dict(retry.outcomes))
        results.append((failed, {k: sum(o.get(k, 0) for o in outcomes) for k in ("accepted", "over_limit")}))

    threads = [threading.Thread(target=work, args=(m,)) for m in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly 10 tokens are counted and 10 events refused, none lost (no message left to retry)
    assert [failed for failed, _ in results] == [[]] * 4
    assert sum(o.get("accepted", 0) for _, o in results) == 10
    assert sum(o.get("over_limit", 0) for _, o in results) == 10
    assert _usage("tokens") == 10
    from neruba.dal.usage import UsageRepository
    from neruba.settings import get_settings

    hour = NOW.replace(minute=0, second=0, microsecond=0)
    cells = UsageRepository(get_settings().usage_table).aggregates(
        "acme",
        "tokens",
        (hour - timedelta(days=1)).strftime("%Y-%m-%dT%H"),
        (hour + timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
    )
    assert sum(c.usage.total or 0 for c in cells) == 10
    # AND the alert level and the cap fired once each
    assert sorted(a["alert"] for a in _alerts("tokens")) == ["a:5", "hard:10"]


def test_one_alert_per_level_under_duplicate_storms_and_redelivery(
    send: Any, process: Any, catalog: Any
) -> None:
    # GIVEN alerts at 2 and 4 calls and a soft cap at 3
    _limits(api_calls={"soft_cap": "3", "alerts": ["2", "4"]})
    # WHEN the same five events are sent five times over, and a batch is delivered twice
    for _ in range(5):
        send(*(ev(f"t{i}", properties={}) for i in range(5)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    first = _batch()
    assert _run(first, messages) == []
    again = _batch(first.now + timedelta(seconds=200))
    assert _run(again, messages) == []
    process()
    # THEN the five events count once, nothing is refused (a soft cap only alerts)
    assert _usage() == 5 and _counted() == 5
    # AND each level fired exactly once
    fired = sorted(a["alert"] for a in _alerts())
    assert fired == ["a:2", "a:4", "soft:3"]
    assert all(
        a["kind"] == {"a": "usage", "soft": "soft_cap"}[a["alert"][:1] if a["alert"][0] == "a" else "soft"]
        for a in _alerts()
    )


def test_the_levels_that_fired_read_back_typed_lowest_first(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN alert levels at 2 and 10 calls, a soft cap at 11 and a hard cap at 12 (monthly periods)
    _limits(api_calls={"alerts": ["10", "2"], "soft_cap": "11", "hard_cap": "12"})
    # WHEN 12 calls are counted: every level is reached
    send(*(ev(f"t{i}", properties={}) for i in range(12)))
    process()
    # THEN GET .../limits names each fired level by kind, meter, threshold in units and period, lowest
    # level first (not in the order of the stored keys, where "a:10" sorts before "a:2")
    status, body = read("/v1/customers/acme/limits", path_parameters={"customer_id": "acme"})
    assert status == 200, body
    (row,) = body["meters"]
    start, end = body["period_start"], body["period_end"]
    assert start.startswith(NOW.strftime("%Y-%m-01T00:00:00"))
    levels = [("a:2", "usage", "2"), ("a:10", "usage", "10"), ("soft:11", "soft_cap", "11")]
    assert row["alerts_fired"] == [
        {
            "alert": alert,
            "kind": kind,
            "meter_code": "api_calls",
            "threshold": threshold,
            "threshold_minor": None,
            "currency": None,
            "period_start": start,
            "period_end": end,
        }
        for alert, kind, threshold in [*levels, ("hard:12", "hard_cap", "12")]
    ]
    # AND each `alert` is the one its alert.triggered event carried
    assert sorted(a["alert"] for a in _alerts()) == sorted(f["alert"] for f in row["alerts_fired"])


def test_a_redelivered_batch_whose_transaction_committed_counts_and_refuses_nothing_twice(
    send: Any, catalog: Any, read: Any
) -> None:
    # GIVEN a cap of 2, and a batch of 3 events counted (2 accepted, 1 over_limit) whose worker died after
    _limits(api_calls={"hard_cap": "2", "alerts": ["1"]})
    send(*(ev(f"t{i}", properties={}) for i in range(3)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    assert _run(_batch(), messages) == []
    # WHEN SQS delivers the same batch again (same messages) after its hold
    again = _batch(datetime.now(UTC) + timedelta(seconds=200))
    assert _run(again, messages) == []
    # THEN the counter, the counted usage and the refusals are as after the first delivery
    assert _usage() == 2 and _counted() == 2
    assert sorted(_statuses(read, "acme", ["t0", "t1", "t2"]).values()) == [
        "accepted",
        "accepted",
        "over_limit",
    ]
    assert dict(again.outcomes).get("over_limit", 0) == 0
    assert sorted(a["alert"] for a in _alerts()) == ["a:1", "hard:2"]


def test_a_counter_write_that_fails_is_retried_and_counts_once(
    send: Any, process: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from neruba.dal.clients import client

    # GIVEN a cap of 3, and the first write of the period counter failing with throttling (a conditional
    # put, or a transaction when the write needs one)
    _limits(api_calls={"hard_cap": "3"})
    dynamodb = client("dynamodb")
    failures = [1]

    def flaky(real: Any, operation: str) -> Any:
        def call(**request: Any) -> Any:
            if failures[0] and "LIM#" in str(request.get("TransactItems", request.get("Item"))):
                failures[0] -= 1
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, operation
                )
            return real(**request)

        return call

    monkeypatch.setattr(dynamodb, "transact_write_items", flaky(dynamodb.transact_write_items, "Transact"))
    monkeypatch.setattr(dynamodb, "put_item", flaky(dynamodb.put_item, "PutItem"))
    # WHEN 5 events are processed (the failed batch goes back to SQS and comes again)
    send(*(ev(f"t{i}", properties={}) for i in range(5)))
    process()
    # THEN 3 count and 2 are refused, once
    assert failures == [0]
    assert _usage() == 3 and _counted() == 3


def test_late_events_count_in_their_own_period_and_the_period_resets(
    enqueue: Any, process: Any, catalog: Any, read: Any
) -> None:
    # GIVEN daily limit periods: a cap of 2 calls a day, an alert at 2
    body = UsageLimitsIn.model_validate(
        {"interval": "day", "meters": [{"meter_code": "api_calls", "hard_cap": "2", "alerts": ["2"]}]}
    )
    put_limits("acme", body, None, Actor("test"))
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    at = lambda day, n: (day + timedelta(minutes=n)).isoformat()  # noqa: E731
    # WHEN yesterday's period fills up, then today's
    enqueue(*(ev(f"y{i}", timestamp=at(yesterday, i), properties={}) for i in range(3)))
    process()
    enqueue(*(ev(f"d{i}", timestamp=at(today, i), properties={}) for i in range(3)))
    process()
    # AND a late event for yesterday arrives today
    enqueue(ev("late", timestamp=at(yesterday, 30), properties={}))
    process()
    # THEN each period took 2 and refused the rest, the late one included (its period is full)
    statuses = _statuses(read, "acme", ["y0", "y1", "y2", "d0", "d1", "d2", "late"])
    assert statuses == {
        "y0": "accepted", "y1": "accepted", "y2": "over_limit",
        "d0": "accepted", "d1": "accepted", "d2": "over_limit", "late": "over_limit",
    }  # fmt: skip
    assert _usage() == 2
    # AND each period fired its alert once: the period reset the fired levels; yesterday's says late
    alerts = sorted(_alerts(), key=lambda a: a["period_start"])
    assert [(a["alert"], a["period_start"][:10]) for a in alerts] == [
        ("a:2", yesterday.date().isoformat()),
        ("hard:2", yesterday.date().isoformat()),
        ("a:2", today.date().isoformat()),
        ("hard:2", today.date().isoformat()),
    ]
    # yesterday's levels were reached by events counted after that period ended: marked late
    assert [a["late"] for a in alerts] == [True, True, False, False]


def test_meters_without_limits_write_no_counter(send: Any, process: Any, catalog: Any) -> None:
    import boto3

    from neruba.settings import get_settings

    # GIVEN limits on tokens only
    _limits(tokens={"alerts": ["100"]})
    # WHEN api_calls are counted
    send(ev("t1", properties={}))
    process()
    # THEN no counter item exists
    items = boto3.client("dynamodb").scan(TableName=get_settings().usage_table)["Items"]
    assert [i for i in items if i["pk"]["S"].startswith("LIM#")] == []
    assert _counted() == 1


def test_a_counter_moved_between_read_and_commit_makes_the_batch_decide_again(
    send: Any, catalog: Any, read: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a cap of 3; batch A holds a0..a2, batch B holds b0, b1
    _limits(api_calls={"hard_cap": "3"})
    send(*(ev(f"a{i}", properties={}) for i in range(3)))
    batch_a = receive_batch(queue_url("IngestQueue"), 10)
    send(*(ev(f"b{i}", properties={}) for i in range(2)))
    batch_b = receive_batch(queue_url("IngestQueue"), 10)
    limits = bootstrap.limits()
    real = limits.counter
    interleaved: list[str] = []

    def counter_then_b(*args: Any) -> Any:
        seen = real(*args)
        if not interleaved:  # A has read the counter (empty): B counts before A commits
            interleaved.append("b")
            assert _run(_batch(), batch_b) == []
        return seen

    monkeypatch.setattr(limits, "counter", counter_then_b)
    # WHEN A commits what it decided on the stale counter
    batch = _batch()
    assert _run(batch, batch_a) == []
    # THEN A's commit was refused, it read again and took only what B left: 1 of its 3
    assert interleaved == ["b"]
    assert _usage() == 3 and _counted() == 3
    statuses = _statuses(read, "acme", ["a0", "a1", "a2", "b0", "b1"])
    assert [statuses[t] for t in ("b0", "b1")] == ["accepted", "accepted"]
    assert sorted(statuses[t] for t in ("a0", "a1", "a2")) == ["accepted", "over_limit", "over_limit"]
    assert dict(batch.outcomes) == {"accepted": 1, "over_limit": 2}


def test_boundaries_exact_landing_accepted_partial_refused_whole_and_a_refusal_is_final(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a hard cap of 10 tokens
    _limits(tokens={"hard_cap": "10"})
    at = lambda n: (NOW.replace(minute=0, second=0, microsecond=0) + timedelta(seconds=n)).isoformat()  # noqa: E731
    tok = lambda tx, n, t: ev(tx, code="tokens", timestamp=at(t), properties={"tokens": n, "model": "a"})  # noqa: E731
    # WHEN 4 then 6 tokens arrive (landing exactly on 10), then 0.5 (past it), in one batch
    enqueue(tok("a", 4, 1), tok("b", 6, 2), tok("c", "0.5", 3))
    process()
    # THEN the first two count and the one past the cap is refused whole
    assert _statuses(read, "acme", ["a", "b", "c"]) == {"a": "accepted", "b": "accepted", "c": "over_limit"}
    assert _usage("tokens") == 10
    # AND after the cap is raised to 12, the refused event sent again stays refused (a duplicate)
    _limits(tokens={"hard_cap": "12"})
    enqueue(tok("c", "0.5", 3))
    process()
    _, body = read("/v1/events/c", query={"customer_id": "acme"}, path_parameters={"transaction_id": "c"})
    assert body["status"] == "over_limit" and body["copies"] == {"duplicate": 1}
    assert [o["outcome"] for o in body["outcomes"]] == ["over_limit", "duplicate"]
    # AND a larger event that does not fit is refused while a smaller later one still fits
    enqueue(tok("d", 3, 4), tok("e", 2, 5))
    process()
    assert _statuses(read, "acme", ["d", "e"]) == {"d": "over_limit", "e": "accepted"}
    assert _usage("tokens") == 12


def test_a_write_refused_for_another_reason_is_isolated_event_by_event(
    send: Any, process: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.usage import CellWriteRefusedError, UsageRepository

    # GIVEN a cap of 2, and DynamoDB refusing every write of more than one event (not a condition)
    _limits(api_calls={"hard_cap": "2"})
    real = UsageRepository.count_group

    def refusing(self: Any, batch: str, write: Any, now: Any, extra: Any = ()) -> bool:
        if write.count > 1:
            raise CellWriteRefusedError("refused")
        return real(self, batch, write, now, extra)

    monkeypatch.setattr(UsageRepository, "count_group", refusing)
    # WHEN 3 events arrive in one batch
    send(*(ev(f"t{i}", properties={}) for i in range(3)))
    process()
    # THEN each is decided on its own: 2 counted, 1 refused, nothing retried forever or lost
    statuses = _statuses(read, "acme", ["t0", "t1", "t2"])
    assert sorted(statuses.values()) == ["accepted", "accepted", "over_limit"]
    assert _usage() == 2 and _counted() == 2


def test_the_sweep_counts_what_a_dead_worker_left_under_the_same_cap(
    send: Any, read: Any, catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.sweeps import usage as sweep

    # GIVEN a cap of 2, and a worker that wrote 3 events and died before counting them
    _limits(api_calls={"hard_cap": "2", "alerts": ["2"]})
    send(*(ev(f"t{i}", properties={}) for i in range(3)))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    batch = _batch()
    from neruba_tools.local.pollers import build_sqs_event

    records = build_sqs_event(messages, ARN)["Records"]
    batch.begin(records)
    for record in records:
        batch.process_record(record)
    assert _counted() == 0
    # WHEN the sweep adopts them
    monkeypatch.setattr(sweep, "SETTLE", timedelta(0))
    report = sweep.sweep_usage(
        bootstrap.usage(),
        bootstrap.ingest_worker_catalog().lookup,
        datetime.now(UTC) - timedelta(minutes=5),
        datetime.now(UTC) + timedelta(minutes=1),
        now=datetime.now(UTC) + timedelta(minutes=1),
    )
    # THEN it counts under the cap as the worker would: 2 counted, 1 refused, the alert fired once
    assert [r["kind"] for r in report.repairs].count("event_over_limit") == 1
    assert _usage() == 2 and _counted() == 2
    statuses = _statuses(read, "acme", ["t0", "t1", "t2"])
    assert sorted(statuses.values()) == ["accepted", "accepted", "over_limit"]
    assert sorted(a["alert"] for a in _alerts()) == ["a:2", "hard:2"]


def test_more_refusals_than_one_transaction_holds_are_refused_ahead_of_it(
    send: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a cap of 1 call, and 100 calls in one batch (1 counted, 99 to refuse: more than fit with the
    # contribution, the counter and the alert in one 100-action transaction)
    _limits(api_calls={"hard_cap": "1"})
    send(*(ev(f"t{i:03d}", properties={}) for i in range(100)))
    # WHEN the worker runs until the queue is empty
    batches = process()
    # THEN the refusals the transaction could not hold were written before it: one batch, nothing left
    # accepted but uncounted, nothing lost or counted twice
    assert batches == 1
    statuses = _statuses(read, "acme", [f"t{i:03d}" for i in range(100)])
    assert sorted(statuses.values()) == ["accepted"] + ["over_limit"] * 99
    assert _usage() == 1 and _counted() == 1
    span = {"from": (NOW - timedelta(hours=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    totals = read("/v1/ingest/outcomes", query=span)[1]["totals"]
    assert (totals["accepted"], totals["over_limit"]) == (1, 99)


def test_an_event_refused_over_a_cap_is_not_sent_to_billing_in_advance(
    send: Any, process: Any, catalog: Any, read: Any
) -> None:
    import boto3

    from tests.support.aws import queue_url as url_of

    # GIVEN api_calls billed in advance, and a cap of 2 calls
    catalog.register_advance_meter("api_calls")
    _limits(api_calls={"hard_cap": "2"})
    # WHEN 3 calls are counted
    send(*(ev(f"t{i}", properties={}) for i in range(3)))
    process()
    # THEN only the 2 accepted calls go to the billing queue
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url_of("BillingQueue"), MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [m["Body"] for m in got]
    import json

    sent = sorted(json.loads(b)["advance"]["transaction_id"] for b in bodies if '"advance"' in b)
    statuses = _statuses(read, "acme", ["t0", "t1", "t2"])
    assert sent == sorted(t for t, status in statuses.items() if status == "accepted")
    assert len(sent) == 2


def test_a_sparse_batch_counts_limited_days_through_the_counter_and_the_rest_as_pending(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN acme capped at 3 calls a year, globex without limits; one batch with one call per customer and
    # day over 10 days each (20 sparse days: enough for the batch to write pending items)
    body = UsageLimitsIn.model_validate(
        {"interval": "year", "period_anchor": (NOW - timedelta(days=20)).isoformat(), "meters": [
            {"meter_code": "api_calls", "hard_cap": "3"}
        ]}
    )  # fmt: skip
    put_limits("acme", body, None, Actor("test"))
    days = [(NOW - timedelta(days=d)).isoformat() for d in range(10)]
    enqueue(
        *(ev(f"a{d}", timestamp=days[d], properties={}) for d in range(10)),
        *(ev(f"g{d}", customer="globex", timestamp=days[d], properties={}) for d in range(10)),
    )
    process()
    # THEN acme's limited days went through its counter: 3 counted, 7 refused; globex's 10 all count
    acme = _statuses(read, "acme", [f"a{d}" for d in range(10)])
    assert sorted(acme.values()) == ["accepted"] * 3 + ["over_limit"] * 7
    assert _usage() == 3 and _counted() == 3
    globex = _statuses(read, "globex", [f"g{d}" for d in range(10)])
    assert set(globex.values()) == {"accepted"} and _counted(customer="globex") == 10
