"""Make the local stack's moto server safe under concurrent requests, and keep its costs per request in
proportion to what the request touches rather than to everything stored.

moto answers like DynamoDB and SQS, but (moto 5.2) some of its operations cost time in proportion to the
whole table or queue, and its DynamoDB model is not written for concurrent requests, which its threaded
server (werkzeug, one thread per request) hands it. ``EmulatorPatches`` changes eight things while the
stack runs and puts moto back afterwards; tests/infra/test_local_emulator.py runs the same operations with
and without the patches and compares every answer and the stored state.

1. One lock around every DynamoDB request. moto applies a transaction's actions one by one and undoes
   them by restoring a copy of the tables; a concurrent write in between would be lost by that undo, and a
   concurrent read could see half a transaction. DynamoDB requests are pure Python (they hold the GIL all
   along), so serialising them costs no parallelism. SQS requests are not serialised: a long poll waits
   inside its request, and moto's queues guard their own message lists (all but DeleteMessage: item 6).
2. TransactWriteItems without copying tables: moto deep-copies every table a transaction names before the
   first action (10 ms at 10,000 items, seconds at a million). Here only the items the transaction names
   are copied, and a cancelled transaction puts exactly those back (or removes the ones it created), which
   is what restoring the whole table amounts to under the lock.
3. Query: moto sorts every item of the table, then keeps the queried partition. Here moto's own query
   code runs on the queried partition (or, for an index, on the items carrying the index's hash key
   value) only; it still sorts, pages, filters and projects them.
4. SQS ReceiveMessage checks each message's retention period by computing every attribute of the queue,
   which counts the messages in flight by scanning them all: here the period is read from the queue.
5. SQS SendMessage looks up ``ContentBasedDeduplication`` the same way; a standard queue has none, so the
   lookup answers without computing the rest (any other attribute still comes from moto).
6. SQS DeleteMessage under the queue's lock. moto deletes by scanning the queue's message list into a new
   list and then replacing the old one, without the lock its SendMessage takes to append: a message sent
   by another client during the scan went into the old list and vanished with it (sent, answered with a
   message id, never received). Under load, with thousands of messages to scan and SendMessageBatch
   appending ten at a time, the ingest path lost events ten at a time that way.
7. SQS ReceiveMessage under the queue's lock too. A receive that finds a message past its queue's
   maxReceiveCount removes it from the message list and adds it to the dead-letter queue, again without
   the lock: during a delete's scan, the removal hit the old list, and the delete's new list brought the
   message back, so it sat in the DLQ and in its queue at once (and would be processed again). The lock
   is the queue's own ``Condition``: a long poll waiting for messages releases it while it waits, so
   sends are not held up by a waiting receive.
8. The member names of moto's answers worked out once per shape, and the handlers' method lists once per
   class (``neruba_tools.local.answer_lookups``, also used by the tests and the benchmarks).

Example:
    >>> with EmulatorPatches():  # doctest: +SKIP
    ...     ...  # moto server requests
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from neruba_tools.local.answer_lookups import AnswerLookups

DYNAMODB_LOCK = threading.RLock()


def candidates(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> list[Any] | None:
    """The items a Query (moto's ``Table.query`` arguments) can return; None when it cannot tell."""
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


class NarrowedQueries:
    """Patches moto's ``Table.query`` to run on ``candidates`` only (restored by ``uninstall``)."""

    def __init__(self) -> None:
        from moto.dynamodb.models.table import Table

        self._table = Table
        self._real_query = Table.query
        self._real_all_items = Table.all_items
        self._narrowed = threading.local()  # moto's server answers each request on its own thread
        self.queries = 0

    def install(self) -> None:
        narrowing = self

        def query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            narrowing.queries += 1
            return narrowing.narrowed(table, hash_key, *args, **kwargs)

        def all_items(table: Any) -> Any:
            narrowed = getattr(narrowing._narrowed, "items", None)
            if narrowed is not None and narrowed[0] is table:
                return narrowed[1]
            return narrowing._real_all_items(table)

        self._table.query = query
        self._table.all_items = all_items

    def uninstall(self) -> None:
        self._table.query = self._real_query
        self._table.all_items = self._real_all_items

    def narrowed(self, table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        """moto's answer to the query, computed on the candidates only."""
        found = candidates(table, hash_key, *args, **kwargs)
        if found is None:
            return self._real_query(table, hash_key, *args, **kwargs)
        self._narrowed.items = (table, found)
        try:
            return self._real_query(table, hash_key, *args, **kwargs)
        finally:
            self._narrowed.items = None

    def unpatched(self, table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        """moto's own answer, over the whole table."""
        return self._real_query(table, hash_key, *args, **kwargs)


class TablesNotCopied:
    """Stands in for the ``copy`` module inside moto's DynamoDB models: a table is not deep-copied (its
    "restore" is then a no-op), anything else is."""

    def deepcopy(self, value: Any, *args: Any) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, *args)

    def copy(self, value: Any) -> Any:
        return copy.copy(value)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """(table, hash key, range key) of each item a transaction names, in moto's key types."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for action in transact_items:
        for op in action.values():
            if not isinstance(op, dict):
                continue
            table = backend.tables.get(op.get("TableName"))
            source = op.get("Item") if "Item" in op else op.get("Key")
            if table is None or not isinstance(source, dict) or table.hash_key_attr not in source:
                continue
            try:
                hash_key = DynamoType(source[table.hash_key_attr])
                range_key = DynamoType(source[table.range_key_attr]) if table.range_key_attr else None
            except (KeyError, TypeError, AttributeError):
                continue  # moto rejects the action itself
            touched.append((table, hash_key, range_key))
    return touched


def _stored(table: Any, hash_key: Any, range_key: Any) -> Any:
    if table.range_key_attr:
        return (table.items.get(hash_key) or {}).get(range_key)
    return table.items.get(hash_key)


def _put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if table.range_key_attr:
        partition = table.items[hash_key]
        if item is None:
            partition.pop(range_key, None)
        else:
            partition[range_key] = item
    elif item is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = item


class ItemLevelTransactions:
    """Patches moto's ``transact_write_items`` to back up the named items instead of whole tables."""

    def __init__(self) -> None:
        import moto.dynamodb.models as models

        self._models = models
        self._backend = models.DynamoDBBackend
        self._real = models.DynamoDBBackend.transact_write_items

    def install(self) -> None:
        real, models = self._real, self._models

        def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
            with DYNAMODB_LOCK:
                backup = [
                    (table, h, r, copy.deepcopy(_stored(table, h, r)))
                    for table, h, r in _touched(backend, transact_items)
                ]
                saved_copy = models.copy
                models.copy = TablesNotCopied()  # type: ignore[assignment]
                try:
                    real(backend, transact_items)
                except BaseException:
                    for table, hash_key, range_key, item in reversed(backup):
                        _put_back(table, hash_key, range_key, item)
                    raise
                finally:
                    models.copy = saved_copy

        self._backend.transact_write_items = transact_write_items

    def uninstall(self) -> None:
        self._backend.transact_write_items = self._real


class QueueAttributes(Mapping[str, Any]):
    """A queue's attributes, worked out in full only when a key other than a standard queue's
    ``ContentBasedDeduplication`` is asked for."""

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


class QueueLookups:
    """Patches moto's SQS retention check and queue attribute lookups (items 4 and 5 above)."""

    def __init__(self) -> None:
        from moto.sqs.models import Queue, SQSBackend

        self._sqs, self._queue = SQSBackend, Queue
        self._real_attributes = Queue.attributes
        self._real_retention = SQSBackend.is_message_valid_based_on_retention_period

    def install(self) -> None:
        def retention(backend: Any, queue_name: str, message: Any) -> bool:
            from moto.core.utils import unix_time

            period = int(backend.get_queue(queue_name).message_retention_period)
            return bool(period + message.sent_timestamp / 1000 > unix_time())

        compute = self._real_attributes.fget
        self._sqs.is_message_valid_based_on_retention_period = retention
        self._queue.attributes = property(lambda queue: QueueAttributes(queue, compute))

    def uninstall(self) -> None:
        self._sqs.is_message_valid_based_on_retention_period = self._real_retention
        self._queue.attributes = self._real_attributes


class GuardedDeletes:
    """Patches moto's SQS ``Queue.delete_message`` to hold the queue's own lock (item 6 above)."""

    def __init__(self) -> None:
        from moto.sqs.models import Queue

        self._queue = Queue
        self._real = Queue.delete_message

    def install(self) -> None:
        real = self._real

        def delete_message(queue: Any, receipt_handle: str) -> None:
            with queue._messages_lock:  # the lock moto's add_message takes to append a sent message
                real(queue, receipt_handle)

        self._queue.delete_message = delete_message

    def uninstall(self) -> None:
        self._queue.delete_message = self._real


class GuardedReceives:
    """Patches moto's SQS ``SQSBackend.receive_message`` to hold the queue's own lock (item 7 above)."""

    def __init__(self) -> None:
        from moto.sqs.models import SQSBackend

        self._backend = SQSBackend
        self._real = SQSBackend.receive_message

    def install(self) -> None:
        real = self._real

        def receive_message(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            queue = backend.get_queue(queue_name)
            with queue._messages_lock:  # re-entrant; waiting for messages releases it (Condition.wait)
                return real(backend, queue_name, *args, **kwargs)

        self._backend.receive_message = receive_message

    def uninstall(self) -> None:
        self._backend.receive_message = self._real


class SerialDynamoDB:
    """Patches moto's DynamoDB request handler to answer one request at a time (item 1 above)."""

    def __init__(self) -> None:
        from moto.dynamodb.responses import DynamoHandler

        self._handler = DynamoHandler
        self._real = DynamoHandler.call_action

    def install(self) -> None:
        real = self._real

        def call_action(handler: Any) -> Any:
            with DYNAMODB_LOCK:
                return real(handler)

        self._handler.call_action = call_action

    def uninstall(self) -> None:
        self._handler.call_action = self._real


class EmulatorPatches:
    """All eight patches, installed on ``__enter__``/``install`` and removed on ``__exit__``/``uninstall``;
    nesting (two stacks in one process) installs once."""

    _depth = 0
    _guard = threading.Lock()
    _parts: list[Any] = []

    def install(self) -> EmulatorPatches:
        with EmulatorPatches._guard:
            if EmulatorPatches._depth == 0:
                parts = [
                    SerialDynamoDB(), ItemLevelTransactions(), NarrowedQueries(), QueueLookups(),
                    GuardedDeletes(), GuardedReceives(), AnswerLookups(),
                ]  # fmt: skip
                for part in parts:
                    part.install()
                EmulatorPatches._parts = parts
            EmulatorPatches._depth += 1
        return self

    def uninstall(self) -> None:
        with EmulatorPatches._guard:
            if EmulatorPatches._depth == 0:
                return
            EmulatorPatches._depth -= 1
            if EmulatorPatches._depth == 0:
                for part in reversed(EmulatorPatches._parts):
                    part.uninstall()
                EmulatorPatches._parts = []

    def __enter__(self) -> EmulatorPatches:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()
