"""Retries, redeliveries, crashes and poison messages never count an event twice or lose it."""

from __future__ import annotations

import importlib.util
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from neruba.dal.pending import PendingUsage
from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from neruba_tools.local.pollers import build_sqs_event
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url
from tests.support.deep import size
from tests.support.faults import poison_ingest
from tests.support.lambda_context import FakeContext
from tests.support.queues import drain, receive_batch, run_batch
from tests.support.usage import set_cell

WORKER = Path(__file__).resolve().parents[3] / "functions" / "ingest_worker" / "app.py"
STORM = int(__import__("os").environ.get("NERUBA_TEST_STORM", size(300, 1000)))
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


class Killed(BaseException):
    """Stands for the Lambda runtime killing the worker: nothing after it runs, no response is sent."""


def _aggregate_count(customer: str, meter: str) -> int:
    items = UsageRepository(get_settings().usage_table).aggregates(
        customer,
        meter,
        (HOUR - timedelta(days=2)).strftime("%Y-%m-%dT%H"),
        (HOUR + timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
    )
    return sum(i.usage.count for i in items)


def _aggregate_sum(customer: str, meter: str) -> Any:
    items = UsageRepository(get_settings().usage_table).aggregates(
        customer,
        meter,
        (HOUR - timedelta(days=2)).strftime("%Y-%m-%dT%H"),
        (HOUR + timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
    )
    return sum(i.usage.total or 0 for i in items)


def _worker_container() -> Any:
    """A separately loaded copy of the worker module: one Lambda container, with its own globals."""
    spec = importlib.util.spec_from_file_location(f"worker_{uuid.uuid4().hex}", WORKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@pytest.mark.scaled
def test_duplicate_storm_counts_each_event_once(send: Any) -> None:
    # GIVEN STORM distinct events (300 in make test, 1,000 in make deep), each sent 3 times, shuffled into
    # requests of 100
    events = [
        ev(
            f"storm-{i}",
            customer=("acme", "globex")[i % 2],
            code="tokens",
            properties={"tokens": i, "model": "m"},
        )
        for i in range(STORM)
    ]
    copies = events * 3
    random.Random(7).shuffle(copies)
    # WHEN two worker containers take batches from the queue in turn, half of the batches delivered twice
    # (the first attempt's answer lost), draining as requests arrive (moto's SQS scans the whole queue on
    # every receive, so a 3,000-message backlog would only slow the test down)
    url = queue_url("IngestQueue")
    containers = [_worker_container(), _worker_container()]
    turn = 0
    for start in range(0, len(copies), 100):
        send(*copies[start : start + 100])
        while messages := receive_batch(url, 100):
            if turn % 2:
                run_batch(containers[1], url, messages)
            else:
                containers[0](
                    build_sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:test-IngestQueue"),
                    FakeContext(),
                )
                run_batch(containers[1], url, messages)
            turn += 1
    # THEN exactly 1,000 were accepted, 2,000 were duplicates, and the aggregates are exact
    usage = UsageRepository(get_settings().usage_table)
    rows = usage.outcomes(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
    assert sum(r.counts.get("accepted", 0) for r in rows) == STORM
    assert sum(r.counts.get("duplicate", 0) for r in rows) == 2 * STORM
    assert _aggregate_count("acme", "tokens") + _aggregate_count("globex", "tokens") == STORM
    assert _aggregate_sum("acme", "tokens") == sum(range(0, STORM, 2))
    assert _aggregate_sum("globex", "tokens") == sum(range(1, STORM, 2))


def test_conflict_is_counted_once_and_never_aggregated(send: Any, process: Any) -> None:
    send(ev("c1", code="tokens", properties={"tokens": 5, "model": "m"}))
    send(ev("c1", code="tokens", properties={"tokens": 500, "model": "m"}))
    send(ev("c1", code="tokens", properties={"tokens": 500, "model": "m"}))
    process()
    usage = UsageRepository(get_settings().usage_table)
    event = usage.get_event("acme", "c1")
    assert event is not None
    assert [h.outcome for h in event.history] == ["conflict", "conflict"]
    assert _aggregate_sum("acme", "tokens") == 5


def _kill_before_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*args: Any, **kwargs: Any) -> bool:
        raise Killed

    monkeypatch.setattr(UsageRepository, "count_group", killed)
    monkeypatch.setattr(PendingUsage, "put", killed)  # the sparse days' write


def test_worker_killed_after_event_writes_is_repaired_by_the_sweep(
    send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker killed after writing the events and before counting them
    send(*[ev(f"k{i}", code="tokens", properties={"tokens": 10, "model": "m"}) for i in range(20)])
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    with monkeypatch.context() as patch:
        _kill_before_counting(patch)
        with pytest.raises(Killed):
            worker(
                build_sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:123456789012:test-IngestQueue"),
                FakeContext(),
            )
    usage = UsageRepository(get_settings().usage_table)
    assert all(usage.get_event("acme", f"k{i}").status == "accepted" for i in range(20))
    assert _aggregate_count("acme", "tokens") == 0  # the state the crash left
    # WHEN the sweep runs over that minute once it has settled
    from functions.sweeper.app import run_sweep

    report = run_sweep(
        datetime.now(UTC) - timedelta(minutes=5),
        datetime.now(UTC) + timedelta(minutes=1),
        now=datetime.now(UTC) + timedelta(minutes=20),
    )
    # THEN it found and counted the 20 events, exactly once
    usage_check = report["checks"][0]
    assert usage_check["details"]["uncounted_found"] == 20 and report["repaired"] >= 1
    assert _aggregate_count("acme", "tokens") == 20
    assert _aggregate_sum("acme", "tokens") == 200
    # AND when SQS then redelivers the batch, nothing is counted again, and a second sweep finds nothing
    sqs = boto3.client("sqs")
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    drain(worker, url)
    assert _aggregate_count("acme", "tokens") == 20
    again = run_sweep(
        datetime.now(UTC) - timedelta(minutes=5),
        datetime.now(UTC) + timedelta(minutes=1),
        now=datetime.now(UTC) + timedelta(minutes=20),
    )
    assert again["found"] == 0 and again["repaired"] == 0


def test_worker_killed_then_redelivered_in_other_batches_counts_once(
    send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a batch of 30 whose worker was killed before counting
    send(*[ev(f"r{i}", properties={}) for i in range(30)])
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    with monkeypatch.context() as patch:
        _kill_before_counting(patch)
        failed = run_batch(worker, url, messages)
    assert len(failed) == 30
    # WHEN SQS redelivers the messages in smaller, different batches, after the visibility timeout (a
    # killed batch's messages come back no sooner), when the killed attempt's hold has passed
    from neruba.logic.ingest import worker as ingest_worker

    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=7)
    # THEN every event is counted exactly once and no new outcome is recorded for the redelivered copies
    assert _aggregate_count("acme", "api_calls") == 30
    usage = UsageRepository(get_settings().usage_table)
    assert all(usage.get_event("acme", f"r{i}").history == () for i in range(30))


def test_aggregate_drift_is_repaired_by_the_sweep(send: Any, process: Any) -> None:
    # GIVEN counted events whose aggregate was later corrupted
    send(*[ev(f"d{i}", code="tokens", properties={"tokens": 3, "model": "m"}) for i in range(5)])
    process()
    usage = UsageRepository(get_settings().usage_table)
    item = usage.aggregates("acme", "tokens", "0000", "9999")[0]
    set_cell(item, s={"N": "999"})  # its one batch
    # WHEN the sweep runs
    from functions.sweeper.app import run_sweep

    report = run_sweep(
        datetime.now(UTC) - timedelta(minutes=5),
        datetime.now(UTC) + timedelta(minutes=1),
        now=datetime.now(UTC) + timedelta(minutes=20),
    )
    # THEN it reports the drift with ids and restores the truth
    usage_check = report["checks"][0]
    assert usage_check["details"]["drift_found"] == 1 and report["repaired"] == 1
    repair = usage_check["repairs"][0]
    assert repair["before"]["quantity"] == "999" and repair["after"]["quantity"] == "15"
    assert _aggregate_sum("acme", "tokens") == 15


def test_poison_message_reaches_dlq_and_redrive_replays_it(
    send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bug that makes one event fail every time

    fix = poison_ingest(monkeypatch)
    send(ev("healthy"), ev("poison", properties={"poison": True}))
    url, dlq = queue_url("IngestQueue"), queue_url("IngestDLQ")
    # WHEN the worker keeps failing it (maxReceiveCount is 5 in template.yaml)
    for _ in range(8):
        messages = receive_batch(url, 100)
        if not messages:
            break
        run_batch(worker, url, messages)
    # THEN it sits in the DLQ, recorded as failed, while the healthy event was accepted
    sqs = boto3.client("sqs")
    dead = receive_batch(dlq, 10)
    assert len(dead) == 1
    usage = UsageRepository(get_settings().usage_table)
    assert usage.get_event("acme", "poison").status == "failed"
    assert usage.get_event("acme", "healthy").status == "accepted"
    # WHEN the bug is fixed and the DLQ is redriven to the source queue
    fix()
    for message in dead:
        sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
    drain(worker, url)
    # THEN the event is accepted with outcome replay and counted once
    from neruba.logic.ingest.reads import event_view

    event = event_view(usage, "acme", "poison")
    assert event["status"] == "accepted"
    outcomes = [o["outcome"] for o in event["outcomes"]]
    assert outcomes[-1] == "replay" and set(outcomes[:-1]) == {"failed"} and len(outcomes) >= 5
    assert _aggregate_count("acme", "api_calls") == 2


def test_events_an_earlier_version_counted_are_not_counted_again(
    send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN events an earlier version counted (its SL# slice and AGG# aggregate, no contribution) before it
    # was killed, so their messages come back
    send(*[ev(f"v{i}", code="tokens", properties={"tokens": 2, "model": "m"}) for i in range(3)])
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)
    with monkeypatch.context() as patch:
        _kill_before_counting(patch)
        assert len(run_batch(worker, url, messages)) == 3
    usage = UsageRepository(get_settings().usage_table)
    event = usage.get_event("acme", "v0")
    assert event is not None
    hour, batch, table = event.hour, str(event.batch), get_settings().usage_table
    ddb = boto3.client("dynamodb")
    ddb.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"SL#acme#tokens#{hour}"},
            "sk": {"S": f"model=m#{batch}"},
            "tx": {"L": [{"S": f"v{i}"} for i in range(3)]},
        },
    )
    ddb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "AGG#acme#tokens"},
            "sk": {"S": f"{hour}#model=m"},
            "n": {"N": "3"},
            "s": {"N": "6"},
        },
    )
    # WHEN the messages are delivered again to the current worker, in other batches
    drain(worker, url, batch_size=2)
    # THEN they are not counted a second time
    assert _aggregate_count("acme", "tokens") == 3 and _aggregate_sum("acme", "tokens") == 6
    assert all(usage.get_event("acme", f"v{i}").batch == batch for i in range(3))


