"""Dead-letter queue mechanics: peeking without consuming, SQS message move tasks, and a mover for
endpoints without them.

Peek: messages are received with a short visibility timeout (so a second receive in the same peek returns
other messages) and, once the peek has seen what it wanted, made visible again at once
(``ChangeMessageVisibilityBatch`` to 0). Nothing is deleted.

Mover (``move_messages``): receive, then **send first, delete after**. A message is deleted from the DLQ
only after SQS confirmed its copy in the source queue; a failed send leaves it in the DLQ (made visible
again). Each copy carries the message attribute ``NerubaRedriveOf`` = the DLQ message id (which is the
id the message had in its source queue), so a copy can always be traced to its original. A crash between
the send and the delete leaves the original in the DLQ; the next run sends it again, so the source queue may
then hold two copies of one body. That is harmless because every consumer is idempotent on the body's
own key (ingest: the event's copy id ``request_id:index``; billing: the window; Stripe: the event id),
and the second copy is recognisable by the same ``NerubaRedriveOf``. Within one run a message id is sent
at most once (a message seen again after its visibility expired is only deleted, not re-sent).

Example:
    >>> moved = move_messages(sqs, dlq_url, source_url, limit=100)  # doctest: +SKIP
    >>> moved.moved  # doctest: +SKIP
    3
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

REDRIVE_MARKER = "NerubaRedriveOf"
MAX_ATTRIBUTES = 10
UNAVAILABLE_CODES = {
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "NotImplemented",
    "UnsupportedOperation",
    "AWS.SimpleQueueService.UnsupportedOperation",
    "InvalidAction",
    "UnknownOperationException",
}


class MoveTaskUnavailableError(RuntimeError):
    """The endpoint does not implement SQS message move tasks (e.g. a local moto server)."""


def peek(sqs: Any, url: str, limit: int = 10, hold_seconds: int = 20) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of ``url``, left in the queue and visible again when this returns."""
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            batch = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=hold_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            handles += [m["ReceiptHandle"] for m in batch]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)
    finally:
        release(sqs, url, handles)
    return list(seen.values())


def release(sqs: Any, url: str, handles: list[str]) -> None:
    """Make received messages visible again now."""
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def start_move_task(sqs: Any, dlq_arn: str, source_arn: str, rate: int | None = None) -> str:
    """Start an SQS message move task from the DLQ back to its source queue; returns its TaskHandle.

    Raises MoveTaskUnavailableError when the endpoint does not implement it (call it with a client whose
    retries are off: a server that lacks the action answers 500, which botocore would otherwise retry).
    """
    request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": source_arn}
    if rate:
        request["MaxNumberOfMessagesPerSecond"] = rate
    with _move_tasks_available():
        return str(sqs.start_message_move_task(**request)["TaskHandle"])


@contextlib.contextmanager
def _move_tasks_available() -> Iterator[None]:
    """Turn "this endpoint has no message move tasks" (not implemented, an unsupported operation, a 5xx)
    into MoveTaskUnavailableError; any other error passes through."""
    try:
        yield
    except NotImplementedError as exc:
        raise MoveTaskUnavailableError(str(exc) or "not implemented") from exc
    except Exception as exc:
        response = getattr(exc, "response", None) or {}
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if response.get("Error", {}).get("Code") in UNAVAILABLE_CODES or status >= 500:
            raise MoveTaskUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        raise


def move_tasks(sqs: Any, dlq_arn: str) -> list[dict[str, Any]]:
    """The most recent move tasks of a DLQ (ListMessageMoveTasks, newest first, at most 10)."""
    with _move_tasks_available():
        results = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])
    return list(results)


@dataclass
class MoveResult:
    """What one mover run did, with the message ids."""

    moved: list[str] = field(default_factory=list)
    send_failed: list[str] = field(default_factory=list)
    delete_failed: list[str] = field(default_factory=list)


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    """The message attributes to carry over (string and binary values), plus the redrive marker."""
    carried: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        kept = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
        carried[name] = kept
    marker = {"DataType": "String", "StringValue": message["MessageId"]}
    if REDRIVE_MARKER in carried or len(carried) < MAX_ATTRIBUTES:
        carried.setdefault(REDRIVE_MARKER, marker)
    return carried


def move_messages(
    sqs: Any, dlq_url: str, source_url: str, limit: int | None = None, hold_seconds: int = 120
) -> MoveResult:
    """Move up to ``limit`` (default: all) messages from the DLQ to the source queue, send before delete.

    A message whose send failed stays in the DLQ: it is kept invisible for the rest of the run (so the run
    does not spin on it) and made visible again when the run ends.
    """
    result = MoveResult()
    sent: set[str] = set()
    held: list[str] = []  # receipt handles of messages whose send failed, released at the end
    try:
        while limit is None or len(result.moved) < limit:
            want = 10 if limit is None else min(10, limit - len(result.moved))
            batch = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=want,
                VisibilityTimeout=hold_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not batch:
                break
            ok = [m for m in batch if m["MessageId"] in sent]  # sent earlier in this run: delete only
            to_send = [m for m in batch if m["MessageId"] not in sent]
            if to_send:
                entries = [
                    {"Id": str(i), "MessageBody": m["Body"], "MessageAttributes": _attributes(m)}
                    for i, m in enumerate(to_send)
                ]
                response = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
                succeeded = {e["Id"] for e in response.get("Successful", [])}
                for i, message in enumerate(to_send):
                    if str(i) in succeeded:
                        ok.append(message)
                        sent.add(message["MessageId"])
                    else:
                        result.send_failed.append(message["MessageId"])
                        held.append(message["ReceiptHandle"])
            if ok:
                _delete(sqs, dlq_url, ok, result)
    finally:
        release(sqs, dlq_url, held)
    return result


def _delete(sqs: Any, dlq_url: str, messages: list[dict[str, Any]], result: MoveResult) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    response = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=entries)
    deleted = {e["Id"] for e in response.get("Successful", [])}
    for i, message in enumerate(messages):
        message_id = message["MessageId"]
        if str(i) in deleted:
            if message_id not in result.moved:
                result.moved.append(message_id)
            if message_id in result.delete_failed:
                result.delete_failed.remove(message_id)
        elif message_id not in result.delete_failed:
            result.delete_failed.append(message_id)
