"""Partial batch responses for the SQS workers (``FunctionResponseTypes: [ReportBatchItemFailures]``).

Each record runs through the handler on its own. A record whose handler raises is named in
``batchItemFailures``: SQS makes just that message visible again (and moves it to the DLQ after the
queue's ``maxReceiveCount``), while Lambda deletes the others. When every record of a batch failed,
:class:`BatchFailedError` is raised instead, so the invocation itself fails, as Powertools' batch processor
does (``raise_on_entire_batch_failure``).

This is the whole of what the workers used from Powertools' batch utility. That utility's import also
loads asyncio and every event data class, about 15 ms of each worker's cold start for a loop of a few lines.

Example:
    >>> def handle(message: SQSMessage) -> None:
    ...     if message.body == "boom":
    ...         raise ValueError(message.body)
    >>> event = {"Records": [{"messageId": "m1", "body": "ok"}, {"messageId": "m2", "body": "boom"}]}
    >>> process_batch(event, handle)
    {'batchItemFailures': [{'itemIdentifier': 'm2'}]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class BatchFailedError(Exception):
    """Every record of the batch failed: the invocation fails and SQS redelivers the whole batch."""

    def __init__(self, errors: list[Exception]) -> None:
        summary = "; ".join(f"{type(error).__name__}: {error}" for error in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"All {len(errors)} records failed processing: {summary}{more}")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class SQSMessage:
    """One record of an SQS event, as Lambda delivers it."""

    raw: dict[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.raw["messageId"])

    @property
    def body(self) -> str:
        return str(self.raw["body"])

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered this message, this delivery included (1 when not reported)."""
        return int((self.raw.get("attributes") or {}).get("ApproximateReceiveCount") or 1)


@dataclass
class BatchResult:
    """The ids of the records whose handler raised, and what each raised."""

    total: int
    failed: list[str] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """The partial batch response Lambda reads."""
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed]}

    def raise_if_all_failed(self) -> None:
        """Raise :class:`BatchFailedError` when the batch had records and none succeeded."""
        if self.total and len(self.errors) == self.total:
            raise BatchFailedError(self.errors) from self.errors[-1]


def run_records(records: list[dict[str, Any]], handler: Callable[[SQSMessage], object]) -> BatchResult:
    """Run ``handler`` on each record in order; an exception fails that record only.

    Example:
        >>> run_records([{"messageId": "m1", "body": "x"}], lambda message: None).failed
        []
    """
    result = BatchResult(total=len(records))
    for record in records:
        try:
            handler(SQSMessage(record))
        except Exception as exc:  # the record fails; the others still run
            result.failed.append(str(record["messageId"]))
            result.errors.append(exc)
    return result


def process_batch(event: dict[str, Any], handler: Callable[[SQSMessage], object]) -> dict[str, Any]:
    """The partial batch response for an SQS event: :func:`run_records`, failing the invocation if every
    record failed. An event without records is not an SQS batch (``ValueError``)."""
    records = event.get("Records")
    if not records or not isinstance(records, list):
        raise ValueError("Invalid event format: an SQS event has a non-empty Records list")
    result = run_records(records, handler)
    result.raise_if_all_failed()
    return result.response()
