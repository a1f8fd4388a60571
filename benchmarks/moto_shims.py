"""Take out three costs that only the emulator has, so a benchmark can run at full size on moto.

moto answers correctly but some of its operations cost time in proportion to everything stored, where
DynamoDB and SQS cost in proportion to what a request touches. At 10,000 subscriptions those costs turn a
billing run of minutes into hours. ``EmulatorShims`` narrows each of them for the duration of a ``with``
block and restores moto afterwards. Request counts and items read, which are what carry over to AWS, are
the same with or without the shims; the shims only change how long the emulator takes to answer.

1. Query: moto sorts every item of the table on each Query, then filters. The shim hands moto only the
   items that can match (the queried partition, or the items carrying the index's hash key value); moto's
   own code still sorts, pages, filters and projects them. Every ``check_every``-th query is also answered
   the unpatched way and compared: ``mismatches`` must stay 0.
2. TransactWriteItems: moto deep-copies each table a transaction touches, to roll back on cancellation.
   The shim skips the copy; a benchmark that uses it must see no cancelled transaction.
3. SQS: moto works out every queue attribute, counting the messages in flight by scanning them all, to
   read one attribute: the retention period of each message received, and content-based deduplication on
   each message sent. The shim reads the retention period from the queue, and answers attribute lookups
   one key at a time (a standard queue has no ``ContentBasedDeduplication``; any other key still comes from
   moto's full computation).

Example::

    with EmulatorShims() as shims, mock_aws():
        ...  # run the workload
    assert shims.snapshot()["mismatches"] == 0
"""

from __future__ import annotations

import copy
import threading
from typing import Any

# the local stack's own patches: the same mechanisms
from neruba_tools.local.emulator import QueueAttributes, TablesNotCopied, candidates


class EmulatorShims:
    """Context manager installing the three shims on moto's DynamoDB and SQS models."""

    def __init__(self, check_every: int = 97) -> None:
        import moto.dynamodb.models as dynamodb_models
        from moto.dynamodb.models.table import Table
        from moto.sqs.models import Queue, SQSBackend

        self.check_every = check_every
        self.queries = 0
        self.checked = 0
        self.mismatches = 0
        self._dynamodb_models = dynamodb_models
        self._table = Table
        self._sqs = SQSBackend
        self._queue = Queue
        self._real_attributes = Queue.attributes
        self._real_query = Table.query
        self._real_all_items = Table.all_items
        self._narrowed = threading.local()  # moto's server answers each request on its own thread
        self._real_retention = SQSBackend.is_message_valid_based_on_retention_period

    def __enter__(self) -> EmulatorShims:
        shims = self

        def query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            return shims._query(table, hash_key, *args, **kwargs)

        def retention(backend: Any, queue_name: str, message: Any) -> bool:
            from moto.core.utils import unix_time

            period = int(backend.get_queue(queue_name).message_retention_period)
            return bool(period + message.sent_timestamp / 1000 > unix_time())

        def all_items(table: Any) -> Any:
            narrowed = getattr(shims._narrowed, "items", None)
            if narrowed is not None and narrowed[0] is table:
                return narrowed[1]
            return shims._real_all_items(table)

        self._table.query = query
        self._table.all_items = all_items
        self._sqs.is_message_valid_based_on_retention_period = retention
        real_attributes = self._real_attributes.fget
        self._queue.attributes = property(lambda queue: QueueAttributes(queue, real_attributes))
        self._dynamodb_models.copy = TablesNotCopied()  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self._table.query = self._real_query
        self._table.all_items = self._real_all_items
        self._sqs.is_message_valid_based_on_retention_period = self._real_retention
        self._queue.attributes = self._real_attributes
        self._dynamodb_models.copy = copy  # type: ignore[assignment]

    def snapshot(self) -> dict[str, int]:
        """How many queries went through the shim, how many were checked against moto, and mismatches."""
        return {"queries": self.queries, "checked_against_moto": self.checked, "mismatches": self.mismatches}

    def _query(self, table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        found = candidates(table, hash_key, *args, **kwargs)
        if found is None:
            return self._real_query(table, hash_key, *args, **kwargs)
        self._narrowed.items = (table, found)
        try:
            answer = self._real_query(table, hash_key, *args, **kwargs)
        finally:
            self._narrowed.items = None
        if self.queries % self.check_every == 0:
            self.checked += 1
            if _as_json(self._real_query(table, hash_key, *args, **kwargs)) != _as_json(answer):
                self.mismatches += 1
        return answer


def _as_json(answer: Any) -> Any:
    items, scanned, last_key = answer
    return [item.to_json() for item in items], scanned, last_key
