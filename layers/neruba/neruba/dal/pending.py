"""Pending usage: the sparse days of a batch (a customer's meter with a few events that day, in a batch
naming many customers), written together in a few items instead of one contribution each, then folded into
one contribution per customer, meter, day and ``WINDOW`` (ten minutes).

Items:

- pending   ``PND#{s}`` / ``{window}!{batch}``: for pending shard ``s`` (``pending_shard(customer)``), the
  days of the batch's customers of that shard, in a map ``ds`` keyed ``{customer}#{meter}#{day}``, each
  ``{"agg": ..., "cs": {...}}`` shaped as a contribution (``dal/contributions.py``). ``window`` is the
  first minute of the window holding the start of the attempt that wrote every one of those events
  (their ``at``; ``minute_of``). Put once, on condition that it does not exist, without an expiry: it
  is removed by a fold (``_remove_folded``) once the watermark passed its window and its window started
  more than ``KEEP_FOLDED`` ago (it stays the once-mark of its batch while SQS may deliver the batch again).
- watermark ``PND#{s}`` / ``~folded``: ``w``, the last window of shard ``s`` whose pending items are all
  folded (every window up to it, in order).
- fold      ``AGG#{customer}#{meter}[#{n}]`` / ``{day}!{fold_batch(window, s)}``: a contribution holding
  every pending day of that customer, meter and day in window ``window`` of shard ``s``, merged.

A window is folded once it ended more than ``CLOSE`` ago: a worker writes nothing past its Timeout, so no
pending item of that window can still appear. Readers read the watermark, then the pending items of later
windows, then the customer's partition; a pending day counts unless the fold of its window and shard is
found in the partition (the fold holds exactly the pending days of its window: nothing is counted twice;
the watermark moves only after the fold is written: nothing is missed). Function and attribute names say
``minute`` for a window's first minute.

Example:
    >>> fold_batch("2026-01-02T03:04", 5)
    'P2026-01-02T03:04.5'
    >>> pending_key(5, "2026-01-02T03:04", "b1")["sk"]["S"]
    '2026-01-02T03:04!b1'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.dal.clients import client
from neruba.dal.contributions import (
    CONTRIBUTION_MARK,
    DayWrite,
    GroupRef,
    cell_item,
    cell_of,
    cell_usage,
    contribution_item,
    contribution_key,
    shard_of,
)
from neruba.dal.dynamo import batch_get, from_item, is_condition_failure, query_items, to_item
from neruba.domain.usage import merge_cells
from neruba.timefmt import iso

PENDING_SHARDS = 8
SPARSE_EVENTS = 3  # a customer's meter and day with at most this many events in a batch is sparse
# a batch writes its sparse days as pending items only when it has this many (two per pending shard):
# fewer are cheaper as contributions (each pending item costs a write unit, and the fold writes again)
PENDING_MIN_DAYS = 2 * PENDING_SHARDS
WINDOW = timedelta(minutes=10)  # the pending items of a window are folded together (minute_of)
CLOSE = timedelta(minutes=3)  # longer than the worker's Timeout (30 s) and HOLD (120 s)
# a folded pending item is kept this long after its window started: longer than the journals (14 d) and
# SQS retention (14 d), while a redelivery of its batch is checked against it
KEEP_FOLDED = timedelta(days=35)
MINUTE_LENGTH = len("2026-01-01T00:00")
WATERMARK = "~folded"
FOLD_MARK = "P"
# (customer, meter, day, cell, batch, minute): a cell of a batch's pending item
PendingCell = tuple[str, str, str, str, str, str]


def pending_shard(customer_id: str) -> int:
    return int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % PENDING_SHARDS


def minute_of(at: str) -> str:
    """The first minute (``YYYY-MM-DDTHH:M0``) of the ``WINDOW`` holding a stored ISO time: the pending
    items of one window are folded together.

    Example:
        >>> minute_of("2026-01-02T03:47:59.5+00:00")
        '2026-01-02T03:40'
    """
    return at[: MINUTE_LENGTH - 1] + "0"


def pending_key(shard: int, minute: str, batch: str) -> dict[str, Any]:
    return {"pk": {"S": f"PND#{shard}"}, "sk": {"S": f"{minute}{CONTRIBUTION_MARK}{batch}"}}


def day_entry(customer_id: str, meter_code: str, day: str) -> str:
    return f"{customer_id}#{meter_code}#{day}"


def fold_batch(minute: str, shard: int) -> str:
    """The batch name of a fold's contributions (a fold is one minute of one pending shard)."""
    return f"{FOLD_MARK}{minute}.{shard}"


