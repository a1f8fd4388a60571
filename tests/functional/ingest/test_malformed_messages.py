"""Messages that are not queued events (garbage, truncated, wrong shape) never block the ingest queue."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from neruba.dal.usage import UsageRepository
from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev
from tests.support.aws import queue_url
from tests.support.queues import receive_batch, run_batch

MALFORMED = [
    "not json at all",
    '{"customer_id": "acme", "transaction_id": "t',  # truncated
    json.dumps({"unexpected": "shape"}),
    json.dumps([1, 2, 3]),
    json.dumps({"event": {"transaction_id": 5, "customer_id": None}}),
    "",
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_message_goes_to_the_dlq_while_its_batch_mates_are_metered(
    send: Any, worker: Any, body: str
) -> None:
    # GIVEN a valid event queued by the API, and a malformed message beside it on the same queue
    url, dlq = queue_url("IngestQueue"), queue_url("IngestDLQ")
    send(ev("good-1"))
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body or " ")
    # WHEN the worker receives them together, again and again as Lambda would
    rounds = 0
    for rounds in range(1, 10):  # noqa: B007
        messages = receive_batch(url, 100)
        if not messages:
            break
        failed = run_batch(worker, url, messages)
        # THEN only the malformed message fails; the good one is never held back by it
        assert len(failed) <= 1
    # THEN the queue is empty, the malformed message sits in the DLQ, and the good event is accepted once
    assert rounds <= 7
    assert receive_batch(url, 10) == []
    dead = receive_batch(dlq, 10)
    assert [m["Body"] for m in dead] == [body or " "]
    event = UsageRepository(get_settings().usage_table).get_event("acme", "good-1")
    assert event is not None and event.status == "accepted"
