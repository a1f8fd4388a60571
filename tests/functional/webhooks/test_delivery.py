"""Outgoing webhooks end to end: outbox written with the change, relay, delivery worker, retries, crashes,
rotation, resend; a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import boto3
import pytest

from neruba.logic.catalog.entries import create_customer
from neruba.logic.webhooks import delivery, endpoints, relay, verify
from neruba.logic.webhooks.context import Webhooks
from neruba.models.catalog import Customer
from neruba.models.webhooks import EndpointCreate, EndpointUpdate, SecretRotation
from neruba.settings import get_settings
from neruba.timefmt import parse_ts
from tests.functional.webhooks.conftest import ADMIN, NOW, MemoryQueue, Receiver
from tests.support.aws import receive_all


def plans() -> Any:
    from neruba import bootstrap

    return bootstrap.plans()


def endpoint(hooks: Webhooks, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body = EndpointCreate(url=url, enabled_events=events or ["customer.created"])  # type: ignore[arg-type]
    return endpoints.create(hooks, body, ADMIN, NOW)


def new_customer(external_id: str) -> None:
    create_customer(plans(), Customer(external_id=external_id, name=external_id.title(), currency="USD"))


def outbox_items() -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb")
    items = ddb.scan(TableName=get_settings().ops_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("WHOUT#")]


def drain_sqs(hooks: Webhooks, now: datetime) -> list[str]:
    """Run every visible delivery message through the worker (deleting each handled one)."""
    sqs = boto3.client("sqs")
    outcomes = []
    for msg in receive_all(sqs, str(hooks.queue_url)):
        outcomes.append(delivery.process_message(msg["Body"], hooks, now))
        sqs.delete_message(QueueUrl=str(hooks.queue_url), ReceiptHandle=msg["ReceiptHandle"])
    return outcomes


def drive(hooks: MemoryQueue, start: datetime, rng: Any = lambda: 0.5, limit: int = 500) -> list[str]:
    """Deliver from the in-memory queue, moving the clock by each message's delay (an SQS hop)."""
    now = start
    outcomes = []
    while hooks.queue and limit:
        body, delay = hooks.queue.pop(0)
        now += timedelta(seconds=delay)
        outcomes.append(delivery.process_message(body, hooks, now, rng=rng))
        limit -= 1
    return outcomes


# ---------------------------------------------------------------- the outbox in its producers


def test_a_customer_created_writes_its_event_in_the_same_transaction(hooks: Webhooks) -> None:
    new_customer("acme")
    [item] = outbox_items()
    doc = json.loads(item["doc"]["S"])
    assert (doc["type"], doc["customer_id"], doc["data"]["external_id"]) == (
        "customer.created",
        "acme",
        "acme",
    )
    # a refused change (the customer exists) writes no event
    with pytest.raises(Exception, match="exists"):
        new_customer("acme")
    assert len(outbox_items()) == 1


def test_an_event_reaches_the_receiver_signed_with_an_id_and_a_sequence(
    hooks: Webhooks, receiver: Receiver
) -> None:
    created = endpoint(hooks, receiver.url)
    assert created["secret"].startswith("whsec_")
    for name in ("acme", "globex", "acme2"):
        new_customer(name)
    assert relay.relay_once(hooks, NOW) == {"events": 3, "messages": 3}
    assert outbox_items() == []
    assert drain_sqs(hooks, NOW) == ["delivered"] * 3
    bodies = [json.loads(raw) for raw, _ in receiver.received]
    assert all(b["id"].startswith("evt_") and b["type"] == "customer.created" for b in bodies)
    assert all(b["sequence"] == 1 for b in bodies)  # each customer's first event
    for raw, headers in receiver.received:
        assert verify(raw, headers["Neruba-Signature"], [created["secret"]], now=NOW.timestamp())
    # the relay run again sends nothing more
    assert relay.relay_once(hooks, NOW) == {"events": 0, "messages": 0}


def test_sequence_numbers_follow_a_customers_events(memory_hooks: MemoryQueue, receiver: Receiver) -> None:
    from neruba.dal.transaction import Transaction
    from neruba.logic.webhooks import notify

    endpoint(memory_hooks, receiver.url)
    for n in range(3):
        unit = Transaction()
        notify(unit, "customer.created", "acme", {"n": n}, NOW + timedelta(seconds=n))
        unit.commit()
    relay.relay_once(memory_hooks, NOW)
    drive(memory_hooks, NOW)
    got = sorted(
        (b["data"]["object"]["n"], b["sequence"]) for b in map(json.loads, (r for r, _ in receiver.received))
    )
    assert got == [(0, 1), (1, 2), (2, 3)]


# ---------------------------------------------------------------- a kill between change and delivery