def is_sparse(write: DayWrite) -> bool:
    return write.count <= SPARSE_EVENTS and not write.recounts and not write.checks


@dataclass(frozen=True, slots=True)
class PendingDay:
    """One pending day as read: the minute, batch and shard of its item, and its contribution-shaped
    attributes (``agg``, ``cs``)."""

    minute: str
    batch: str
    shard: int
    customer_id: str
    meter_code: str
    day: str
    stored: Mapping[str, Any]

    def as_contribution(self) -> dict[str, Any]:
        """The day as the contribution its batch would have written directly (readers merge it so)."""
        key = contribution_key(self.customer_id, self.meter_code, self.day, self.batch, 0)
        return {"pk": key["pk"]["S"], "sk": key["sk"]["S"], **self.stored, "pending": True}

    @property
    def folded_sk(self) -> str:
        return f"{self.day}{CONTRIBUTION_MARK}{fold_batch(self.minute, self.shard)}"


class PendingUsage:
    """Reads and writes of pending usage (the module docstring has the items)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------------ writing
    def put(self, batch: str, minute: str, writes: Iterable[DayWrite], now: datetime) -> bool:
        """Write the pending days of one batch and one pending shard (all of the same shard) in one item;
        False if the item exists (an earlier attempt wrote it)."""
        writes = list(writes)
        shard = pending_shard(writes[0].customer_id)
        days = {}
        for write in writes:
            stored = contribution_item(write, now)
            stored.pop("at", None)
            days[day_entry(write.customer_id, write.meter_code, write.day)] = stored
        item = {
            **pending_key(shard, minute, batch),
            **to_item({"at": iso(now), "ds": days}),
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def check(self, write: DayWrite, batch: str, minute: str, cells: Iterable[str]) -> dict[str, Any]:
        """A ConditionCheck: ``batch``'s pending item of ``minute`` does not hold these cells of the day."""
        entry = day_entry(write.customer_id, write.meter_code, write.day)
        names = {"#d": entry, **{f"#c{i}": cell for i, cell in enumerate(sorted(cells))}}
        condition = " AND ".join(f"attribute_not_exists(ds.#d.cs.{n})" for n in names if n != "#d")
        return {
            "TableName": self.table_name,
            "Key": pending_key(pending_shard(write.customer_id), minute, batch),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }

    # ------------------------------------------------------------------ reading
    def holding(self, wanted: Iterable[PendingCell]) -> set[PendingCell]:
        """Which of these (customer, meter, day, cell, batch, minute) the batch's pending item holds."""
        wanted = set(wanted)
        keys = {(w[5], w[4], pending_shard(w[0])) for w in wanted}
        unique = [pending_key(shard, minute, batch) for minute, batch, shard in sorted(keys)]
        found: dict[tuple[str, str], Mapping[str, Any]] = {
            (str(item["pk"]), str(item["sk"])): item for item in batch_get(self.table_name, unique)
        }
        held: set[PendingCell] = set()
        for c, m, d, cell, batch, minute in wanted:
            key = pending_key(pending_shard(c), minute, batch)
            stored = found.get((key["pk"]["S"], key["sk"]["S"])) or {}
            if cell in ((stored.get("ds") or {}).get(day_entry(c, m, d)) or {}).get("cs", {}):
                held.add((c, m, d, cell, batch, minute))
        return held

    def watermark(self, shard: int) -> str:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"PND#{shard}"}, "sk": {"S": WATERMARK}},
            ConsistentRead=True,
        )
        return str(from_item(response["Item"]).get("w", "")) if response.get("Item") else ""

    def _items_after(self, shard: int, watermark: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Pending items of shard ``shard`` of minutes after ``watermark`` (all when it is empty)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item(
                {":pk": f"PND#{shard}", ":lo": f"{watermark}{CONTRIBUTION_MARK}\uffff", ":hi": "9999\uffff"}
            ),
            "ConsistentRead": True,
        }
        if limit:
            request["Limit"] = limit
            items = client("dynamodb").query(**request).get("Items", [])
            return [from_item(i) for i in items]
        return list(query_items(request))

    def unfolded(self, customer_id: str, meter_code: str, first_day: str, last_day: str) -> list[PendingDay]:
        """The pending days of a customer's meter in [first_day, last_day] not below the watermark (read
        before the customer's partition; :func:`not_folded` drops those whose fold it holds)."""
        shard = pending_shard(customer_id)
        prefix = f"{customer_id}#{meter_code}#"
        found = []
        for item in self._items_after(shard, self.watermark(shard)):
            minute, _, batch = str(item["sk"]).partition(CONTRIBUTION_MARK)
            for entry, stored in (item.get("ds") or {}).items():
                day = entry[len(prefix) :]
                if entry.startswith(prefix) and first_day <= day <= last_day:
                    found.append(PendingDay(minute, batch, shard, customer_id, meter_code, day, stored))
        return found

    # ------------------------------------------------------------------ folding
    def fold(
        self,
        now: datetime,
        usage_shards: int = 1,
        limit: int = 10_000,
        on_folded: Callable[[set[GroupRef]], None] | None = None,
    ) -> dict[str, int]:
        """Fold every closed minute of every pending shard, in order, then remove the pending items the
        watermark passed that are older than ``KEEP_FOLDED``; returns what it did. Safe to run twice at
        once or again after a crash: a fold's contributions are put on condition that they do not exist,
        and they hold exactly the pending days of their minute.

        ``on_folded`` is called with the cells of each folded minute once its contributions are written and
        before the watermark passes it: a fold killed in between calls it again for that minute."""
        closed = minute_of(iso(now - CLOSE - WINDOW))
        report = {"minutes": 0, "contributions": 0, "present": 0, "removed": 0}
        for shard in range(PENDING_SHARDS):
            while report["minutes"] < limit:
                watermark = self.watermark(shard)
                following = self._items_after(shard, watermark, limit=1)
                if not following:
                    break
                minute = str(following[0]["sk"])[:MINUTE_LENGTH]
                if minute > closed:
                    break
                written, present, cells = self._fold_minute(shard, minute, now, usage_shards)
                report["minutes"] += 1
                report["contributions"] += written
                report["present"] += present
                if on_folded is not None and cells:
                    on_folded(cells)
                self._advance(shard, watermark, minute)
            report["removed"] += self._remove_folded(shard, self.watermark(shard), now)
        return report

    def lag(self, now: datetime) -> dict[int, int]:
        """Per pending shard, the age in seconds of its oldest unfolded window (from the window's first
        minute; 0 when every pending item of the shard is folded)."""
        ages = {}
        for shard in range(PENDING_SHARDS):
            following = self._items_after(shard, self.watermark(shard), limit=1)
            if not following:
                ages[shard] = 0
                continue
            start = datetime.fromisoformat(str(following[0]["sk"])[:MINUTE_LENGTH]).replace(tzinfo=UTC)
            ages[shard] = max(0, int((now - start).total_seconds()))
        return ages

    def _fold_minute(
        self, shard: int, minute: str, now: datetime, usage_shards: int
    ) -> tuple[int, int, set[GroupRef]]:
        days: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for item in self._items_after(shard, _before(minute)):
            if str(item["sk"])[:MINUTE_LENGTH] != minute:
                break
            for entry, stored in (item.get("ds") or {}).items():
                days.setdefault(entry, []).append((str(item["sk"]), stored))
        batch = fold_batch(minute, shard)
        written = present = 0
        cells: set[GroupRef] = set()
        for entry, parts in sorted(days.items()):
            customer_id, meter_code, day = entry.split("#", 2)
            key = contribution_key(customer_id, meter_code, day, batch, shard_of(batch, usage_shards))
            stored = {**merged_day([s for _, s in sorted(parts, key=lambda p: p[0])]), "at": iso(now)}
            cells |= {GroupRef(customer_id, meter_code, *cell_of(day, cell)) for cell in stored["cs"]}
            try:
                client("dynamodb").put_item(
                    TableName=self.table_name,
                    Item={**key, **to_item(stored)},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                written += 1
            except Exception as exc:
                if not is_condition_failure(exc):
                    raise
                present += 1  # an earlier or concurrent fold of this minute wrote it
        return written, present, cells

    def _remove_folded(self, shard: int, watermark: str, now: datetime) -> int:
        """Delete the pending items of shard ``shard`` of windows up to ``watermark`` (folded: no reader
        reads them) that started before ``now - KEEP_FOLDED``; how many. Items the watermark has not passed
        are never removed, however old."""
        if not watermark:
            return 0
        below = min(
            f"{watermark}{CONTRIBUTION_MARK}\uffff", f"{minute_of(iso(now - KEEP_FOLDED))}{CONTRIBUTION_MARK}"
        )
        below_watermark = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk < :below",
            "ExpressionAttributeValues": to_item({":pk": f"PND#{shard}", ":below": below}),
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        keys = [to_item({"pk": key["pk"], "sk": key["sk"]}) for key in query_items(below_watermark)]
        for start in range(0, len(keys), 25):  # BatchWriteItem takes 25 requests at most
            request: dict[str, Any] = {
                self.table_name: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            }
            while request:
                response = client("dynamodb").batch_write_item(RequestItems=request)
                request = dict(response.get("UnprocessedItems") or {})
        return len(keys)

    def _advance(self, shard: int, watermark: str, minute: str) -> None:
        """Move the watermark from ``watermark`` to ``minute`` (nothing if another fold moved it)."""
        condition = "attribute_not_exists(w)" if not watermark else "w = :old"
        values = {":new": {"S": minute}, **({":old": {"S": watermark}} if watermark else {})}
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"PND#{shard}"}, "sk": {"S": WATERMARK}},
                UpdateExpression="SET w = :new",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise


def not_folded(days: Iterable[PendingDay], partition_sks: Iterable[str]) -> list[PendingDay]:
    """The pending days whose fold is not among the sort keys read from the customer's partition."""
    seen = set(partition_sks)
    return [d for d in days if d.folded_sk not in seen]


def merged_day(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several pending days of one customer, meter and day as one contribution's ``agg`` and ``cs``:
    each cell's figures merged exactly, its transaction ids listed in order."""
    parts = list(parts)
    aggregation = next((p.get("agg") for p in parts if p.get("agg")), None)
    cells: dict[str, list[Mapping[str, Any]]] = {}
    for part in parts:
        for cell, stored in (part.get("cs") or {}).items():
            cells.setdefault(cell, []).append(stored)
    merged = {}
    for cell, stored in cells.items():
        item = cell_item(merge_cells(cell_usage(s, aggregation) for s in stored))
        item.pop("agg", None)
        merged[cell] = {**item, "tx": [str(t) for s in stored for t in s.get("tx") or ()]}
    return {"agg": aggregation, "cs": merged}


def _before(minute: str) -> str:
    """A watermark just below ``minute`` (its items sort after it)."""
    return minute[:-1] + chr(ord(minute[-1]) - 1)
