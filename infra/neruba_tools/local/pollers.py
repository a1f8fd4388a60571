"""Feeding SQS queues to handlers the way a Lambda event source mapping does.

One ``QueuePoller`` thread per SQS event: it long-polls the queue, gathers up to BatchSize messages within
the batching window, invokes the function with Lambda's SQS event and deletes what succeeded. As on AWS,
the rest is left alone: a failed message (a batch item failure, or an invocation that raised or ran past
its function's Timeout) stays invisible until the queue's VisibilityTimeout has passed since its receive,
then comes back, and moto's RedrivePolicy moves a message that keeps failing to its dead-letter queue after
maxReceiveCount receives. Whatever relies on that gap (the ingest worker's hold, ``HOLD``, is shorter than
the ingest queue's visibility timeout) sees the same gap locally.

``retry_delay`` departs from AWS on purpose: when given, failed messages come back after that many seconds
instead. Only stacks built from test templates use it (to see a message reach its DLQ quickly); the stack
of template.yaml never does.

Past its function's Timeout an invocation is given up: its batch counts as failed, nothing of it is
deleted. Python cannot kill the thread running the code, so that code runs on until it returns, and its
result is discarded (on AWS the environment is stopped there); meanwhile its environment stays busy.

Example:
    >>> poller = QueuePoller(sqs, url, arn, handler, batch_size=10)  # doctest: +SKIP
    >>> poller.start(); ...; poller.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from neruba_tools.local.intrinsics import REGION

LOG = logging.getLogger("neruba.local")
RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
    "SequenceNumber", "MessageGroupId", "MessageDeduplicationId", "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)  # fmt: skip


def _b64(value: Any) -> str | None:
    if value is None:
        return None
    return base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)


def build_sqs_event(messages: Iterable[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Lambda's SQS event for messages as ReceiveMessage returned them (AttributeNames=All).

    Example:
        >>> msg = {"MessageId": "m1", "ReceiptHandle": "r", "Body": "hi", "Attributes": {}}
        >>> build_sqs_event([msg], "arn:aws:sqs:us-east-1:123456789012:q")["Records"][0]["eventSource"]
        'aws:sqs'
    """
    records = []
    for message in messages:
        attributes = {k: v for k, v in (message.get("Attributes") or {}).items() if k in RECORD_ATTRIBUTES}
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": _b64(value.get("BinaryValue")),
                        "stringListValues": list(value.get("StringListValues") or []),
                        "binaryListValues": [_b64(v) for v in value.get("BinaryListValues") or []],
                        "dataType": value["DataType"],
                    }
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324 - SQS's checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def failed_message_ids(response: Any, batch_ids: set[str], report_failures: bool) -> set[str]:
    """Which messages of a batch failed, given what the function returned (it did not raise).

    Without ReportBatchItemFailures every message succeeded. With it, the ids in
    ``batchItemFailures[].itemIdentifier`` failed (none listed: all succeeded); an unknown or empty id, or
    an answer of the wrong shape, fails the whole batch, as Lambda does.

    Example:
        >>> failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"a", "b"}, True)
        {'b'}
    """
    if not report_failures or response is None:
        return set()
    try:
        failures = response.get("batchItemFailures")
        if failures is None:
            return set()
        ids = {str(item["itemIdentifier"]) for item in failures}
    except (AttributeError, KeyError, TypeError):
        return set(batch_ids)
    return ids if ids <= batch_ids and "" not in ids else set(batch_ids)


class InvocationTimedOut(Exception):
    """An invocation ran past its function's Timeout."""


class QueuePoller:
    """One SQS event source mapping; ``invoke(event)`` runs the function."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int = 10,
        window: float = 0.0,
        report_failures: bool = False,
        retry_delay: int | None = None,
        poll_interval: float = 0.2,
        wait_seconds: int = 1,
        name: str = "",
        timeout: float | None = None,
    ) -> None:
        self.sqs, self.queue_url, self.queue_arn, self.invoke = sqs, queue_url, queue_arn, invoke
        self.batch_size, self.window, self.report_failures = max(1, batch_size), window, report_failures
        self.retry_delay, self.poll_interval, self.wait_seconds = retry_delay, poll_interval, wait_seconds
        self.name = name or queue_url.rsplit("/", 1)[-1]
        self.timeout = timeout  # the function's Timeout in seconds (None: wait for it however long)
        self.invocations = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop (returns at once; ``stop`` also waits for it)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        return list(
            self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(10, count)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        )

    def receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: a long poll for the first, then more until the window has passed."""
        messages = self._receive(self.batch_size, self.wait_seconds)
        deadline = time.monotonic() + self.window
        while messages and len(messages) < self.batch_size and not self._stop.is_set():
            got = self._receive(self.batch_size - len(messages), 0)
            messages.extend(got)
            if not got:
                if time.monotonic() >= deadline:
                    break
                self._stop.wait(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        return messages

    def process(self, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function with one batch, delete what succeeded; returns the failed message ids."""
        ids = {m["MessageId"] for m in messages}
        self.invocations += 1
        try:
            response = self._invoke_within_timeout(build_sqs_event(messages, self.queue_arn))
            failed = failed_message_ids(response, ids, self.report_failures)
            if failed == ids and self.report_failures and response:
                LOG.warning("%s: the function reported the whole batch failed: %.200r", self.name, response)
        except InvocationTimedOut:
            LOG.warning(
                "%s: the function ran past its %s s Timeout; the batch returns to the queue after its "
                "visibility timeout (the code runs on, its result will be discarded)",
                self.name,
                self.timeout,
            )
            failed = ids
        except Exception:
            LOG.exception("%s: the function raised; the batch returns to the queue", self.name)
            failed = ids
        self.settle(messages, failed, self.retry_delay)
        return failed

    def _invoke_within_timeout(self, event: dict[str, Any]) -> Any:
        """The function's answer to ``event``; ``InvocationTimedOut`` if it has none within the Timeout."""
        if self.timeout is None:
            return self.invoke(event)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["response"] = self.invoke(event)
            except BaseException as exc:  # handed to the poller's thread below
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"invocation-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise InvocationTimedOut(self.timeout)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("response")

    def settle(self, messages: list[dict[str, Any]], failed: set[str], retry_delay: int | None) -> None:
        """Delete the messages that succeeded; leave the failed ones to come back after the queue's
        visibility timeout, or make them visible after ``retry_delay`` s when that is given."""
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in answer.get("Failed", []):
                LOG.warning("%s: could not delete a processed message: %s", self.name, failure)
        if retry_delay is None:
            return
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=max(0, int(retry_delay)),
                )

    def run_once(self) -> int:
        """Receive and process one batch; returns how many messages it had."""
        messages = self.receive_batch()
        if not messages:
            return 0
        if self._stop.is_set():  # stopping: hand the messages back untouched
            self.settle(messages, {m["MessageId"] for m in messages}, 0)
            return len(messages)
        self.process(messages)
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once():
                    self._stop.wait(self.poll_interval if self.wait_seconds == 0 else 0)
            except Exception:  # the poller itself never dies (moto restarting, a bad receipt, ...)
                LOG.exception("%s: poller error", self.name)
                self._stop.wait(1.0)
