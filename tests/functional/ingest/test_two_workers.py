"""Two workers holding the same message at once (SQS visibility expired while the first still ran, or a
standard queue's duplicate delivery): the event is counted once, and never left uncounted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba import bootstrap
from neruba.dal.usage import UsageRepository
from neruba.logic.ingest.worker import HOLD, IngestBatch
from neruba.settings import get_settings
from neruba_tools.local.pollers import build_sqs_event
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url
from tests.support.queues import receive_batch

ARN = "arn:aws:sqs:us-east-1:123456789012:test-IngestQueue"


def _batch(at: datetime | None = None, deadline: datetime | None = None) -> IngestBatch:
    at = at or datetime.now(UTC)
    return IngestBatch(
        usage=bootstrap.usage(),
        lookup=bootstrap.ingest_worker_catalog().lookup,
        now=at,
        deadline=deadline,
        clock=lambda: at,
    )


def _counted(customer: str = "acme", meter: str = "api_calls") -> int:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    cells = UsageRepository(get_settings().usage_table).aggregates(
        customer,
        meter,
        (hour - timedelta(days=2)).strftime("%Y-%m-%dT%H"),
        (hour + timedelta(hours=2)).strftime("%Y-%m-%dT%H"),
    )
    return sum(cell.usage.count for cell in cells)


def _start(batch: IngestBatch, messages: list[dict[str, Any]]) -> None:
    """The batch's event puts, before it counts (``finish``)."""
    records = build_sqs_event(messages, ARN)["Records"]
    batch.begin(records)
    for record in records:
        batch.process_record(record)


def _two_events(send: Any) -> list[dict[str, Any]]:
    send(ev("t1", properties={}), ev("t2", properties={}))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    assert len(messages) == 2
    return messages


def test_a_message_held_by_two_running_workers_is_counted_once(send: Any) -> None:
    # GIVEN worker A that received two messages and wrote their event items, still running
    messages = _two_events(send)
    started = datetime.now(UTC)
    a = _batch(started)
    _start(a, messages)
    # WHEN worker B receives one of the same messages meanwhile (another batch) and finishes first
    b = _batch(started + timedelta(seconds=5))
    _start(b, messages[:1])
    b_failed = b.finish()
    # AND worker A then finishes its batch
    a_failed = a.finish()
    # THEN each event is counted exactly once: B left the event A holds to A, and SQS delivers it again
    assert a_failed == []
    assert b_failed == [messages[0]["MessageId"]]
    assert _counted() == 2
    # AND the later delivery, once A's hold has passed, finds it counted and counts nothing
    c = _batch(started + HOLD + timedelta(seconds=1))
    _start(c, messages[:1])
    assert c.finish() == []
    assert _counted() == 2


def test_a_message_whose_first_worker_died_is_counted_by_a_delivery_after_its_hold(send: Any) -> None:
    # GIVEN worker A killed after writing the event items, before counting
    messages = _two_events(send)
    started = datetime.now(UTC)
    _start(_batch(started), messages)
    # WHEN SQS delivers one message again while A could still be running, then after A's hold
    early = _batch(started + HOLD - timedelta(seconds=1))
    _start(early, messages[:1])
    early_failed = early.finish()
    late = _batch(started + HOLD)
    _start(late, messages)
    late_failed = late.finish()
    # THEN the early delivery is retried without counting, the later one counts both events once
    assert early_failed == [messages[0]["MessageId"]]
    assert late_failed == []
    assert _counted() == 2


def test_a_batch_past_its_deadline_counts_nothing_and_is_counted_by_the_next_delivery(send: Any) -> None:
    # GIVEN worker A whose invocation reached its Timeout after the event puts (on AWS it is killed there)
    messages = _two_events(send)
    started = datetime.now(UTC)
    a = IngestBatch(
        usage=bootstrap.usage(),
        lookup=bootstrap.ingest_worker_catalog().lookup,
        now=started,
        deadline=started + timedelta(seconds=30),
        clock=lambda: started + timedelta(seconds=31),
    )
    _start(a, messages)
    # WHEN it finishes, and SQS delivers the messages again after the visibility timeout
    a_failed = a.finish()
    assert _counted() == 0
    again = _batch(started + timedelta(seconds=180))
    _start(again, messages)
    # THEN A failed every message without counting, and the redelivery counts each event once
    assert sorted(a_failed) == sorted(m["MessageId"] for m in messages)
    assert again.finish() == []
    assert _counted() == 2


def test_an_unstorable_copy_held_by_a_running_worker_is_parked_only_after_its_hold(
    send: Any, enqueue: Any, read: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.domain import ingest as ingest_rules
    from neruba.logic.ingest import worker as ingest_worker
    from tests.functional.ingest.conftest import event_of

    # GIVEN worker A, of a version without the number rule, that put an unstorable event `accepted` and
    # still runs
    enqueue(ev("poison", code="tokens", properties={"tokens": "1e400", "model": "m"}))
    messages = receive_batch(queue_url("IngestQueue"), 10)
    started = datetime.now(UTC)
    with monkeypatch.context() as old_code:
        old_code.setattr(ingest_worker, "property_number_problems", lambda properties: [])
        old_code.setattr(ingest_rules, "number_problem", lambda value: None)
        _start(_batch(started), messages)
    # WHEN the current worker receives the same message while A could still count it, then after A's hold
    early = _batch(started + timedelta(seconds=5))
    _start(early, messages)
    early_failed = early.finish()
    status_between = event_of(read, "poison")["status"]
    late = _batch(started + HOLD)
    _start(late, messages)
    # THEN the early delivery leaves the event to A and is retried; the later one parks it with its reason
    assert early_failed == [messages[0]["MessageId"]]
    assert status_between == "accepted"
    assert late.finish() == []
    poison = event_of(read, "poison")
    assert (poison["status"], poison["reason"]) == ("failed", "number_out_of_range")


def test_a_batch_whose_counting_raised_gives_its_events_back_for_the_next_delivery(
    send: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.ingest import worker as ingest_worker

    # GIVEN worker A whose counting raised after its event puts (a defect: the handler fails the whole
    # batch, so SQS delivers it again)
    messages = _two_events(send)
    started = datetime.now(UTC)
    a = _batch(started)
    _start(a, messages)

    def defect(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a defect while counting")

    with monkeypatch.context() as broken:
        broken.setattr(ingest_worker, "count_cell", defect)
        with pytest.raises(RuntimeError):
            a.finish()
    assert _counted() == 0
    # WHEN the messages come back at once, in other batches (the local stack retries after a second)
    again = _batch(started + timedelta(seconds=2))
    _start(again, messages[:1])
    failed = again.finish()
    rest = _batch(started + timedelta(seconds=3))
    _start(rest, messages[1:])
    # THEN they are counted once, without waiting for A's hold to pass
    assert failed == [] and rest.finish() == []
    assert _counted() == 2
