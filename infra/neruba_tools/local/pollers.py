"""Feeding SQS queues to worker handlers the way a Lambda event source mapping does."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from neruba_tools.local.template import REGION

LOG = logging.getLogger("neruba.local")


def build_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event for messages as ReceiveMessage returned them (AttributeNames=All)."""
    records = []
    for message in messages:
        attributes = {key: value for key, value in message.get("Attributes", {}).items()}
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
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


class QueuePoller:
    """One SQS event source mapping: receive up to BatchSize, invoke, delete what succeeded.

    Failed messages become visible again after ``retry_delay`` seconds, so moto's RedrivePolicy moves a
    message that keeps failing to its dead-letter queue after maxReceiveCount receives.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: Any,
        batch_size: int = 10,
        window: float = 0.0,
        report_failures: bool = True,
        retry_delay: int = 1,
    ) -> None:
        self.sqs, self.queue_url, self.queue_arn, self.function = sqs, queue_url, queue_arn, function
        self.batch_size, self.window, self.report_failures = batch_size, window, report_failures
        self.retry_delay = retry_delay
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"poller-{queue_url.rsplit('/', 1)[-1]}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    def receive(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, waiting at most the batching window for a batch to fill.

        Short polls with a pause between them: a long poll would hold the in-process moto server's
        queue while the API sends to it.
        """
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.window
        while len(messages) < self.batch_size and not self._stop.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if got:
                continue
            if not messages or time.monotonic() >= deadline:
                break
            self._stop.wait(0.05)
        return messages

    def run_once(self) -> int:
        messages = self.receive()
        if not messages:
            return 0
        ids = {m["MessageId"] for m in messages}
        try:
            response = self.function.invoke(build_sqs_event(messages, self.queue_arn))
            failures = (
                {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
                if self.report_failures
                else set()
            )
            if not failures <= ids:
                failures = ids  # an unknown id: Lambda treats the whole batch as failed
        except Exception:
            LOG.exception("worker failed; the batch returns to the queue")
            failures = ids
        for message in messages:
            if message["MessageId"] in failures:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay,
                )
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once():
                    self._stop.wait(0.2)
            except Exception:  # the poller itself never dies
                LOG.exception("poller error")
                self._stop.wait(1)
