"""Feeding an SQS queue to a worker handler in tests, with Lambda's event source mapping semantics."""

from __future__ import annotations

from typing import Any

import boto3

from tests.support.lambda_context import FakeContext

_clients: list[Any] = []  # the SQS client of the running test (``forget_client`` after each test)


def sqs_client() -> Any:
    """One boto3 SQS client per test for feeding queues (a new client per batch cost ~12 ms)."""
    if not _clients:
        _clients.append(boto3.client("sqs"))
    return _clients[0]


def forget_client() -> None:
    """Called between tests (tests/conftest.py ``_fresh_wiring``): the next test may run in another
    environment."""
    _clients.clear()


def receive_batch(url: str, size: int) -> list[dict[str, Any]]:
    sqs = sqs_client()
    messages: list[dict[str, Any]] = []
    while len(messages) < size:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, size - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        messages.extend(got)
    return messages


def run_batch(handler: Any, url: str, messages: list[dict[str, Any]]) -> set[str]:
    """Invoke ``handler`` with one batch; delete what succeeded; return the failed message ids.

    A raised exception fails the whole batch (as Lambda does). Failed messages become visible again at once.
    """
    from neruba_tools.local.pollers import build_sqs_event

    sqs = sqs_client()
    event = build_sqs_event(messages, queue_arn=f"arn:aws:sqs:us-east-1:123456789012:{url.rsplit('/', 1)[1]}")
    try:
        response = handler(event, FakeContext())
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
    except BaseException:  # an exception or a simulated kill: Lambda reports the whole batch failed
        failed = {m["MessageId"] for m in messages}
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return failed


def drain(handler: Any, url: str, batch_size: int = 100, max_batches: int = 1000) -> int:
    """Run batches until the queue is empty; returns how many batches ran."""
    for count in range(max_batches):
        messages = receive_batch(url, batch_size)
        if not messages:
            return count
        run_batch(handler, url, messages)
    raise AssertionError("queue did not drain")
