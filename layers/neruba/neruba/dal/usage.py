"""The usage table: raw events, batch journals, slices, hourly aggregates and outcome counters.

Items (``pk`` / ``sk``):

- event      ``EVT#{customer}#{transaction_id}`` / ``#`` - the raw event; the conditional put on this key
  is the idempotency check (no separate idempotency record). ``st`` is accepted or failed, ``bk`` the
  batch that counted it, ``cid`` the copy (request id + index) that wrote it, ``hist`` its outcomes.
- journal    ``JRN#{minute}#{shard}`` / ``{batch}`` - written first for every batch: the compressed list of
  the batch's event keys, so a sweep can find events a crashed worker wrote but never counted (TTL 14 d).
- contribution ``USE#{customer}#{meter}`` / ``{hour}#{group}#{batch}`` - what one batch added to one cell
  (count ``n``, sum ``s``, max ``mx``, latest ``lt``/``lv``, unique values ``u``, ``late_n``) and the
  transaction ids it counted (``tx``). Its conditional put is the count and the proof that the batch counted.
- aggregate  ``AGG#{customer}#{meter}`` / ``{hour}#{group}`` - a cell's usage written by the sweep's repair
  (or by earlier versions), with the batches whose contributions it folds in (``fb``).
- slice      ``SL#{customer}#{meter}#{hour}`` / ``{group}#{batch}`` - earlier versions' proof of a count;
  read only to never count those batches again.
- outcomes   ``OUT#{day}`` / ``{minute}`` - counters per outcome.

Readers get a cell as its aggregate plus the contributions not folded into it, merged exactly; see
docs/architecture.md for why each count is exactly once and the write-unit budget.
"""

from __future__ import annotations

import heapq
import itertools
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import from_item, is_condition_failure, to_item, to_value
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.ingest import GroupTotals, hour_bucket
from neruba.domain.numbers import number_problem
from neruba.domain.usage import CellUsage, merge_cells, usage_of
from neruba.timefmt import iso, parse_ts, ts

HISTORY_CAP = 20
JOURNAL_SHARDS = 16
JOURNAL_TTL = timedelta(days=14)
HOUR_LENGTH = len("2026-01-01T00")


class AggregateContentionError(Exception):
    """The aggregate kept changing under us; the batch is retried by SQS."""

    transient = True  # see dal.dynamo.is_transient


class AggregateOverflowError(ValueError):
    """Adding the batch would leave a sum DynamoDB cannot store exactly (38 digits, 1E-130..1E+126)."""


class CellWriteRefusedError(Exception):
    """DynamoDB refused a cell's transaction for a reason a retry cannot change (e.g. ValidationError)."""


# Cancellation reasons of a transaction that a retry cannot cure
_REFUSED = {"ValidationError", "ItemCollectionSizeLimitExceeded"}


