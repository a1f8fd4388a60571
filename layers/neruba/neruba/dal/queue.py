"""Sending to SQS in batches (SendMessageBatch: at most 10 entries and 256 KiB a call)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from neruba.dal.clients import client

MAX_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024


def send_batch(queue_url: str, messages: Sequence[tuple[str, str]], attempts: int = 3) -> list[str]:
    """Send ``(id, body)`` messages; returns the ids that could not be sent after ``attempts`` tries."""
    pending = list(messages)
    for attempt in range(attempts):
        failed: list[tuple[str, str]] = []
        for chunk in _chunks(pending):
            try:
                response = client("sqs").send_message_batch(
                    QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": body} for i, body in chunk]
                )
            except Exception:
                failed.extend(chunk)
                continue
            failed_ids = {entry["Id"] for entry in response.get("Failed", [])}
            failed.extend(m for m in chunk if m[0] in failed_ids)
        pending = failed
        if not pending:
            return []
        time.sleep(0.05 * (2**attempt))
    return [message_id for message_id, _ in pending]


def _chunks(messages: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for message in messages:
        body_size = len(message[1].encode())
        if current and (len(current) == MAX_ENTRIES or size + body_size > MAX_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(message)
        size += body_size
    if current:
        chunks.append(current)
    return chunks
