"""Feeding SQS queues to worker handlers the way a Lambda event source mapping does."""

from __future__ import annotations

import hashlib
from typing import Any

from neruba_tools.local.template import REGION


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
