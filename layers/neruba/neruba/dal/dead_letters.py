"""The dead-letter queues the API shows and redrives (``/admin/dlqs``), as the settings name them.

``NERUBA_DEAD_LETTER_QUEUES`` (set by template.yaml on the operations function) is a JSON object: each
DLQ's logical name to ``[dlq_url, source_name, source_url]``; a DLQ fed by functions' failed runs has
no source queue (``null`` for both), so it is shown but cannot be redriven.

Example:
    >>> [q.name for q in parse_queues('{"IngestDLQ": ["https://q/dlq", "IngestQueue", "https://q/src"]}')]
    ['IngestDLQ']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from neruba.dal.clients import client
from neruba.dal.queues import MoveResult, move_messages, queue_arn, start_move_task


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    name: str
    url: str
    source_name: str | None
    source_url: str | None


def parse_queues(text: str | None) -> list[DeadLetterQueue]:
    """The DLQs of the setting's JSON text (none when unset), in name order."""
    found = json.loads(text) if text else {}
    queues = []
    for name, (url, source_name, source_url) in sorted(found.items()):
        queues.append(DeadLetterQueue(str(name), str(url), source_name or None, source_url or None))
    return queues


class DeadLetterQueues:
    """Depths of the configured DLQs, and moving a DLQ's messages back to its source queue."""

    def __init__(self, queues: list[DeadLetterQueue]) -> None:
        self.queues = {q.name: q for q in queues}

    def find(self, name: str) -> DeadLetterQueue | None:
        return self.queues.get(name)

    def counts(self, queue: DeadLetterQueue) -> tuple[int, int]:
        """(visible, in flight) messages of ``queue`` (SQS's approximate counts)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes: dict[str, Any] = client("sqs").get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=names
        )
        values = attributes.get("Attributes", {})
        return int(values.get(names[0], 0)), int(values.get(names[1], 0))

    def start_move_task(self, queue: DeadLetterQueue) -> str:
        """Start an SQS message move task back to the source queue; its handle (AWS only)."""
        assert queue.source_url is not None
        sqs = client("sqs")
        return start_move_task(sqs, queue_arn(sqs, queue.url), queue_arn(sqs, queue.source_url))

    def move(self, queue: DeadLetterQueue) -> MoveResult:
        """Move every message back now (send first, delete after: ``dal.queues.move_messages``)."""
        assert queue.source_url is not None
        return move_messages(client("sqs"), queue.url, queue.source_url)