def event_key(customer_id: str, transaction_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"EVT#{customer_id}#{transaction_id}"}, "sk": {"S": "#"}}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One outcome recorded for a copy received under an event's key (after the copy that wrote it)."""

    outcome: str
    request_id: str | None = None
    copy_id: str | None = None
    at: str | None = None
    reason: str | None = None  # why a copy failed
    payload: str | None = None  # a conflicting copy's code, timestamp and properties, as JSON text

    def stored(self) -> dict[str, Any]:
        """The entry as kept in the event's ``hist`` list."""
        entry = {"o": self.outcome, "rid": self.request_id, "cid": self.copy_id, "t": self.at}
        if self.reason is not None:
            entry["r"] = self.reason
        if self.payload is not None:
            entry["p"] = self.payload
        return entry

    @classmethod
    def from_stored(cls, entry: Mapping[str, Any]) -> HistoryEntry:
        return cls(str(entry["o"]), *(_text(entry.get(name)) for name in ("rid", "cid", "t", "r", "p")))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A raw event as stored under ``EVT#{customer}#{transaction_id}``: what the copy that wrote it
    carried, its status, the batch that holds it for counting, and the outcomes of later copies.

    ``first_outcome`` is ``replay`` for an event written over a failed one (None otherwise); ``copies``
    counts the later copies per outcome. Both are kept by :meth:`UsageRepository.mark_replay` and
    :meth:`UsageRepository.append_history`, not by the put that writes the event.
    """

    customer_id: str
    transaction_id: str
    meter_code: str
    timestamp: str
    hour: str
    properties_json: str  # the properties as JSON text
    status: str  # accepted | failed
    fingerprint: str | None = None
    client_timestamp: str | None = None
    batch: str | None = None
    copy_id: str | None = None
    request_id: str | None = None
    received_at: str | None = None
    written_at: str | None = None
    late: bool = False
    reason: str | None = None
    reason_message: str | None = None
    first_outcome: str | None = None
    history: tuple[HistoryEntry, ...] = ()
    copies: Mapping[str, int] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """The item a put writes (``None`` values are left out)."""
        return {
            "pk": f"EVT#{self.customer_id}#{self.transaction_id}",
            "sk": "#",
            **{name: getattr(self, field) for field, name in _EVENT_ATTRIBUTES},
            "late": self.late or None,
            "hist": [entry.stored() for entry in self.history],
        }

    @classmethod
    def from_stored(cls, item: Mapping[str, Any]) -> StoredEvent:
        """Read an event item, older ones included (no ``hist``, ``late`` or counters yet)."""
        required = {field: str(item[name]) for field, name in _EVENT_ATTRIBUTES[:_REQUIRED]}
        optional = {field: _text(item.get(name)) for field, name in _EVENT_ATTRIBUTES[_REQUIRED:]}
        return cls(
            **required,
            **cast("dict[str, Any]", optional),
            late=bool(item.get("late")),
            history=tuple(HistoryEntry.from_stored(entry) for entry in item.get("hist") or ()),
            copies={name[2:]: int(n) for name, n in item.items() if name.startswith("n_")},
        )


# StoredEvent's text fields and their attribute names: the first _REQUIRED always stored, the rest optional
_EVENT_ATTRIBUTES = (
    ("customer_id", "c"),
    ("transaction_id", "tx"),
    ("meter_code", "m"),
    ("timestamp", "ts"),
    ("hour", "h"),
    ("properties_json", "p"),
    ("status", "st"),
    ("fingerprint", "fp"),
    ("client_timestamp", "tsc"),
    ("batch", "bk"),
    ("copy_id", "cid"),
    ("request_id", "rid"),
    ("received_at", "rt"),
    ("written_at", "at"),
    ("reason", "reason"),
    ("reason_message", "reason_msg"),
    ("first_outcome", "o0"),
)
_REQUIRED = 7


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one batch counted in one cell of an hour: a contribution, or a slice an older version wrote
    (``legacy``)."""

    group: str
    batch: str
    legacy: bool
    transaction_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredCell:
    """One (hour, group) cell as read: its aggregate (if any) and the contributions not folded into it,
    merged. ``base`` is the aggregate as read, to hand back to :meth:`UsageRepository.replace_aggregate`;
    ``sources`` names the stored items merged."""

    hour: str
    group: str
    usage: CellUsage
    base: Mapping[str, Any] | None
    sources: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """The outcome counters of one minute (``2026-01-31T12:05``)."""

    minute: str
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a customer's counted events (:meth:`UsageRepository.list_events`)."""

    events: tuple[StoredEvent, ...]
    next_cursor: str | None


# where an event sits in the list: (hour, meter, contribution sort key, index among its sorted ids)
_Position = tuple[str, str, str, int]
_CONTRIBUTIONS_PER_QUERY = (4, 8, 16, 32)  # a meter's first Query reads 4 contributions, then more
_EVENT_CURSOR_KEYS = frozenset({"m", "sk", "i"})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class GroupRef:
    """One (customer, meter, hour, group) cell of usage."""

    customer_id: str
    meter_code: str
    hour: str
    group: str = ""

    @property
    def aggregate_key(self) -> dict[str, Any]:
        return {
            "pk": {"S": f"AGG#{self.customer_id}#{self.meter_code}"},
            "sk": {"S": f"{self.hour}#{self.group}"},
        }

    def slice_key(self, batch: str) -> dict[str, Any]:
        """The key of a batch's contribution to this cell (its existence proves the batch counted)."""
        return {
            "pk": {"S": f"USE#{self.customer_id}#{self.meter_code}"},
            "sk": {"S": f"{self.hour}#{self.group}#{batch}"},
        }


def _legacy_slice_key(key: dict[str, Any]) -> tuple[str, str]:
    """The ``SL#`` slice an older version wrote for the same (cell, batch) as this contribution key."""
    pk, sk = key["pk"]["S"], key["sk"]["S"]
    return "SL#" + pk.removeprefix("USE#") + "#" + sk[:HOUR_LENGTH], sk[HOUR_LENGTH + 1 :]