def test_a_repaired_cell_adds_the_batches_counted_after_the_repair(send: Any, process: Any) -> None:
    # GIVEN a cell whose contribution drifted and was repaired by the sweep (its truth folded in)
    send(*[ev(f"r{i}", code="tokens", properties={"tokens": 3, "model": "m"}) for i in range(2)])
    process()
    usage = UsageRepository(get_settings().usage_table)
    (cell,) = usage.aggregates("acme", "tokens", "0000", "9999")
    ((_pk, sk),) = cell.sources
    set_cell(cell, s={"N": "100"})
    from functions.sweeper.app import run_sweep

    now = datetime.now(UTC)
    report = run_sweep(
        now - timedelta(minutes=5), now + timedelta(minutes=1), now=now + timedelta(minutes=20)
    )
    assert report["repaired"] == 1 and _aggregate_sum("acme", "tokens") == 6
    # WHEN a later batch counts more events in the same cell
    send(*[ev(f"s{i}", code="tokens", properties={"tokens": 5, "model": "m"}) for i in range(2)])
    process()
    # THEN the cell reads the repaired truth plus the new batch, and the drifted contribution stays folded
    assert _aggregate_count("acme", "tokens") == 4 and _aggregate_sum("acme", "tokens") == 16
    (cell,) = usage.aggregates("acme", "tokens", "0000", "9999")
    assert cell.base is not None and sk.partition("!")[2] in cell.base["fb"]
    assert len(cell.sources) == 2  # the aggregate and the new contribution
