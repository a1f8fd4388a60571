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
from collections.abc import Iterator, Mapping
from typing import Any


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
        self._queue.attributes = property(lambda queue: _QueueAttributes(queue, real_attributes))
        self._dynamodb_models.copy = _NoTableBackup()  # type: ignore[assignment]
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
        candidates = _candidates(table, hash_key, *args, **kwargs)
        if candidates is None:
            return self._real_query(table, hash_key, *args, **kwargs)
        self._narrowed.items = (table, candidates)
        try:
            answer = self._real_query(table, hash_key, *args, **kwargs)
        finally:
            self._narrowed.items = None
        if self.queries % self.check_every == 0:
            self.checked += 1
            if _as_json(self._real_query(table, hash_key, *args, **kwargs)) != _as_json(answer):
                self.mismatches += 1
        return answer


class _QueueAttributes(Mapping[str, Any]):
    """A queue's attributes worked out only when more than one standard-queue key is asked for."""

    def __init__(self, queue: Any, compute: Any) -> None:
        self._queue = queue
        self._compute = compute
        self._all: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if key == "ContentBasedDeduplication" and not self._queue.fifo_queue:
            return default
        return self._full().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._full()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def _full(self) -> dict[str, Any]:
        if self._all is None:
            self._all = self._compute(self._queue)
        return self._all


class _NoTableBackup:
    """Stands in for the ``copy`` module inside moto's DynamoDB models: tables are not deep-copied."""

    def deepcopy(self, value: Any, *args: Any) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, *args)

    def copy(self, value: Any) -> Any:
        return copy.copy(value)


def _candidates(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> list[Any] | None:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    conditions = kwargs.get("hash_key_conditions") or []
    # list(dict.values()) copies in one step under the GIL: other threads may be writing to the table
    if index_name is None and table.range_key_attr and hash_key is not None:
        return list(table.items.get(hash_key, {}).values())
    if index_name is not None and conditions:
        hash_sets = list(table.items.values())
        every = [i for h in hash_sets for i in list(h.values())] if table.range_key_attr else hash_sets
        return [item for item in every if all(_has(item, name, value) for name, value in conditions)]
    return None


def _has(item: Any, name: str, value: Any) -> bool:
    found = item.attrs.get(name)
    return found is not None and bool(found == value)


def _as_json(answer: Any) -> Any:
    items, scanned, last_key = answer
    return [item.to_json() for item in items], scanned, last_key