@dataclass(slots=True)
class PutOutcome:
    """What the conditional put of an event found."""

    written: bool
    old: StoredEvent | None


@dataclass(slots=True)
class Recount:
    """An accepted event a crashed attempt never counted: move it from ``old_batch`` to this batch."""

    customer_id: str
    transaction_id: str
    old_batch: str


@dataclass(slots=True)
class GroupWrite:
    """What one batch adds to one group, and the uncounted events it adopts."""

    ref: GroupRef
    aggregation: str
    totals: GroupTotals
    late: bool = False
    recounts: list[Recount] = field(default_factory=list)


MAX_RECOUNTS_PER_TRANSACTION = 45  # 2 actions each, plus the slice and the aggregate: under the 100 limit


class GroupWrites:
    """Accumulates a batch's events per group, splitting groups whose adopted events would overflow one
    transaction into parts named ``{batch}~{n}``.

    Example:
        >>> writes = GroupWrites("b1")
        >>> writes.add(GroupRef("acme", "calls", "2026-01-01T00"), "count", "t1", "2026-01-01T00:00:00", None)
        >>> [(batch, w.totals.count) for batch, w in writes.parts()]
        [('b1', 1)]
    """

    def __init__(self, batch: str) -> None:
        self.batch = batch
        self._parts: dict[tuple[GroupRef, int], GroupWrite] = {}
        self._current: dict[GroupRef, int] = {}

    def add(
        self,
        ref: GroupRef,
        aggregation: str,
        transaction_id: str,
        at: str,
        value: Any,
        *,
        late: bool = False,
        recount: Recount | None = None,
    ) -> str:
        """Fold one event in; returns the batch id of the part it landed in."""
        # events this batch wrote always land in part 0 (their bk is the batch); only adopted ones spill over
        part = self._current.get(ref, 0) if recount is not None else 0
        write = self._parts.get((ref, part))
        if recount is not None and write is not None and len(write.recounts) >= MAX_RECOUNTS_PER_TRANSACTION:
            part = max(p for r, p in self._parts if r == ref) + 1
            self._current[ref] = part
            write = None
        if write is None:
            write = self._parts[(ref, part)] = GroupWrite(ref, aggregation, GroupTotals())
        write.totals.add(transaction_id, aggregation, at, value)
        write.late = write.late or late
        if recount is not None:
            write.recounts.append(recount)
        return self.batch_of(part)

    def batch_of(self, part: int) -> str:
        return self.batch if part == 0 else f"{self.batch}~{part}"

    def parts(self) -> list[tuple[str, GroupWrite]]:
        return [(self.batch_of(part), write) for (_, part), write in self._parts.items()]


