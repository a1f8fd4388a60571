"""Dead-letter queues through the API (``/admin/dlqs``): depths, a redrive that moves the messages back,
audited once under ``_global``, answered again (moving nothing) for the same Idempotency-Key; clean 4xx
for an unknown or source-less queue; nothing written when SQS cannot start a move task."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.support.api import api_event, call
from tests.support.aws import queue_url

PAIRS = {
    "IngestDLQ": "IngestQueue",
    "BillingDLQ": "BillingQueue",
    "StripeEventsDLQ": "StripeEventsQueue",
    "StripeSyncDLQ": "StripeSyncQueue",
    "WebhookDeliveryDLQ": "WebhookDeliveryQueue",
}


@pytest.fixture
def queues(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    setting = {dlq: [queue_url(dlq), source, queue_url(source)] for dlq, source in PAIRS.items()}
    setting["ScheduledFailuresDLQ"] = [queue_url("ScheduledFailuresDLQ"), None, None]
    monkeypatch.setenv("NERUBA_DEAD_LETTER_QUEUES", json.dumps(setting))
    from neruba import bootstrap

    bootstrap.reset()
    return boto3.client("sqs")


def _ops(method: str, path: str, **kw: Any) -> tuple[int, Any]:
    from functions.ops_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(method, path, scopes="admin", **kw))
    return status, body


def _redrive(name: str, reason: str = "worker fixed", key: str | None = "redrive-1") -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    return _ops(
        "POST",
        f"/admin/dlqs/{name}/redrive",
        path_parameters={"name": name},
        body={"reason": reason, "ticket": "INC-1"},
        headers=headers,
    )


def _depth(sqs: Any, logical_id: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url(logical_id), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _audit() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName="test-OpsTable")["Items"]
    return [json.loads(i["doc"]["S"]) for i in items if i["pk"]["S"] == "AUD#_global"]


def test_list_shows_every_dlq_with_its_depth_and_source(queues: Any) -> None:
    queues.send_message(QueueUrl=queue_url("IngestDLQ"), MessageBody='{"x": 1}')
    status, body = _ops("GET", "/admin/dlqs")
    assert status == 200, body
    rows = {q["name"]: q for q in body["data"]}
    assert set(rows) == {*PAIRS, "ScheduledFailuresDLQ"}
    assert rows["IngestDLQ"]["depth"] == 1 and rows["IngestDLQ"]["source_queue"] == "IngestQueue"
    assert rows["ScheduledFailuresDLQ"]["redrivable"] is False and rows["BillingDLQ"]["depth"] == 0


def test_redrive_moves_the_messages_back_once_per_idempotency_key_and_is_audited(queues: Any) -> None:
    for n in range(3):
        queues.send_message(QueueUrl=queue_url("IngestDLQ"), MessageBody=json.dumps({"n": n}))
    # WHEN an operator redrives IngestDLQ with a reason, a ticket and a key
    status, first = _redrive("IngestDLQ")
    # THEN every message is back in IngestQueue, and one audit record says who, why and what moved
    assert status == 200, first
    assert first["moved"] == 3 and first["not_moved"] == 0 and first["depth_before"] == 3
    assert _depth(queues, "IngestDLQ") == 0 and _depth(queues, "IngestQueue") == 3
    (record,) = _audit()
    assert record["action"] == "dlq.redrive" and record["target"] == "IngestDLQ"
    assert record["reason"] == "worker fixed" and record["ticket"] == "INC-1"
    assert record["before"] == {"depth": 3} and record["after"]["moved"] == 3
    # WHEN the same request is retried with the same key after another message failed
    queues.send_message(QueueUrl=queue_url("IngestDLQ"), MessageBody='{"late": true}')
    status, again = _redrive("IngestDLQ")
    # THEN the first answer comes back, nothing moves and no second record is written
    assert (status, again) == (200, first)
    assert _depth(queues, "IngestDLQ") == 1 and len(_audit()) == 1
    # AND the same key with another reason is a conflict
    status, body = _redrive("IngestDLQ", reason="something else")
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"


def test_unknown_and_source_less_queues_are_refused_cleanly(queues: Any) -> None:
    status, body = _redrive("NoSuchDLQ", key=None)
    assert status == 404 and body["error"]["code"] == "queue_not_found"
    status, body = _redrive("ScheduledFailuresDLQ", key=None)
    assert status == 400 and body["error"]["code"] == "queue_not_redrivable"
    assert _audit() == []


def test_without_move_tasks_outside_the_local_stage_nothing_moves_and_nothing_is_audited(
    queues: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployed stage (which starts an SQS move task) on an endpoint that has none (moto)
    monkeypatch.setenv("NERUBA_STAGE", "dev")
    from neruba import bootstrap

    bootstrap.reset()
    queues.send_message(QueueUrl=queue_url("BillingDLQ"), MessageBody='{"job": 1}')
    status, body = _redrive("BillingDLQ")
    # THEN a 503 says so, the message stays, no audit record and no stored answer exist
    assert status == 503, body
    assert _depth(queues, "BillingDLQ") == 1 and _audit() == []
