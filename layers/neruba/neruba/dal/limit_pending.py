"""The write a usage-limits period counter names as pending (attribute ``p`` of a ``LIM#`` item).

A limited write of the ingest worker moves its period counter with ONE conditional put (on condition of
the version read) that also records, compressed, what completes the write: the contribution Puts (one
per day the write holds: a batch's days of one period share one counter put), the
events it refuses ``over_limit`` (customer, transaction id, the batch holding it) and the outbox Puts of
the ``alert.triggered`` events its usage crossed. The writer then makes those writes itself, each a plain
conditional write. A writer killed in between leaves the counter ahead of them: every next writer of
that counter (another batch, the same batch again, the sweep, a void) reads the record and completes it
(:func:`complete`) before it replaces the counter, so the usage is counted once, the refusals and alerts
happen once, and nothing is lost.

A write of a sparse batch records instead where its days go: the batch's pending item of the customer's
shard (``Shared``), put by the batch after its counter puts. Its completer reads that item (read ahead for
a whole batch by ``read_shared``): a day it holds is counted; when it does not exist, the completer puts it
empty first (on condition that it does not exist: the batch can then no longer put it with the day), and
puts the days it does not hold as the batch's contributions. A pending item is never changed once put, so
each day counts once. Such a write refuses nothing (a write with refusals is not shared).

Completing is idempotent and, when everything was written already, costs reads only:

- each contribution is read: when it exists, its cells are compared with the record's; only when every
  one is missing or the same (this write's, not a write made without limits after they were removed)
  are the refusals made;
- a refusal is made when the event is still ``accepted`` and held by the recorded batch;
- the refusals come BEFORE the missing contributions are put (each on condition that it does not exist
  yet), so a batch's contribution for a day that exists means every event of that day the batch held is
  decided: counted in it, or refused. A redelivery or the usage sweep that finds the contribution treats
  the batch's events as decided (``UsageRepository.counted``), and a writer that adopts events from a
  batch whose contribution exists by now drops them (``logic.limits.gate``): they are neither counted
  nor refused twice;
- an alert's outbox item is put again (same key, same event id) when neither it nor the event the relay
  stored from it (``WHEVT``) exists; the relay drops an outbox item whose event it stored already
  (``logic.webhooks.relay``), so an alert put again while the relay was fanning out the first copy is
  still sent once.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, is_transient
from neruba.observability import logger


@dataclass(slots=True)
class PendingWrite:
    """What completes one limited write after its counter moved."""

    contributions: list[dict[str, Any]]  # the contributions' conditional Puts (low-level items)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # customer, transaction, holder
    message: str = ""  # the refusals' reason message
    alerts: list[dict[str, Any]] = field(default_factory=list)  # outbox Puts
    spend: dict[str, Any] | None = None  # the spend counter's step (``logic.limits.gate``), JSON values
    # a day of a sparse batch: the batch's shared pending item meant to hold the contributions' days
    # (``Shared``); the contributions are then put only for the days that item does not hold
    shared: Shared | None = None

    @property
    def keys(self) -> set[tuple[str, str]]:
        """The contributions' (pk, sk): the write's identity (none: a spend counter's alerts only)."""
        return {(c["Put"]["Item"]["pk"]["S"], c["Put"]["Item"]["sk"]["S"]) for c in self.contributions}


@dataclass(frozen=True, slots=True)
class Shared:
    """Where a write of a sparse batch puts its days: the batch's pending item of ``shard`` and ``minute``
    (``dal.pending``), under ``entries`` (one per contribution of the record, in order)."""

    shard: int
    minute: str
    batch: str
    entries: tuple[str, ...]

    @property
    def key(self) -> dict[str, Any]:
        from neruba.dal.pending import pending_key

        return pending_key(self.shard, self.minute, self.batch)

    @property
    def key_text(self) -> tuple[str, str]:
        key = self.key
        return (key["pk"]["S"], key["sk"]["S"])


def encode(write: PendingWrite) -> bytes:
    shared = write.shared
    text = json.dumps(
        {
            "c": write.contributions,
            "r": write.refusals,
            "m": write.message,
            "o": write.alerts,
            "s": write.spend,
            **(
                {"sh": [shared.shard, shared.minute, shared.batch, list(shared.entries)]}
                if shared is not None
                else {}
            ),
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    return zlib.compress(text.encode(), 9)


def decode(blob: bytes) -> PendingWrite:
    data = json.loads(zlib.decompress(blob))
    refusals = [(str(c), str(t), str(h)) for c, t, h in data.get("r") or ()]
    shared = None
    if data.get("sh"):
        shard, minute, batch, entries = data["sh"]
        shared = Shared(int(shard), str(minute), str(batch), tuple(str(e) for e in entries))
    return PendingWrite(
        list(data.get("c") or ()),
        refusals,
        str(data.get("m") or ""),
        list(data.get("o") or ()),
        data.get("s"),
        shared,
    )


def complete(
    write: PendingWrite, *, fresh: bool = False, items: Mapping[tuple[str, str], Any] | None = None
) -> list[str]:
    """Make the writes ``write`` names that are not made yet (its spend step apart: the caller's, in
    ``logic.limits.gate``); returns the transaction ids refused by this call. ``fresh``: the writer
    itself, right after moving the counter (it writes without reading first; a condition that fails is
    read and judged as a completer would). ``items``: pending items read ahead (``read_shared``)."""
    if write.shared is not None:
        return _complete_shared(write, write.shared, items or {})
    stored = [None if fresh else _stored(action) for action in write.contributions]
    own = [
        cells is None or _same(action, cells)
        for action, cells in zip(write.contributions, stored, strict=True)
    ]
    refused: list[str] = []
    if own and all(own):  # refused before the contributions exist: see the module docstring
        for customer_id, transaction_id, holder in write.refusals:
            if _refuse(write, customer_id, transaction_id, holder, fresh):
                refused.append(transaction_id)
    elif own:
        logger.warning(
            "pending limited write found counted otherwise; its refusals are not made",
            extra={"contributions": sorted(write.keys)},
        )
    for action, cells in zip(write.contributions, stored, strict=True):
        if cells is None:
            _contribution(action)
    for alert in write.alerts:
        _alert(alert, fresh)
    return refused


def read_shared(writes: Iterable[PendingWrite]) -> dict[tuple[str, str], Any]:
    """The pending items the shared ``writes`` name, read in one BatchGetItem per 100 (None: absent)."""
    from neruba.dal.dynamo import batch_get

    wanted = {w.shared.key_text: w for w in writes if w.shared is not None}
    if not wanted:
        return {}
    table = next(iter(wanted.values())).contributions[0]["Put"]["TableName"]
    keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted]
    found: dict[tuple[str, str], Any] = dict.fromkeys(wanted)
    for item in _retrying(lambda: batch_get(table, keys, projection="pk, sk, ds")):
        found[(str(item["pk"]), str(item["sk"]))] = item
    return found


def _complete_shared(write: PendingWrite, shared: Shared, items: Mapping[tuple[str, str], Any]) -> list[str]:
    """Complete a write of a sparse batch: its days count in the batch's pending item when that item holds
    them; when the item does not exist, an empty one is put first (on condition that it does not exist),
    so that the batch can no longer put it holding those days, and the days it does not hold are put as
    the batch's contributions (each on condition that it does not exist). A pending item is never changed
    once written: a day it does not hold can never come into it. The record carries no refusals (a write
    refusing an event is not shared, ``logic.limits.gate``)."""
    table = write.contributions[0]["Put"]["TableName"]
    if shared.key_text in items:
        item = items[shared.key_text]  # read ahead, plain values (None: absent)
    else:
        stored = _get(table, shared.key, "ds")
        item = None if stored is None else from_item(stored)
    if item is None:
        empty = {"TableName": table, "Item": {**shared.key, "ds": {"M": {}}}}
        if _put({**empty, "ConditionExpression": "attribute_not_exists(pk)"}):
            item = {}
        else:  # the batch (or another completer) put it meanwhile
            stored = _get(table, shared.key, "ds")
            item = from_item(stored or {})
    held = set(item.get("ds") or {})
    for action, entry in zip(write.contributions, shared.entries, strict=True):
        if entry not in held:
            _contribution(action)
    for alert in write.alerts:
        _alert(alert, False)
    return []


def finish_shared(write: PendingWrite) -> None:
    """The writer of a shared write, once its batch's pending item holding the days is put: only the
    alerts are left to write."""
    for alert in write.alerts:
        _alert(alert, True)


def _retrying(call: Any) -> Any:
    """``call()`` with a few tries on a transient failure (the counter is already moved: finishing now
    spares the next writer the work)."""
    for attempt in range(4):
        try:
            return call()
        except Exception as exc:
            if attempt == 3 or not is_transient(exc):
                raise
            time.sleep(0.05 * (2**attempt))
    return None  # pragma: no cover


def _get(table: str, key: dict[str, Any], projection: str | None = None) -> dict[str, Any] | None:
    request: dict[str, Any] = {"TableName": table, "Key": key, "ConsistentRead": True}
    if projection:
        request["ProjectionExpression"] = projection
    response = _retrying(lambda: client("dynamodb").get_item(**request))
    return response.get("Item")  # type: ignore[no-any-return]


def _put(put: dict[str, Any]) -> bool:
    """The conditional put; False when its condition failed (the item exists)."""
    try:
        _retrying(lambda: client("dynamodb").put_item(**put))
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _stored(action: dict[str, Any]) -> dict[str, Any] | None:
    """The cells of the contribution ``action`` puts, as stored (None: not written yet)."""
    put = action["Put"]
    return _get(put["TableName"], {"pk": put["Item"]["pk"], "sk": put["Item"]["sk"]}, "cs")


def _same(action: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether the contribution stored is this write's (not one written without limits since)."""
    return bool(from_item(stored).get("cs") == from_item({"cs": action["Put"]["Item"]["cs"]})["cs"])


def _contribution(action: dict[str, Any]) -> None:
    """Put the contribution unless it exists (written meanwhile by another completer)."""
    _put(action["Put"])


def _refuse(write: PendingWrite, customer_id: str, transaction_id: str, holder: str, fresh: bool) -> bool:
    from neruba.dal.usage import event_key

    table = write.contributions[0]["Put"]["TableName"]
    if not fresh:
        found = _get(table, event_key(customer_id, transaction_id), "st, bk")
        values = from_item(found or {})
        if values.get("st") != "accepted" or values.get("bk") != holder:
            return False
    try:
        _retrying(
            lambda: client("dynamodb").update_item(
                **refusal_update(table, customer_id, transaction_id, holder, write.message)
            )
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False  # refused already, or no longer held by that batch
        raise
    return True


def refusal_update(
    table: str, customer_id: str, transaction_id: str, holder: str, message: str
) -> dict[str, Any]:
    """The update refusing an accepted event its batch holds (never counted) as ``over_limit``."""
    from neruba.dal.dynamo import to_item
    from neruba.dal.outcomes import moved_by_set, moved_by_value
    from neruba.dal.usage import event_key

    return {
        "TableName": table,
        "Key": event_key(customer_id, transaction_id),
        "UpdateExpression": "SET st = :over, o0 = :over, reason = :over, reason_msg = :m" + moved_by_set(),
        "ConditionExpression": "st = :accepted AND bk = :bk",
        "ExpressionAttributeValues": to_item(
            {":over": "over_limit", ":accepted": "accepted", ":bk": holder, ":m": message, **moved_by_value()}
        ),
    }


def _alert(action: dict[str, Any], fresh: bool) -> None:
    from neruba.dal.webhooks import outbox_written

    put = action["Put"]
    if fresh or not outbox_written(put["TableName"], put["Item"]):
        _put(put)
