"""The receive-send-delete mover (local redrive): a redriven ingest event ends as ``replay``; a failed send
loses nothing; a crash between send and delete duplicates a message that the idempotent worker absorbs."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from neruba.dal.queues import REDRIVE_MARKER, move_messages, peek
from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url
from tests.support.faults import poison_ingest
from tests.support.queues import drain, receive_batch, run_batch


@pytest.fixture
def poisoned(send: Any, worker: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two events that failed five times (a bug) and sit in IngestDLQ; the bug is then fixed."""

    fix = poison_ingest(monkeypatch)
    send(ev("p1", properties={"poison": True}), ev("p2", properties={"poison": True}))
    url = queue_url("IngestQueue")
    for _ in range(8):
        messages = receive_batch(url, 100)
        if not messages:
            break
        run_batch(worker, url, messages)
    fix()
    return [m["MessageId"] for m in peek(boto3.client("sqs"), queue_url("IngestDLQ"))]


def _outcomes(tx: str) -> list[str]:
    from neruba.logic.ingest.reads import event_view

    view = event_view(UsageRepository(get_settings().usage_table), "acme", tx)
    return [o["outcome"] for o in view["outcomes"]]


def _count() -> int:
    usage = UsageRepository(get_settings().usage_table)
    return sum(a.usage.count for a in usage.aggregates("acme", "api_calls", "0000", "9999"))


def test_peek_leaves_the_messages_in_the_dlq(poisoned: list[str]) -> None:
    sqs = boto3.client("sqs")
    assert len(poisoned) == 2
    again = peek(sqs, queue_url("IngestDLQ"))
    assert sorted(m["MessageId"] for m in again) == sorted(poisoned)


def test_redriven_events_are_accepted_as_replay_and_counted_once(poisoned: list[str], worker: Any) -> None:
    # WHEN the mover moves the DLQ back to the ingest queue
    sqs = boto3.client("sqs")
    result = move_messages(sqs, queue_url("IngestDLQ"), queue_url("IngestQueue"))
    # THEN both moved, the DLQ is empty, each copy names its original
    assert sorted(result.moved) == sorted(poisoned) and not result.send_failed
    assert receive_batch(queue_url("IngestDLQ"), 10) == []
    copies = peek(sqs, queue_url("IngestQueue"))
    assert sorted(m["MessageAttributes"][REDRIVE_MARKER]["StringValue"] for m in copies) == sorted(poisoned)
    # AND the worker accepts them as replay, counted once
    drain(worker, queue_url("IngestQueue"))
    for tx in ("p1", "p2"):
        outcomes = _outcomes(tx)
        assert outcomes[-1] == "replay" and set(outcomes[:-1]) == {"failed"}
    assert _count() == 2


def test_a_failed_send_leaves_the_message_in_the_dlq(poisoned: list[str]) -> None:
    # GIVEN a source queue that refuses one message of the batch
    real = boto3.client("sqs")

    class RefusesOne:
        refused = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
            refuse = [] if self.refused else Entries[:1]
            self.refused = True
            rest = Entries[len(refuse) :]
            sent = real.send_message_batch(QueueUrl=QueueUrl, Entries=rest) if rest else {"Successful": []}
            failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refuse]
            return {**sent, "Failed": failed}

    # WHEN the mover runs
    result = move_messages(RefusesOne(), queue_url("IngestDLQ"), queue_url("IngestQueue"))
    # THEN one moved; the refused one is still in the DLQ (visible again), nothing is lost
    assert len(result.moved) == 1 and len(result.send_failed) == 1
    left = peek(real, queue_url("IngestDLQ"))
    assert [m["MessageId"] for m in left] == result.send_failed
    assert len(peek(real, queue_url("IngestQueue"))) == 1


def test_a_crash_between_send_and_delete_duplicates_harmlessly(poisoned: list[str], worker: Any) -> None:
    # GIVEN a mover that dies after sending, before deleting
    real = boto3.client("sqs")

    class DiesBeforeDelete:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def delete_message_batch(self, **kwargs: Any) -> Any:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        move_messages(DiesBeforeDelete(), queue_url("IngestDLQ"), queue_url("IngestQueue"), hold_seconds=0)
    # WHEN the mover is run again
    result = move_messages(real, queue_url("IngestDLQ"), queue_url("IngestQueue"))
    # THEN the source queue holds two copies of each, marked with the same original id, the DLQ is empty
    assert sorted(result.moved) == sorted(poisoned)
    copies = peek(real, queue_url("IngestQueue"), limit=20)
    marks = sorted(m["MessageAttributes"][REDRIVE_MARKER]["StringValue"] for m in copies)
    assert marks == sorted(poisoned * 2)
    # AND the worker records one replay per event and counts each once
    drain(worker, queue_url("IngestQueue"))
    for tx in ("p1", "p2"):
        outcomes = _outcomes(tx)
        assert outcomes.count("replay") == 1 and outcomes[-1] == "replay"
    assert _count() == 2
