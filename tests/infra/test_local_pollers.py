"""The local SQS event source mapping settles a batch as Lambda's does: what failed stays invisible until the
queue's visibility timeout has passed since its receive, and an invocation past its function's Timeout
counts as failed, whatever its code returns later."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from neruba_tools.local.intrinsics import REGION
from neruba_tools.local.pollers import QueuePoller

VISIBILITY = 3  # seconds: the queue's VisibilityTimeout in these tests


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    name = f"{name}-{threading.get_ident()}-{time.monotonic_ns()}"  # a moto another test used may persist
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(VISIBILITY)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _client() -> Any:
    return boto3.client(
        "sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _visible(sqs: Any, url: str) -> list[str]:
    """The bodies a receive gets now (each received one is handed back at once for the next look)."""
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in got:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return [m["Body"] for m in got]


def _fail_item(event: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


def _raise(event: dict[str, Any]) -> Any:
    raise RuntimeError("the batch failed")


@pytest.mark.parametrize("invoke", [_fail_item, _raise], ids=["item-failure", "raised"])
def test_a_failed_message_stays_invisible_for_the_queues_visibility_timeout(invoke: Any) -> None:
    with mock_aws():
        sqs = _client()
        url, arn = _queue(sqs, "poller-failed")
        sqs.send_message(QueueUrl=url, MessageBody="m1")
        poller = QueuePoller(sqs, url, arn, invoke, batch_size=10, report_failures=True, wait_seconds=0)
        # GIVEN a batch received at t0 whose invocation failed (a listed item, or the code raised)
        received = time.monotonic()
        messages = poller.receive_batch()
        assert [m["Body"] for m in messages] == ["m1"]
        assert poller.process(messages) == {messages[0]["MessageId"]}
        # WHEN the queue is read again before its visibility timeout has passed (past the old 1 s delay)
        time.sleep(max(0.0, received + VISIBILITY - 1.2 - time.monotonic()))
        early = _visible(sqs, url)
        # THEN the message is still invisible, as on AWS; it returns once the timeout has passed
        assert early == []
        time.sleep(max(0.0, received + VISIBILITY + 0.3 - time.monotonic()))
        assert _visible(sqs, url) == ["m1"]


def test_an_invocation_past_its_timeout_fails_its_batch_even_if_it_returns_later() -> None:
    with mock_aws():
        sqs = _client()
        url, arn = _queue(sqs, "poller-timeout")
        sqs.send_message(QueueUrl=url, MessageBody="slow")
        finished = threading.Event()

        def slow(event: dict[str, Any]) -> Any:
            time.sleep(1.5)
            finished.set()
            return None  # success, had it been in time

        poller = QueuePoller(sqs, url, arn, slow, batch_size=10, wait_seconds=0, timeout=0.5)
        # GIVEN a batch whose function runs past its 0.5 s Timeout
        messages = poller.receive_batch()
        started = time.monotonic()
        # WHEN the poller processes it
        failed = poller.process(messages)
        # THEN it gives up at the Timeout and counts the batch as failed
        assert failed == {messages[0]["MessageId"]}
        assert time.monotonic() - started < 1.2 and not finished.is_set()
        # AND when the code returns later, its success deletes nothing: the message comes back after the
        # queue's visibility timeout
        assert finished.wait(5)
        time.sleep(0.2)
        assert _visible(sqs, url) == []
        time.sleep(max(0.0, started + VISIBILITY + 0.3 - time.monotonic()))
        assert _visible(sqs, url) == ["slow"]


def test_an_invocation_within_its_timeout_deletes_its_batch() -> None:
    with mock_aws():
        sqs = _client()
        url, arn = _queue(sqs, "poller-in-time")
        sqs.send_message(QueueUrl=url, MessageBody="quick")
        poller = QueuePoller(sqs, url, arn, lambda event: None, batch_size=10, wait_seconds=0, timeout=5)
        # GIVEN / WHEN a batch whose function returns within its Timeout
        assert poller.process(poller.receive_batch()) == set()
        # THEN its message is gone
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