class UsageRepository:
    """Reads and writes of the usage table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------------ journal
    def write_journal(self, batch: str, keys: Sequence[tuple[str, str]], now: datetime) -> None:
        """Record the batch's event keys before any event is written (idempotent)."""
        packed = zlib.compress("\n".join(f"{c}\x1f{t}" for c, t in keys).encode(), 6)
        shard = int(batch[:4], 16) % JOURNAL_SHARDS
        item = {
            "pk": f"JRN#{now.strftime('%Y-%m-%dT%H:%M')}#{shard:02d}",
            "sk": batch,
            "keys": packed,
            "ttl": int((now + JOURNAL_TTL).timestamp()),
        }
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    def journals(self, minute: datetime) -> Iterator[tuple[str, list[tuple[str, str]]]]:
        """Every journal written in one minute: ``(batch, [(customer, transaction_id)])``."""
        for shard in range(JOURNAL_SHARDS):
            pk = f"JRN#{minute.strftime('%Y-%m-%dT%H:%M')}#{shard:02d}"
            for item in self._query(pk):
                text = zlib.decompress(bytes(item["keys"])).decode()
                keys = [tuple(line.split("\x1f", 1)) for line in text.split("\n") if line]
                yield str(item["sk"]), keys  # type: ignore[misc]

    # ------------------------------------------------------------------ events
    def put_event(self, event: StoredEvent, *, replace_failed: bool = True) -> PutOutcome:
        """Write an event unless one has its key (a ``failed`` one may be replaced); returns the old one."""
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if replace_failed:
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR st = :failed",
                "ExpressionAttributeValues": {":failed": {"S": "failed"}},
            }
        try:
            response = client("dynamodb").put_item(
                TableName=self.table_name,
                Item=to_item(event.stored()),
                **condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item")
            return PutOutcome(written=False, old=_event_of(old))
        return PutOutcome(written=True, old=_event_of(response.get("Attributes")))

    def append_history(self, customer_id: str, transaction_id: str, entry: HistoryEntry) -> None:
        """Add an outcome to an event's history (capped; the counter always moves)."""
        key = event_key(customer_id, transaction_id)
        counter = "n_" + entry.outcome
        names = {"#n": counter}
        values = {
            ":e": to_value([entry.stored()]),
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":cap": {"N": str(HISTORY_CAP)},
        }
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET hist = list_append(hist, :e), #n = if_not_exists(#n, :zero) + :one",
                ConditionExpression="attribute_exists(pk) AND size(hist) < :cap",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="SET #n = if_not_exists(#n, :zero) + :one",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
            )

    def mark_replay(self, customer_id: str, transaction_id: str, earlier: Sequence[HistoryEntry]) -> None:
        """Mark an event written over a failed one as a replay, keeping the failed copies' history."""
        kept = [entry.stored() for entry in earlier[-HISTORY_CAP:]]
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=event_key(customer_id, transaction_id),
            UpdateExpression="SET o0 = :replay, hist = list_append(:earlier, hist)",
            ExpressionAttributeValues=to_item({":replay": "replay", ":earlier": kept}),
        )

    def get_event(self, customer_id: str, transaction_id: str) -> StoredEvent | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=event_key(customer_id, transaction_id), ConsistentRead=True
        )
        return _event_of(response.get("Item"))

    def get_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
        """Many events by (customer, transaction_id), 100 per BatchGetItem."""
        found = (StoredEvent.from_stored(i) for i in self._batch_get([event_key(c, t) for c, t in keys]))
        return {(event.customer_id, event.transaction_id): event for event in found}

    def counted(self, cells: Iterable[tuple[GroupRef, str]]) -> set[tuple[GroupRef, str]]:
        """Which of these (cell, batch) pairs were counted: the batch's contribution to the cell exists, or
        the ``SL#`` slice an older version wrote for them."""
        wanted = {
            (k["pk"]["S"], k["sk"]["S"]): (ref, batch) for ref, batch in cells for k in [ref.slice_key(batch)]
        }
        found = self._existing_slices([ref.slice_key(batch) for ref, batch in wanted.values()])
        return {wanted[pair] for pair in found if pair in wanted}

    def _existing_slices(self, keys: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
        """Which of these contribution keys exist, as (pk, sk) pairs; the ``SL#`` slice an older version
        wrote for the same cell and batch counts as existing too."""
        legacy = {_legacy_slice_key(k): (k["pk"]["S"], k["sk"]["S"]) for k in keys}
        wanted = list(keys) + [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in legacy]
        found = {(str(i["pk"]), str(i["sk"])) for i in self._batch_get(wanted, projection="pk, sk")}
        return {legacy.get(pair, pair) for pair in found}

    # ------------------------------------------------------------------ counting
    def count_group(self, batch: str, write: GroupWrite, now: datetime) -> bool:
        """Count one batch's events of one cell exactly once; False if this batch already counted them.

        The contribution item (the batch's count, sum, max, latest and unique values for the cell) is put on
        condition that it does not exist: that one conditional put is the count. When the write adopts
        events an earlier attempt left uncounted, it is a transaction that also checks each old
        contribution never appeared and moves each event's ``bk`` to ``batch``.
        """
        ref, totals = write.ref, write.totals
        if number_problem(totals.total):
            raise AggregateOverflowError(f"the batch total {totals.total} is not storable")
        item = {**ref.slice_key(batch), **to_item(_contribution(write, now))}
        if not write.recounts:
            try:
                client("dynamodb").put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            except Exception as exc:
                if is_condition_failure(exc):
                    return False  # this batch's contribution exists: counted by an earlier attempt
                raise
            return True
        for attempt in range(6):
            unit = Transaction().add(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                name="contribution",
            )
            # one check per old contribution: an item may appear once in a transaction
            for old_batch in dict.fromkeys(r.old_batch for r in write.recounts):
                unit.add(
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": ref.slice_key(old_batch),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    name="adopted",
                )
            for recount in write.recounts:
                unit.add(
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": event_key(recount.customer_id, recount.transaction_id),
                            "UpdateExpression": "SET bk = :new",
                            "ConditionExpression": "bk = :old",
                            "ExpressionAttributeValues": {
                                ":new": {"S": batch},
                                ":old": {"S": recount.old_batch},
                            },
                        }
                    },
                    name="adopted",
                )
            try:
                unit.commit()
                return True
            except Cancelled as exc:
                if exc.failed("contribution"):
                    return False  # this batch's contribution exists: counted by an earlier attempt
                if exc.failed("adopted"):
                    raise AggregateContentionError("an adopted event was counted meanwhile") from exc
                if _REFUSED.intersection(map(str, exc.reasons)):
                    raise CellWriteRefusedError(f"cell {ref}: {exc.reasons}") from exc
                time.sleep(0.02 * (2**attempt))  # a transaction conflict: try again
        raise AggregateContentionError(f"cell {ref} kept conflicting")

    def add_outcomes(self, counts: dict[str, dict[str, int]]) -> None:
        """Add outcome counts per minute (``{"2026-01-31T12:05": {"accepted": 3}}``)."""
        for minute, by_outcome in counts.items():
            if not by_outcome:
                continue
            names = {f"#o{i}": name for i, name in enumerate(by_outcome)}
            values = {f":v{i}": {"N": str(n)} for i, n in enumerate(by_outcome.values())}
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"OUT#{minute[:10]}"}, "sk": {"S": minute}},
                UpdateExpression="ADD " + ", ".join(f"#o{i} :v{i}" for i in range(len(by_outcome))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    # ------------------------------------------------------------------ reads
    def outcomes(self, start: datetime, end: datetime) -> list[OutcomeCounts]:
        """Outcome counters per minute in [start, end)."""
        rows: list[OutcomeCounts] = []
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        lo, hi = start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")
        while day < end:
            for item in self._query(f"OUT#{day.strftime('%Y-%m-%d')}", between=(lo, hi)):
                if str(item["sk"]) < hi:
                    counts = {name: int(n) for name, n in item.items() if name not in ("pk", "sk")}
                    rows.append(OutcomeCounts(str(item["sk"]), counts))
            day += timedelta(days=1)
        return rows

    def aggregates(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[StoredCell]:
        """The usage of one customer and meter per (hour, group) cell for hours in [first_hour, last_hour].

        Each cell is its aggregate item (written by a repair or an older version) plus the contributions
        of the batches the aggregate has not folded in, merged (``domain.usage.merge_cells``).
        """
        between = (first_hour, last_hour + "#\uffff")
        cells: dict[str, list[dict[str, Any]]] = {}
        bases: dict[str, dict[str, Any]] = {}
        for item in self._query(f"AGG#{customer_id}#{meter_code}", between=between):
            bases[str(item["sk"])] = item
            cells.setdefault(str(item["sk"]), []).append(item)
        for item in self._query(f"USE#{customer_id}#{meter_code}", between=between):
            cell, _, batch = str(item["sk"]).rpartition("#")
            if batch in (bases.get(cell) or {}).get("fb", ()):
                continue  # folded into the aggregate by a repair
            cells.setdefault(cell, []).append(item)
        merged = []
        for cell, items in sorted(cells.items()):
            hour, _, group = cell.partition("#")
            usage = merge_cells(_cell_usage(i) for i in items)
            sources = tuple((str(i["pk"]), str(i["sk"])) for i in items)
            merged.append(StoredCell(hour, group, usage, bases.get(cell), sources))
        return merged

    def slices(self, customer_id: str, meter_code: str, hour: str) -> list[Contribution]:
        """The contributions (and older ``SL#`` slices) of one customer, meter and hour."""
        found = []
        for item in self._query(f"SL#{customer_id}#{meter_code}#{hour}"):
            group, _, batch = str(item["sk"]).rpartition("#")
            found.append(Contribution(group, batch, True, tuple(str(t) for t in item.get("tx", ()))))
        for item in self._query(f"USE#{customer_id}#{meter_code}", between=(hour + "#", hour + "#\uffff")):
            group, _, batch = str(item["sk"])[HOUR_LENGTH + 1 :].rpartition("#")
            found.append(Contribution(group, batch, False, tuple(str(t) for t in item.get("tx", ()))))
        return found

    def list_events(
        self,
        customer_id: str,
        meter_codes: Sequence[str],
        start: datetime,
        end: datetime,
        limit: int,
        cursor: str | None = None,
    ) -> EventPage:
        """One page of the customer's counted events on these meters whose timestamp is in [start, end).

        Read from what counting stores, with no index: each contribution lists the transaction ids it
        counted, so the page is the contributions of the hours of [start, end) (one Query per meter,
        lazily, in sort-key order, in growing steps), merged across meters by (hour, meter), then the
        events themselves (``BatchGetItem``, strongly consistent), whose exact timestamps decide the first
        and last hour.
        Order: by the hour of the event's timestamp, then meter code, then the contribution and the
        transaction id within it; each counted event comes exactly once across the pages. Events not
        counted (parked ``failed``, or accepted and not counted yet) are not listed. Raises
        :class:`InvalidCursorError` for a cursor of another query.
        """
        first, last = hour_bucket(start), hour_bucket(end - timedelta(microseconds=1))
        meters = sorted(set(meter_codes))
        query = {
            "list": "events",
            "customer": customer_id,
            "meters": meters,
            "from": ts(start),
            "to": ts(end),
        }
        query["order"] = "hour"
        after = self._event_position(cursor, query, meters, first, last) if cursor else None
        streams = [self._cells_from(customer_id, meter, first, last, after) for meter in meters]
        candidates = (
            ((hour, meter, sk, i), tx)
            for hour, meter, sk, ids in heapq.merge(*streams)
            for i, tx in enumerate(ids)
            if after is None or (hour, meter, sk, i) > after
        )
        found: list[tuple[_Position, StoredEvent]] = []
        while len(found) <= limit:
            chunk = list(itertools.islice(candidates, limit + 1 - len(found)))
            if not chunk:
                break
            events = self.get_events((customer_id, tx) for _, tx in chunk)
            for position, tx in chunk:
                event = events.get((customer_id, tx))
                if event is not None and start <= parse_ts(event.timestamp) < end:
                    found.append((position, event))
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            _, meter, sk, i = page[-1][0]
            next_cursor = encode_cursor({"m": {"S": meter}, "sk": {"S": sk}, "i": {"S": str(i)}}, query)
        return EventPage(tuple(event for _, event in page), next_cursor)

    @staticmethod
    def _event_position(
        cursor: str, query: Mapping[str, Any], meters: Sequence[str], first: str, last: str
    ) -> _Position:
        def agrees(key: dict[str, str]) -> bool:
            hour = key["sk"][:HOUR_LENGTH]
            return key["m"] in meters and key["i"].isdigit() and first <= hour <= last

        key = decode_cursor(cursor, query, keys=_EVENT_CURSOR_KEYS, agrees=agrees)
        sk = str(key["sk"]["S"])
        return sk[:HOUR_LENGTH], str(key["m"]["S"]), sk, int(key["i"]["S"])

    def _cells_from(
        self, customer_id: str, meter: str, first: str, last: str, after: _Position | None
    ) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
        """The contributions of one meter for hours [first, last] at or after the position ``after``,
        in sort-key order, as (hour, meter, sort key, sorted transaction ids); read lazily, eventually
        consistent, 4 contributions by the first Query, then 8, 16 and 32 by each next one."""
        low = first
        if after is not None:
            hour, at_meter, sk, _ = after
            low = max(low, sk if meter == at_meter else hour if meter > at_meter else hour + "#\uffff")
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item(
                {":pk": f"USE#{customer_id}#{meter}", ":lo": low, ":hi": last + "#\uffff"}
            ),
            "ProjectionExpression": "sk, tx",
        }
        for step in itertools.count():
            request["Limit"] = _CONTRIBUTIONS_PER_QUERY[min(step, len(_CONTRIBUTIONS_PER_QUERY) - 1)]
            response = client("dynamodb").query(**request)
            for item in map(from_item, response.get("Items", [])):
                sk = str(item["sk"])
                yield sk[:HOUR_LENGTH], meter, sk, tuple(sorted(str(t) for t in item.get("tx") or ()))
            if not response.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def park_uncounted(
        self, customer_id: str, transaction_id: str, batch: str, reason: str, message: str
    ) -> bool:
        """Turn an accepted event that was never counted (still held by ``batch``) into a ``failed`` one."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=event_key(customer_id, transaction_id),
                UpdateExpression="SET st = :failed, reason = :r, reason_msg = :m",
                ConditionExpression="st = :accepted AND bk = :bk",
                ExpressionAttributeValues=to_item(
                    {":failed": "failed", ":accepted": "accepted", ":bk": batch, ":r": reason, ":m": message}
                ),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def replace_aggregate(
        self,
        ref: GroupRef,
        usage: CellUsage,
        repaired_at: str,
        expected: Mapping[str, Any] | None,
        folded: Iterable[str] = (),
    ) -> bool:
        """Write the true usage of one cell (the sweep's drift repair) as its aggregate item, folding in the
        contributions of the ``folded`` batches, unless the aggregate changed since ``expected`` (the
        cell's ``base`` as read, None when there was none) was read."""
        values = {**_cell_item(usage), "updated_at": repaired_at, "repaired": True}
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            same = {name: expected.get(name) for name in ("n", "updated_at")}
            condition = {
                "ConditionExpression": " AND ".join(
                    f"{name} = :{name}" if value is not None else f"attribute_not_exists({name})"
                    for name, value in same.items()
                ),
            }
            if any(value is not None for value in same.values()):
                condition["ExpressionAttributeValues"] = to_item(
                    {f":{name}": value for name, value in same.items() if value is not None}
                )
        batches = set(folded) | set((expected or {}).get("fb") or ())
        if batches:
            values = {**values, "fb": batches}
        try:
            client("dynamodb").put_item(
                TableName=self.table_name, Item={**ref.aggregate_key, **to_item(values)}, **condition
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _query(self, pk: str, between: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk" + (" AND sk BETWEEN :lo AND :hi" if between else ""),
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if between:
            kwargs["ExpressionAttributeValues"].update({":lo": {"S": between[0]}, ":hi": {"S": between[1]}})
        items: list[dict[str, Any]] = []
        for page in client("dynamodb").get_paginator("query").paginate(**kwargs):
            items.extend(from_item(i) for i in page.get("Items", []))
        return items

    def _batch_get(self, keys: list[dict[str, Any]], projection: str | None = None) -> list[dict[str, Any]]:
        unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in keys}.values())
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {"Keys": unique[start : start + 100], "ConsistentRead": True}
            if projection:
                request["ProjectionExpression"] = projection
            pending: dict[str, Any] = {self.table_name: request}
            for attempt in range(8):
                response = client("dynamodb").batch_get_item(RequestItems=pending)
                found.extend(from_item(i) for i in response["Responses"].get(self.table_name, []))
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(0.05 * (2**attempt))
            if pending:
                raise RuntimeError("usage read throttled: unprocessed keys remain")
        return found


def _event_of(item: Mapping[str, Any] | None) -> StoredEvent | None:
    """An event from a low-level item (as DynamoDB returns it), or None."""
    return StoredEvent.from_stored(from_item(item)) if item else None


def _contribution(write: GroupWrite, now: datetime) -> dict[str, Any]:
    """What one batch adds to one cell, as stored in its contribution item."""
    totals = write.totals
    late = totals.count if write.late else 0
    usage = replace(usage_of(write.aggregation, totals), late_count=late)
    return {"tx": totals.transaction_ids, **_cell_item(usage), "at": iso(now)}


def _cell_item(usage: CellUsage) -> dict[str, Any]:
    """A cell's usage as stored: ``n``, ``agg``, then ``s`` (sum), ``mx`` (max), ``lt``/``lv`` (latest) or
    ``u`` (unique values) where set, and ``late_n`` when some events came late."""
    item: dict[str, Any] = {"n": usage.count, "agg": usage.aggregation}
    if usage.total is not None:
        item["s"] = usage.total
    if usage.maximum is not None:
        item["mx"] = usage.maximum
    if usage.latest_at is not None:
        item["lt"], item["lv"] = usage.latest_at, usage.latest
    if usage.uniques:
        item["u"] = set(usage.uniques)
    if usage.late_count:
        item["late_n"] = usage.late_count
    return item


def _cell_usage(item: Mapping[str, Any]) -> CellUsage:
    """The usage of a stored aggregate, contribution or older slice."""
    return CellUsage(
        count=int(item.get("n", 0)),
        total=Decimal(item["s"]) if item.get("s") is not None else None,
        maximum=Decimal(item["mx"]) if item.get("mx") is not None else None,
        latest_at=_text(item.get("lt")),
        latest=Decimal(item["lv"]) if item.get("lv") is not None else None,
        uniques=frozenset(str(v) for v in item.get("u") or ()),
        late_count=int(item.get("late_n", 0)),
        aggregation=str(item["agg"]) if item.get("agg") else None,
    )