def test_a_relay_killed_after_queueing_before_marking_still_delivers_once(
    hooks: Webhooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint(hooks, receiver.url)
    new_customer("acme")

    def killed(*args: Any) -> None:
        raise SystemExit("relay killed")

    monkeypatch.setattr(relay, "mark_done", killed)
    with pytest.raises(SystemExit):
        relay.relay_once(hooks, NOW)
    monkeypatch.undo()
    assert len(outbox_items()) == 1  # still there: the next run does it again
    relay.relay_once(hooks, NOW + timedelta(minutes=1))
    assert outbox_items() == []
    outcomes = drain_sqs(hooks, NOW + timedelta(minutes=1))
    assert sorted(outcomes) == ["delivered", "stale"]  # two messages, one POST
    assert len(receiver.received) == 1


def test_a_worker_killed_after_the_post_before_recording_delivers_the_same_event_again(
    hooks: Webhooks, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint(hooks, receiver.url)
    new_customer("acme")
    relay.relay_once(hooks, NOW)
    sqs = boto3.client("sqs")
    [msg] = receive_all(sqs, str(hooks.queue_url))

    def killed(*args: Any) -> bool:
        raise SystemExit("worker killed")

    monkeypatch.setattr(delivery, "record", killed)
    with pytest.raises(SystemExit):
        delivery.process_message(msg["Body"], hooks, NOW)
    monkeypatch.undo()
    # the message was not deleted: SQS shows it again; before the lease ends it is left to its holder
    assert delivery.process_message(msg["Body"], hooks, NOW + timedelta(seconds=10)) == "busy"
    assert delivery.process_message(msg["Body"], hooks, NOW + delivery.LEASE) == "delivered"
    # at least once: the receiver saw the same event id twice and keeps it once
    assert len(receiver.received) == 2 and len(set(receiver.event_ids())) == 1
    event_id = receiver.event_ids()[0]
    states, attempts = hooks.repo.deliveries_of(event_id)
    assert [s.status for s in states] == ["delivered"] and len(attempts) == 1
    # the message again, later: nothing more is posted
    assert delivery.process_message(msg["Body"], hooks, NOW + timedelta(hours=1)) == "stale"
    assert len(receiver.received) == 2


# ---------------------------------------------------------------- retries


def test_500_three_times_then_200_is_one_delivery_and_four_attempts(memory_hooks: MemoryQueue) -> None:
    receiver = Receiver([500, 500, 500, 200])
    try:
        endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        outcomes = drive(memory_hooks, NOW)
    finally:
        receiver.close()
    assert [o for o in outcomes if o != "waiting"] == ["pending", "pending", "pending", "delivered"]
    event_id = receiver.event_ids()[0]
    assert set(receiver.event_ids()) == {event_id} and len(receiver.received) == 4
    [state], attempts = memory_hooks.repo.deliveries_of(event_id)
    assert state.status == "delivered" and state.attempts == 4
    assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]
    assert all(len(a.response_excerpt) <= 500 and a.latency_ms >= 0 for a in attempts)
    # the waits grow: full jitter at 0.5 of 30 s, 60 s, 120 s
    times = [parse_ts(a.at) for a in attempts]
    assert [int((b - a).total_seconds()) for a, b in pairwise(times)] == [15, 30, 60]


def test_a_wait_longer_than_15_minutes_is_a_chain_of_hops(memory_hooks: MemoryQueue) -> None:
    receiver = Receiver([500])
    try:
        endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        [(first, _)] = memory_hooks.queue
        memory_hooks.queue.clear()
        # a failed first attempt, then a retry due in 2 hours (rng 1.0 on a large attempt number)
        assert delivery.process_message(first, memory_hooks, NOW, rng=lambda: 0.0) == "pending"
        [(retry, _)] = memory_hooks.queue
        memory_hooks.queue.clear()
        event_id = receiver.event_ids()[0]
        endpoint_id = json.loads(retry)["endpoint_id"]
        due = NOW + timedelta(hours=2)
        memory_hooks.repo.record_attempt(
            event_id, endpoint_id, {"attempt": 2, "at": "x", "status_code": 500, "latency_ms": 1,
                                    "response_excerpt": ""}, "pending", due, NOW)  # fmt: skip
        memory_hooks.repo.mark_sent(event_id, endpoint_id, 2)
        msg = relay.message(event_id, endpoint_id, 3, due)
        assert delivery.process_message(msg, memory_hooks, NOW) == "waiting"
        assert memory_hooks.queue[-1][1] == 900  # SQS's limit, not 7200
        assert delivery.process_message(msg, memory_hooks, due - timedelta(seconds=100)) == "waiting"
        assert memory_hooks.queue[-1][1] == 100
        assert len(receiver.received) == 1  # nothing posted before it was due
    finally:
        receiver.close()


def test_after_72_hours_the_delivery_fails_and_resend_delivers_it(memory_hooks: MemoryQueue) -> None:
    receiver = Receiver([500])
    try:
        created = endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        outcomes = drive(memory_hooks, NOW, rng=lambda: 1.0)
        assert outcomes[-1] == "failed"
        event_id = receiver.event_ids()[0]
        [state], attempts = memory_hooks.repo.deliveries_of(event_id)
        assert state.status == "failed"
        assert parse_ts(state.failed_at) - NOW >= timedelta(hours=72)
        assert parse_ts(attempts[-1].at) - NOW == timedelta(hours=72)
        # 72 hours of failures also disabled the endpoint; the receiver is fixed, the operator enables
        # it again and sends every delivery that failed since the start again
        later = NOW + timedelta(days=4)
        assert endpoints.get(memory_hooks, created["id"], later)["enabled"] is False
        endpoints.update(memory_hooks, created["id"], EndpointUpdate(enabled=True), ADMIN, later)
        receiver.statuses = [200]
        resent = delivery.resend(memory_hooks, later, failed_since=NOW)
        assert resent == [{"event_id": event_id, "endpoint_id": created["id"]}]
        assert drive(memory_hooks, later) == ["delivered"]
        assert memory_hooks.repo.delivery(event_id, created["id"]).status == "delivered"  # type: ignore[union-attr]
        # one event again on request
        assert delivery.resend(memory_hooks, later, event_id=event_id) != []
        assert drive(memory_hooks, later) == ["delivered"]
        assert receiver.event_ids()[-1] == event_id
    finally:
        receiver.close()


def test_an_endpoint_failing_for_three_days_is_disabled_with_a_notice(memory_hooks: MemoryQueue) -> None:
    receiver = Receiver([503])
    try:
        created = endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        # every attempt fails; the last one, 72 hours after the first, is 3 days of failures
        outcomes = drive(memory_hooks, NOW, rng=lambda: 1.0)
        assert outcomes[-1] == "failed"
        day3 = NOW + timedelta(days=3)
        shown = endpoints.get(memory_hooks, created["id"], day3)
        assert (shown["enabled"], shown["status"]) == (False, "disabled")
        assert "failed since" in shown["disabled_reason"]
        ops = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
        assert any("webhook_endpoint.disable" in json.dumps(i) for i in ops)
    finally:
        receiver.close()


def test_a_redirect_is_not_followed_and_not_delivered(memory_hooks: MemoryQueue, receiver: Receiver) -> None:
    redirecting = Receiver([302], location=receiver.url)
    try:
        endpoint(memory_hooks, redirecting.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        body, _ = memory_hooks.queue.pop(0)
        assert delivery.process_message(body, memory_hooks, NOW) == "pending"
        assert receiver.received == [] and len(redirecting.received) == 1
    finally:
        redirecting.close()


def test_deployed_stages_refuse_a_private_address_at_delivery(memory_hooks: MemoryQueue) -> None:
    memory_hooks.stage = "prod"
    memory_hooks.resolver = lambda host: ["93.184.216.34"]
    created = endpoint(memory_hooks, "https://hooks.example.com/x")
    new_customer("acme")
    relay.relay_once(memory_hooks, NOW)
    memory_hooks.resolver = lambda host: ["169.254.169.254"]  # the name now points at the metadata address
    body, _ = memory_hooks.queue.pop(0)
    assert delivery.process_message(body, memory_hooks, NOW) == "pending"
    event_id = json.loads(body)["event_id"]
    _, [attempt] = memory_hooks.repo.deliveries_of(event_id)
    assert (attempt.status_code, attempt.error) == (0, "url_address_refused")
    assert created["id"] == attempt.endpoint_id


# ---------------------------------------------------------------- rotation


def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    memory_hooks: MemoryQueue, receiver: Receiver
) -> None:
    created = endpoint(memory_hooks, receiver.url)
    old = created["secret"]
    rotated = endpoints.rotate(memory_hooks, created["id"], SecretRotation(overlap_seconds=3600), ADMIN, NOW)
    new = rotated["secret"]
    assert new != old and rotated["secrets_active"] == 2
    new_customer("acme")
    relay.relay_once(memory_hooks, NOW)
    drive(memory_hooks, NOW + timedelta(minutes=30))
    raw, headers = receiver.received[-1]
    header = headers["Neruba-Signature"]
    at = (NOW + timedelta(minutes=30)).timestamp()
    assert header.count("v1=") == 2
    assert verify(raw, header, [old], now=at) and verify(raw, header, [new], now=at)
    # after the overlap only the new secret signs
    later = NOW + timedelta(hours=2)
    new_customer("globex")
    relay.relay_once(memory_hooks, later)
    drive(memory_hooks, later)
    raw, headers = receiver.received[-1]
    header = headers["Neruba-Signature"]
    assert header.count("v1=") == 1
    assert verify(raw, header, [new], now=later.timestamp())
    assert not verify(raw, header, [old], now=later.timestamp())
    assert endpoints.get(memory_hooks, created["id"], later)["secrets_active"] == 1


def test_a_disabled_endpoint_gets_nothing_new(memory_hooks: MemoryQueue, receiver: Receiver) -> None:
    created = endpoint(memory_hooks, receiver.url)
    endpoints.update(memory_hooks, created["id"], EndpointUpdate(enabled=False), ADMIN, NOW)
    new_customer("acme")
    assert relay.relay_once(memory_hooks, NOW) == {"events": 1, "messages": 0}
    assert receiver.received == []


def test_an_operators_change_made_while_an_attempt_runs_is_kept(
    memory_hooks: MemoryQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver([500])
    try:
        created = endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        read = memory_hooks.repo.endpoint
        calls = []

        def endpoint_then_operator(endpoint_id: str) -> Any:
            found = read(endpoint_id)
            calls.append(endpoint_id)
            if len(calls) == 2:  # the worker read the endpoint to note the failure: an operator acts now
                endpoints.update(memory_hooks, endpoint_id, EndpointUpdate(enabled=False), ADMIN, NOW)
            return found

        monkeypatch.setattr(memory_hooks.repo, "endpoint", endpoint_then_operator)
        body, _ = memory_hooks.queue.pop(0)
        assert delivery.process_message(body, memory_hooks, NOW) == "pending"
        monkeypatch.undo()
        shown = endpoints.get(memory_hooks, created["id"], NOW)
        assert (shown["enabled"], shown["disabled_reason"]) == (False, "disabled by an operator")
    finally:
        receiver.close()


def test_a_worker_killed_after_recording_before_queueing_the_retry_still_retries(
    memory_hooks: MemoryQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver([500, 200])
    try:
        endpoint(memory_hooks, receiver.url)
        new_customer("acme")
        relay.relay_once(memory_hooks, NOW)
        body, _ = memory_hooks.queue.pop(0)

        def killed(*args: Any) -> None:
            raise SystemExit("worker killed")

        monkeypatch.setattr(delivery, "_follow_up", killed)
        with pytest.raises(SystemExit):
            delivery.process_message(body, memory_hooks, NOW)
        monkeypatch.undo()
        assert memory_hooks.queue == []  # the retry was never queued; the first message comes back
        assert delivery.process_message(body, memory_hooks, NOW + timedelta(seconds=30)) == "follow_up"
        assert drive(memory_hooks, NOW + timedelta(seconds=30)) == ["delivered"]
        # the same message once more: the follow-up is known to be sent, nothing is queued again
        assert delivery.process_message(body, memory_hooks, NOW + timedelta(hours=1)) == "stale"
        assert len(receiver.received) == 2
    finally:
        receiver.close()


def test_pending_deliveries_to_a_disabled_or_deleted_endpoint_fail_and_can_be_resent(
    memory_hooks: MemoryQueue, receiver: Receiver
) -> None:
    kept = endpoint(memory_hooks, receiver.url)
    gone = endpoint(memory_hooks, receiver.url)
    new_customer("acme")
    relay.relay_once(memory_hooks, NOW)
    endpoints.update(memory_hooks, kept["id"], EndpointUpdate(enabled=False), ADMIN, NOW)
    endpoints.delete(memory_hooks, gone["id"], ADMIN, NOW)
    assert sorted(drive(memory_hooks, NOW)) == ["failed", "failed"]
    assert receiver.received == []
    items = boto3.client("dynamodb").scan(TableName=get_settings().ops_table)["Items"]
    [event_id] = [i["pk"]["S"][6:] for i in items if i["pk"]["S"].startswith("WHEVT#")]
    _, attempts = memory_hooks.repo.deliveries_of(event_id)
    assert {a.error for a in attempts} == {"endpoint_disabled", "endpoint_deleted"}
    # enabled again, the failed delivery is sent with a resend
    endpoints.update(memory_hooks, kept["id"], EndpointUpdate(enabled=True), ADMIN, NOW)
    assert delivery.resend(memory_hooks, NOW, failed_since=NOW, endpoint_id=kept["id"]) != []
    assert drive(memory_hooks, NOW) == ["delivered"]
    assert receiver.event_ids() == [event_id]
