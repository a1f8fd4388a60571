"""The usage table: raw events, batch journals, contributions, aggregates and outcome counters.

Items (``pk`` / ``sk``):

- event      ``EVT#{customer}#{transaction_id}`` / ``#`` - the raw event; the conditional put on this key
  is the idempotency check (no separate idempotency record). ``st`` is accepted or failed, ``bk`` the
  batch that counted it, ``cid`` the copy (request id + index) that wrote it, ``hist`` its outcomes.
- journal    ``JRN#{minute}#{shard}`` / ``{batch}`` - written first for every batch: the compressed list of
  the batch's event keys, so a sweep can find events a crashed worker wrote but never counted (TTL 14 d).
- contribution ``AGG#{customer}#{meter}[#{shard}]`` / ``{day}!{batch}`` - every cell (hour, group) one
  batch counted for one customer's meter on one day, with the transaction ids of each. Its conditional
  put is the count and the proof that the batch counted (``dal/contributions.py`` has the stored shape).
- aggregate  ``AGG#{customer}#{meter}`` / ``{hour}#{group}`` - a cell's usage written by the sweep's repair
  (or by earlier versions), with the batches whose contributions it folds in (``fb``).
- earlier layouts: ``USE#{customer}#{meter}`` / ``{hour}#{group}#{batch}`` (one contribution per cell,
  moved by migration 0004) and ``SL#{customer}#{meter}#{hour}`` / ``{group}#{batch}`` slices; read only to
  never count those batches again.
- outcomes   ``OUT#{day}[#{shard}]`` / ``{minute}#{attempt}`` - one worker attempt's counts per outcome,
  written once (``dal/outcomes.py``; ``{minute}`` holds the counters earlier versions added to; a sharded
  deployment spreads them by batch, as the contributions).

Readers get a cell as its aggregate plus the contributions' cells not folded into it, merged exactly; see
docs/architecture.md for why each count is exactly once and the write-unit budget.
"""

from __future__ import annotations

import heapq
import itertools
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from neruba.dal.clients import client
from neruba.dal.contributions import (
    CONTRIBUTION_MARK,
    DAY_LENGTH,
    HOUR_LENGTH,
    DayWrite,
    GroupRef,
    GroupWrite,
    GroupWrites,
    Recount,
    cell_item,
    cell_of,
    cell_usage,
    contribution_item,
    contribution_key,
    is_contribution,
    partition,
    shard_of,
)
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import batch_get, from_item, is_condition_failure, query_items, to_item, to_value
from neruba.dal.levels import Around, LevelsRepository, among, closing_of, is_level, level_sk
from neruba.dal.outcomes import (
    counts_put,
    minute_of_item,
    moved_by_set,
    moved_by_value,
    put_once,
)
from neruba.dal.outcomes import (
    partition as outcomes_partition,
)
from neruba.dal.pending import PendingDay, PendingUsage, minute_of, not_folded
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.ingest import hour_bucket
from neruba.domain.levels import BEGINNING, ClosingLevel
from neruba.domain.numbers import number_problem
from neruba.domain.usage import CellUsage, merge_cells
from neruba.timefmt import parse_ts, ts

__all__ = ["DayWrite", "GroupRef", "GroupWrite", "GroupWrites", "Recount"]

HISTORY_CAP = 20
JOURNAL_SHARDS = 16
JOURNAL_TTL = timedelta(days=14)


class AggregateContentionError(Exception):
    """The aggregate kept changing under us; the batch is retried by SQS."""

    transient = True  # see dal.dynamo.is_transient


class AggregateOverflowError(ValueError):
    """Adding the batch would leave a sum DynamoDB cannot store exactly (38 digits, 1E-130..1E+126)."""


class ExtraConditionError(Exception):
    """An action added to a batch's contribution transaction failed its condition (its name is args[0])."""


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
    batch: str | None = None  # the batch of the worker attempt that recorded it (its start is ``at``)

    @property
    def attempt(self) -> str | None:
        """The worker attempt that recorded it, whose outcome counters count it (``dal/outcomes.py``)."""
        return f"{self.batch}@{self.at}" if self.batch is not None and self.at is not None else None

    def stored(self) -> dict[str, Any]:
        """The entry as kept in the event's ``hist`` list."""
        entry = {"o": self.outcome, "rid": self.request_id, "cid": self.copy_id, "t": self.at}
        if self.reason is not None:
            entry["r"] = self.reason
        if self.payload is not None:
            entry["p"] = self.payload
        if self.batch is not None:
            entry["a"] = self.batch
        return entry

    @classmethod
    def from_stored(cls, entry: Mapping[str, Any]) -> HistoryEntry:
        return cls(str(entry["o"]), *(_text(entry.get(name)) for name in ("rid", "cid", "t", "r", "p", "a")))


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
    status: str  # accepted | failed | over_limit | voided
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
    released_by: str | None = None  # the batch that gave the event back uncounted (equal to ``batch``)
    void_json: str | None = None  # a voided event's void record (reason, ticket, when, by, amended_by), JSON
    amends: str | None = None  # a corrected copy: the transaction id of the event it amends
    restored_json: str | None = None  # a restored event's restore record (backfill, reason, the void undone)
    stamped: str | None = None  # "1": ``batch`` and ``written_at`` name the attempt that recorded it (``oa``)
    original_batch: str | None = None  # the batch that wrote it, once another adopted it (``ob``)
    moved_by: str | None = None  # the attempt that refused or parked it after it was accepted (``mv``)
    history: tuple[HistoryEntry, ...] = ()

    @property
    def attempt(self) -> str | None:
        """The worker attempt that recorded the stored copy's outcome (``dal/outcomes.py``); None for an
        event written before attempts were named (its outcome was counted by that version)."""
        batch = self.original_batch or self.batch
        if not self.stamped or batch is None or self.written_at is None:
            return None
        return f"{batch}@{self.written_at}"

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
    ("released_by", "rl"),
    ("void_json", "vd"),
    ("amends", "amd"),
    ("restored_json", "rs"),
    ("stamped", "oa"),
    ("original_batch", "ob"),
    ("moved_by", "mv"),
)
_REQUIRED = 7


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one batch counted in one cell (``hour``, ``group``): a contribution's cell, or a slice an older
    version wrote (``legacy``)."""

    group: str
    batch: str
    legacy: bool
    transaction_ids: tuple[str, ...]
    hour: str = ""
    pending: bool = False  # a pending day not folded yet (``dal/pending.py``)


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
_EVENT_CURSOR_KEYS = frozenset({"m", "sk", "i"})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(slots=True)
class PutOutcome:
    """What the conditional put of an event found."""

    written: bool
    old: StoredEvent | None


class UsageRepository:
    """Reads and writes of the usage table."""

    def __init__(self, table_name: str, shards: int | None = None) -> None:
        self.table_name = table_name
        if shards is None:
            from neruba.settings import get_settings

            shards = get_settings().usage_shards
        self.shards = shards
        self.pending = PendingUsage(table_name)

    # ------------------------------------------------------------------ journal
    @property
    def levels(self) -> LevelsRepository:
        """The closing levels of the meters, kept in this table (``dal.levels``)."""
        return LevelsRepository(self.table_name)

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
        found = (
            StoredEvent.from_stored(i) for i in batch_get(self.table_name, [event_key(c, t) for c, t in keys])
        )
        return {(event.customer_id, event.transaction_id): event for event in found}

    def counted(
        self,
        cells: Iterable[tuple[GroupRef, str]],
        minutes: Mapping[tuple[GroupRef, str], Iterable[str]] | None = None,
    ) -> set[tuple[GroupRef, str]]:
        """Which of these (cell, batch) pairs were counted: the batch's contribution for the cell's day
        (in any shard) holds the cell, the batch's pending item of one of ``minutes[(cell, batch)]`` (when
        its events were written, their ``at``) holds it, or an earlier layout's item for the cell and batch
        exists (``USE#`` contribution, ``SL#`` slice)."""
        wanted = set(cells)
        minutes = minutes or {}
        keys: list[dict[str, Any]] = []
        for ref, batch in wanted:
            day = (ref.customer_id, ref.meter_code, ref.day)
            keys += [contribution_key(*day, batch, shard) for shard in range(self.shards)]
            keys += [ref.slice_key(batch), ref.legacy_slice_key(batch)]
        found: dict[tuple[str, str], Mapping[str, Any]] = {
            (str(i["pk"]), str(i["sk"])): i for i in batch_get(self.table_name, keys, projection="pk, sk, cs")
        }
        counted = set()
        for ref, batch in wanted:
            day = (ref.customer_id, ref.meter_code, ref.day)
            for shard in range(self.shards):
                key = contribution_key(*day, batch, shard)
                item = found.get((key["pk"]["S"], key["sk"]["S"]))
                if item is not None and ref.cell in (item.get("cs") or {}):
                    counted.add((ref, batch))
            for key in (ref.slice_key(batch), ref.legacy_slice_key(batch)):
                if (key["pk"]["S"], key["sk"]["S"]) in found:
                    counted.add((ref, batch))
        asked = {
            (ref.customer_id, ref.meter_code, ref.day, ref.cell, batch, minute_of(at)): (ref, batch)
            for ref, batch in wanted - counted
            for at in minutes.get((ref, batch), ())
        }
        counted |= {asked[held] for held in self.pending.holding(asked)}
        return counted

    # ------------------------------------------------------------------ counting
    def contribution_exists(self, batch: str, write: DayWrite) -> bool:
        """Whether ``batch`` wrote its contribution for ``write``'s customer, meter and day (read
        consistently)."""
        key = contribution_key(
            write.customer_id, write.meter_code, write.day, batch, shard_of(batch, self.shards)
        )
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=key, ConsistentRead=True, ProjectionExpression="pk"
        )
        return "Item" in response

    def contribution_put(self, batch: str, write: DayWrite, now: datetime) -> dict[str, Any]:
        """The conditional Put of ``write`` as ``batch``'s contribution (raises
        ``AggregateOverflowError`` when a figure of it is not storable)."""
        for cell in write.cells.values():
            totals = cell.totals
            for figure in (totals.total, totals.weighted, *totals.event_sums.values()):
                if number_problem(figure):
                    raise AggregateOverflowError(f"the batch figure {figure} is not storable")
        shard = shard_of(batch, self.shards)
        key = contribution_key(write.customer_id, write.meter_code, write.day, batch, shard)
        item = {**key, **to_item(contribution_item(write, now))}
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def count_group(
        self, batch: str, write: DayWrite, now: datetime, extra: Sequence[tuple[str, dict[str, Any]]] = ()
    ) -> bool:
        """Count one batch's events of one customer's meter on one day exactly once; False if this batch
        already counted them.

        The contribution item (every cell's count, sum, max, latest, unique values and transaction ids) is
        put on condition that it does not exist: that one conditional put is the count. When the write
        adopts events an earlier attempt left uncounted, it is a transaction that also checks that each old
        contribution (in every shard) and the old batch's pending item never came to hold those events'
        cells and moves each event's ``bk`` to ``batch``; with ``write.checks`` (pending items of this
        batch that may hold the day: an earlier attempt's, or a put that failed), it checks that they do
        not, and counts nothing if one does. ``extra`` (name, action) pairs commit in the same transaction
        (the usage limits' period counter); a failed condition of one raises ``ExtraConditionError``.
        """
        item = self.contribution_put(batch, write, now)["Put"]["Item"]
        if not write.recounts and not write.checks and not extra:
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
            for check in self._adoption_checks(write):
                unit.add({"ConditionCheck": check}, name="adopted")
            day_cells = [ref.cell for ref in write.cells]
            for minute in sorted(write.checks):
                unit.add({"ConditionCheck": self.pending.check(write, batch, minute, day_cells)}, name="own")
            for name, action in extra:
                unit.add(action, name=name)
            for recount in write.recounts:
                unit.add(
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": event_key(recount.customer_id, recount.transaction_id),
                            "UpdateExpression": "SET bk = :new, ob = if_not_exists(ob, :old)",
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
                if exc.failed("contribution") or exc.failed("own"):
                    return False  # this batch's contribution or pending item exists: counted earlier
                if exc.failed("adopted"):
                    raise AggregateContentionError("an adopted event was counted meanwhile") from exc
                for name, _action in extra:
                    if exc.failed(name):
                        raise ExtraConditionError(name) from exc
                if _REFUSED.intersection(map(str, exc.reasons)):
                    raise CellWriteRefusedError(f"cells of {write.key}: {exc.reasons}") from exc
                time.sleep(0.02 * (2**attempt))  # a transaction conflict: try again
        raise AggregateContentionError(f"cells of {write.key} kept conflicting")

    def _adoption_checks(self, write: DayWrite) -> list[dict[str, Any]]:
        """One condition per old batch and shard (an item may appear once in a transaction): the old
        batch's contribution does not hold any cell of the events moved from it."""
        cells: dict[str, set[str]] = {}
        pending: dict[tuple[str, str], set[str]] = {}
        for ref, cell in write.cells.items():
            for recount in cell.recounts:
                cells.setdefault(recount.old_batch, set()).add(ref.cell)
                if recount.old_minute:
                    pending.setdefault((recount.old_batch, recount.old_minute), set()).add(ref.cell)
        checks = [self.pending.check(write, b, m, held) for (b, m), held in sorted(pending.items())]
        for old_batch, held in cells.items():
            names = {f"#c{i}": cell for i, cell in enumerate(sorted(held))}
            condition = " AND ".join(f"attribute_not_exists(cs.{name})" for name in names)
            for shard in range(self.shards):
                key = contribution_key(write.customer_id, write.meter_code, write.day, old_batch, shard)
                checks.append(
                    {
                        "TableName": self.table_name,
                        "Key": key,
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                    }
                )
        return checks

    def add_outcomes(
        self, counts: Mapping[str, int], attempt: str, extra: Sequence[dict[str, Any]] = ()
    ) -> bool:
        """Record the outcome counts of one worker attempt (``{"accepted": 3}``) as its one counts item,
        in the minute and shard of the attempt (``dal/outcomes.py``); ``extra`` actions (a webhook event)
        commit in one transaction with it. False when the attempt's counts were recorded already."""
        put = counts_put(self.table_name, attempt, self.shards, counts)
        if extra:
            Transaction([{"Put": put}, *extra]).commit()
            return True
        return put_once(put)

    # ------------------------------------------------------------------ reads
    def outcomes(self, start: datetime, end: datetime) -> list[OutcomeCounts]:
        """Outcome counters per minute in [start, end), every shard's added up."""
        minutes: dict[str, dict[str, int]] = {}
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        lo, hi = _minute(start), _minute(end)
        while day < end:
            for shard in range(self.shards):
                for item in self._query(outcomes_partition(day.isoformat()[:10], shard), between=(lo, hi)):
                    if str(item["sk"]) < hi:
                        counts = minutes.setdefault(minute_of_item(str(item["sk"])), {})
                        for name, n in item.items():
                            if name not in ("pk", "sk"):
                                counts[name] = counts.get(name, 0) + int(n)
            if day.date() == date.max:
                break  # the calendar's last day read
            day += timedelta(days=1)
        return [OutcomeCounts(minute, counts) for minute, counts in sorted(minutes.items())]

    def aggregates(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[StoredCell]:
        """The usage of one customer and meter per (hour, group) cell for hours in [first_hour, last_hour].

        Each cell is its aggregate item (written by a repair or an older version) plus the cells of the
        contributions of the batches the aggregate has not folded in, merged (``domain.usage.merge_cells``).
        One Query per shard (one in an unsharded deployment) reads both kinds of item.
        """
        return _stored_cells(
            self._usage_items(customer_id, meter_code, first_hour, last_hour), first_hour, last_hour
        )

    def level_window(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str, end_hour: str
    ) -> tuple[str, list[StoredCell], Around]:
        """A level meter's window: ``(read_from, cells, levels)``, the cells of hours [read_from,
        last_hour] and the closing levels the window starts from and ends at (``dal.levels``).

        The window's usage Query (one per shard, as for :meth:`aggregates`) is widened just enough to
        hold the level at ``first_hour`` (keyed after the hour before it) and the one at ``end_hour``, so
        a window whose previous window was billed reads nothing more. Without a level at or before its
        first hour in that read, the usage partition is read on backwards to the last level (or to its
        first item): those items are the cells between that level and the window, so nothing is read
        twice. The pending days are read once, for every day up to the window's last."""
        lo = min(first_hour[:DAY_LENGTH] + CONTRIBUTION_MARK, level_sk(first_hour))
        hi = max(last_hour + "#\uffff", level_sk(end_hour))
        pending = self.pending.unfolded(
            customer_id, meter_code, BEGINNING[:DAY_LENGTH], last_hour[:DAY_LENGTH]
        )
        items = self._partitions(customer_id, meter_code, (lo, hi))
        found = among(items, first_hour, end_hour)
        if found.base is None:
            earlier, base = self._back_to_level(customer_id, meter_code, lo)
            found = Around(base, found.at_end)
            items = earlier + items
            if self.shards > 1:  # the other shards' items between that level's day and the window
                seen = {(str(i["pk"]), str(i["sk"])) for i in items}
                since = (base.hour if base else BEGINNING)[:DAY_LENGTH] + CONTRIBUTION_MARK
                more = self._partitions(customer_id, meter_code, (since, lo), first_shard=1)
                items += [i for i in more if (str(i["pk"]), str(i["sk"])) not in seen]
        read_from = found.base.hour if found.base else BEGINNING
        items += _pending_items(pending, items)
        return read_from, _stored_cells(items, read_from, last_hour), found

    def _back_to_level(
        self, customer_id: str, meter_code: str, below: str
    ) -> tuple[list[dict[str, Any]], ClosingLevel | None]:
        """The items of the usage partition (shard 0, where levels are kept) sorting below ``below``,
        newest first, down to the last closing level and the rest of its day (a day's contributions sort
        before its hours), or to the first item; and that level (None: there is none)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk < :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": partition(customer_id, meter_code)},
                ":hi": {"S": below},
            },
            "ConsistentRead": True,
            "ScanIndexForward": False,
        }
        found: list[dict[str, Any]] = []
        base: ClosingLevel | None = None
        floor = ""
        for item in query_items(kwargs):  # stops reading at the floor
            sk = str(item["sk"])
            if sk < floor:
                return found, base
            if base is None and is_level(sk):
                base = closing_of(item)
                floor = sk[:DAY_LENGTH] + CONTRIBUTION_MARK
            found.append(item)
        return found, base

    def last_cell_before(self, customer_id: str, meter_code: str, hour: str) -> StoredCell | None:
        """The last ungrouped cell of a meter in an hour before ``hour`` (its aggregate and the cells of
        the contributions it has not folded in, merged), None when there is none: what a ``latest`` meter
        with ``carry_over`` carries into a period.

        Reads each usage partition (every shard) and the previous layout's ``USE#`` partition backwards,
        page by page, only until that hour's day is whole: a day's contributions sort just before its
        aggregates, so every item holding an hour of a day comes before any item of an earlier day. A
        batch found both as a ``USE#`` item and as the day contribution migration 0004 wrote from it
        counts once."""
        return self.last_cells_before(customer_id, meter_code, hour, grouped=False).get("")

    def last_cells_before(
        self, customer_id: str, meter_code: str, hour: str, *, grouped: bool
    ) -> dict[str, StoredCell]:
        """Per group, the last cell of a meter in an hour before ``hour`` (merged as in
        ``last_cell_before``). Ungrouped (``grouped`` false), the read stops once the last day holding
        an ungrouped cell is whole; grouped, a group may have last reported at any earlier time, so the
        partitions are read back to their first item."""
        pks = [partition(customer_id, meter_code, shard) for shard in range(self.shards)]
        found: list[tuple[str, str, str | None, dict[str, Any], CellUsage]] = []
        best: dict[str, str] = {}  # group -> its last hour before ``hour``
        unfolded = self.pending.unfolded(customer_id, meter_code, "", hour[:DAY_LENGTH])
        pending = sorted(self._without_folds(unfolded), key=lambda i: str(i["sk"]), reverse=True)
        readers = [self._query_back(pk, hour) for pk in [*pks, f"USE#{customer_id}#{meter_code}"]]
        for items in [iter(pending), *readers]:
            for item in items:
                if not grouped and str(item["sk"])[:DAY_LENGTH] < best.get("", "")[:DAY_LENGTH]:
                    break  # every item of the last day with a cell is read
                for cell_hour, group, batch, usage in _cells(item):
                    if cell_hour < hour and (grouped or group == "") and cell_hour >= best.get(group, ""):
                        found.append((cell_hour, group, batch, item, usage))
                        best[group] = cell_hour
        result: dict[str, StoredCell] = {}
        for group, last_hour in sorted(best.items()):
            last = [(b, i, u) for h, g, b, i, u in found if g == group and h == last_hour]
            base = next((item for batch, item, _ in last if batch is None), None)
            folded = set((base or {}).get("fb") or ())
            kept: dict[str | None, tuple[dict[str, Any], CellUsage]] = {}
            for batch, item, usage in last:  # contributions come before USE# items: they win a batch
                if batch not in folded and batch not in kept:
                    kept[batch] = (item, usage)
            if kept:
                merged = merge_cells(u for _, u in kept.values())
                sources = tuple((str(i["pk"]), str(i["sk"])) for i, _ in kept.values())
                result[group] = StoredCell(last_hour, group, merged, base, sources)
        return result

    def _without_folds(self, days: Sequence[PendingDay]) -> list[dict[str, Any]]:
        """The pending days (read first) whose fold contribution is not stored, as contributions."""
        keys = [
            {"pk": {"S": partition(d.customer_id, d.meter_code, shard)}, "sk": {"S": d.folded_sk}}
            for d in days
            for shard in range(self.shards)
        ]
        return _pending_items(days, batch_get(self.table_name, keys, projection="pk, sk") if keys else [])

    def _query_back(self, pk: str, before: str) -> Iterator[dict[str, Any]]:
        """Items of ``pk`` whose sort key is below ``before``, newest first, a page at a time."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk < :hi",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":hi": {"S": before}},
            "ConsistentRead": True,
            "ScanIndexForward": False,
            "Limit": 25,
        }
        yield from query_items(kwargs)

    def contributions(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[Contribution]:
        """What each batch counted in each cell of hours [first_hour, last_hour], with the transaction ids:
        the contributions (one Query per shard), and the items of earlier layouts (``USE#``, ``SL#``)
        which are read for the sweep's recount only."""
        found = []
        for item in self._usage_items(customer_id, meter_code, first_hour, last_hour):
            sk = str(item["sk"])
            if not is_contribution(sk):
                continue
            day, batch = sk[:DAY_LENGTH], sk[DAY_LENGTH + 1 :]
            for cell, stored in (item.get("cs") or {}).items():
                hour, group = cell_of(day, cell)
                if first_hour <= hour <= last_hour:
                    tx = tuple(str(t) for t in stored.get("tx", ()))
                    found.append(Contribution(group, batch, False, tx, hour, bool(item.get("pending"))))
        earlier = (first_hour, last_hour + "#\uffff")
        for item in self._query(f"USE#{customer_id}#{meter_code}", between=earlier):
            sk = str(item["sk"])
            group, _, batch = sk[HOUR_LENGTH + 1 :].rpartition("#")
            tx = tuple(str(t) for t in item.get("tx", ()))
            found.append(Contribution(group, batch, False, tx, sk[:HOUR_LENGTH]))
        if first_hour == last_hour:  # slices are partitioned by hour: read only for one hour's recount
            for item in self._query(f"SL#{customer_id}#{meter_code}#{first_hour}"):
                group, _, batch = str(item["sk"]).rpartition("#")
                tx = tuple(str(t) for t in item.get("tx", ()))
                found.append(Contribution(group, batch, True, tx, first_hour))
        return found

    def _usage_items(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[dict[str, Any]]:
        """Every usage item of hours [first_hour, last_hour] and of the days holding them (contributions
        are per day, so the first day's earlier hours come too; callers keep the hours they asked for),
        the pending days not folded yet among them, as contributions (``pending`` set)."""
        pending = self.pending.unfolded(
            customer_id, meter_code, first_hour[:DAY_LENGTH], last_hour[:DAY_LENGTH]
        )
        between = (first_hour[:DAY_LENGTH] + CONTRIBUTION_MARK, last_hour + "#\uffff")
        items = self._partitions(customer_id, meter_code, between)
        return items + _pending_items(pending, items)

    def _partitions(
        self, customer_id: str, meter_code: str, between: tuple[str, str], first_shard: int = 0
    ) -> list[dict[str, Any]]:
        """The items of every usage partition (shard) of a customer's meter with a sort key in ``between``."""
        items: list[dict[str, Any]] = []
        for shard in range(first_shard, self.shards):
            items += self._query(partition(customer_id, meter_code, shard), between=between)
        return items

    def move_cell_contributions(self) -> dict[str, int]:
        """Write the contributions of the previous layout (``USE#``: one item per cell and batch) as the
        day contributions of their batches, so readers find them in the usage partition (migration 0004).

        Each (customer, meter, day, batch) is put on condition that it does not exist: a contribution the
        current worker wrote for the same batch (a redelivery) already holds every cell the batch counted
        that day, and a second run finds its own items. The ``USE#`` items stay; nothing reads them for
        usage, and they still prove their batches counted.
        """
        from neruba.dal import maintenance

        days: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for item in maintenance.scan(self.table_name, "begins_with(pk, :p)", {":p": "USE#"}):
            _, customer_id, meter_code = str(item["pk"]).split("#", 2)
            sk = str(item["sk"])
            hour = sk[:HOUR_LENGTH]
            group, _, batch = sk[HOUR_LENGTH + 1 :].rpartition("#")
            day = days.setdefault(
                (customer_id, meter_code, hour[:DAY_LENGTH], batch),
                {"agg": item.get("agg"), "at": str(item.get("at") or ""), "cs": {}},
            )
            cell = {k: v for k, v in item.items() if k not in ("pk", "sk", "agg", "at")}
            day["cs"][GroupRef(customer_id, meter_code, hour, group).cell] = cell
            day["at"] = max(day["at"], str(item.get("at") or ""))
        moved = 0
        for (customer_id, meter_code, day_text, batch), stored in days.items():
            key = contribution_key(customer_id, meter_code, day_text, batch, 0)
            item = {"pk": key["pk"]["S"], "sk": key["sk"]["S"], **{k: v for k, v in stored.items() if v}}
            moved += maintenance.put_if(self.table_name, item, "attribute_not_exists(pk)")
        return {"contributions": len(days), "moved": moved, "present": len(days) - moved}

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
        counted, so the page is the contributions of the days of [start, end) (per meter, one Query per
        shard and day, a day at a time as the page needs it), merged across meters by (hour, meter), then the
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

    def count_listed(
        self,
        customer_id: str,
        meter_codes: Sequence[str],
        start: datetime,
        end: datetime,
        stop_after: int | None = None,
    ) -> int:
        """How many transaction ids the contributions of the hours of [start, end) name: what
        :meth:`list_events` would read, counted from the contributions' cell maps alone (no event read;
        events voided since and those of the first and last hour outside the range are counted too, so
        it is an upper bound). Stops once the count is past ``stop_after``."""
        first, last = hour_bucket(start), hour_bucket(end - timedelta(microseconds=1))
        total = 0
        for meter in sorted(set(meter_codes)):
            for _, _, _, ids in self._cells_from(customer_id, meter, first, last, None):
                total += len(ids)
                if stop_after is not None and total > stop_after:
                    return total
        return total

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
        """The cells of one meter's contributions for hours [first, last] at or after the position
        ``after``, in order, as (hour, meter, cell key, sorted transaction ids); the cell key is
        ``{hour}#{batch}#{group}``. Read lazily a day at a time (one Query per shard and day, strongly
        consistent, only the contributions' cell maps), with the pending days not folded yet (read first)."""
        day = first[:DAY_LENGTH]
        if after is not None:
            day = max(day, after[0][:DAY_LENGTH])
        # read before the contributions, so a day folded meanwhile is found as one or the other
        unfolded = self.pending.unfolded(customer_id, meter, day, last[:DAY_LENGTH])
        while day <= last[:DAY_LENGTH]:
            cells = []
            pending = [p for p in unfolded if p.day == day]
            sks: list[str] = []
            for shard in range(self.shards):
                request: dict[str, Any] = {
                    "TableName": self.table_name,
                    "KeyConditionExpression": "pk = :pk AND begins_with(sk, :day)",
                    "ExpressionAttributeValues": to_item(
                        {":pk": partition(customer_id, meter, shard), ":day": day + CONTRIBUTION_MARK}
                    ),
                    "ProjectionExpression": "sk, cs",
                    "ConsistentRead": True,  # a fold written after the pending read is found
                }
                for item in query_items(request):
                    sks.append(str(item["sk"]))
                    batch = str(item["sk"])[DAY_LENGTH + 1 :]
                    for cell, stored in (item.get("cs") or {}).items():
                        hour, group = cell_of(day, cell)
                        if first <= hour <= last:
                            ids = tuple(sorted(str(t) for t in stored.get("tx") or ()))
                            cells.append((hour, meter, f"{hour}#{batch}#{group}", ids))
            for found in not_folded(pending, sks):
                for cell, stored in (found.stored.get("cs") or {}).items():
                    hour, group = cell_of(day, cell)
                    if first <= hour <= last:
                        ids = tuple(sorted(str(t) for t in stored.get("tx") or ()))
                        cells.append((hour, meter, f"{hour}#{found.batch}#{group}", ids))
            yield from sorted(cells)
            if day == last[:DAY_LENGTH]:
                return  # the last day read (a day after 9999-12-31 does not exist)
            day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()

    def release(self, customer_id: str, transaction_id: str, batch: str) -> None:
        """Mark an event still held by ``batch`` as given back uncounted: that attempt counts it no more,
        so another batch may adopt it at once (nothing happens if another batch holds it by now)."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=event_key(customer_id, transaction_id),
                UpdateExpression="SET rl = :bk",
                ConditionExpression="bk = :bk",
                ExpressionAttributeValues={":bk": {"S": batch}},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def park_uncounted(
        self, customer_id: str, transaction_id: str, batch: str, reason: str, message: str
    ) -> bool:
        """Turn an accepted event that was never counted (still held by ``batch``) into a ``failed`` one."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=event_key(customer_id, transaction_id),
                UpdateExpression="SET st = :failed, reason = :r, reason_msg = :m" + moved_by_set(),
                ConditionExpression="st = :accepted AND bk = :bk",
                ExpressionAttributeValues=to_item(
                    {
                        ":failed": "failed",
                        ":accepted": "accepted",
                        ":bk": batch,
                        ":r": reason,
                        ":m": message,
                        **moved_by_value(),
                    }
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
        values = {**cell_item(usage), "updated_at": repaired_at, "repaired": True}
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
        return list(query_items(kwargs))


def _stored_cells(items: Iterable[Mapping[str, Any]], first_hour: str, last_hour: str) -> list[StoredCell]:
    """The cells of hours [first_hour, last_hour] among usage items: each aggregate plus the cells of
    the contributions it has not folded in, merged (closing levels among the items are skipped)."""
    bases: dict[tuple[str, str], Mapping[str, Any]] = {}
    parts: list[tuple[str, str, str, CellUsage, tuple[str, str]]] = []
    for item in items:
        pk, sk = str(item["pk"]), str(item["sk"])
        if is_level(sk):
            continue
        if not is_contribution(sk):
            hour, group = sk[:HOUR_LENGTH], sk[HOUR_LENGTH + 1 :]
            if first_hour <= hour <= last_hour:
                bases[(hour, group)] = item
            continue
        day, batch = sk[:DAY_LENGTH], sk[DAY_LENGTH + 1 :]
        for cell, stored in (item.get("cs") or {}).items():
            hour, group = cell_of(day, cell)
            if first_hour <= hour <= last_hour:
                parts.append((hour, group, batch, cell_usage(stored, item.get("agg")), (pk, sk)))
    cells: dict[tuple[str, str], list[tuple[CellUsage, tuple[str, str]]]] = {}
    for cell, base in bases.items():
        cells[cell] = [(cell_usage(base), (str(base["pk"]), str(base["sk"])))]
    for hour, group, batch, usage, source in parts:
        if batch in (bases.get((hour, group)) or {}).get("fb", ()):
            continue  # folded into the aggregate by a repair
        cells.setdefault((hour, group), []).append((usage, source))
    merged = []
    for (hour, group), found in sorted(cells.items()):
        usage = merge_cells(u for u, _ in found)
        sources = tuple(source for _, source in found)
        merged.append(StoredCell(hour, group, usage, bases.get((hour, group)), sources))
    return merged


def _cells(item: Mapping[str, Any]) -> list[tuple[str, str, str | None, CellUsage]]:
    """The cells a usage item holds, as (hour, group, batch, usage): every cell of a day contribution,
    a ``USE#`` item's one cell, or an aggregate's (batch None); a closing level holds none."""
    sk = str(item["sk"])
    if is_level(sk):
        return []
    if is_contribution(sk):
        day, batch = sk[:DAY_LENGTH], sk[DAY_LENGTH + 1 :]
        cells = ((cell_of(day, cell), stored) for cell, stored in (item.get("cs") or {}).items())
        return [(hour, group, batch, cell_usage(c, item.get("agg"))) for (hour, group), c in cells]
    hour, group = sk[:HOUR_LENGTH], sk[HOUR_LENGTH + 1 :]
    if str(item["pk"]).startswith("USE#"):
        group, _, batch = group.rpartition("#")
        return [(hour, group, batch, cell_usage(item))]
    return [(hour, group, None, cell_usage(item))]


def _pending_items(pending: Sequence[PendingDay], items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The pending days whose fold is not among ``items`` (read after them), as contributions."""
    return [day.as_contribution() for day in not_folded(pending, (str(i["sk"]) for i in items))]


def _event_of(item: Mapping[str, Any] | None) -> StoredEvent | None:
    """An event from a low-level item (as DynamoDB returns it), or None."""
    return StoredEvent.from_stored(from_item(item)) if item else None


def _minute(at: datetime) -> str:
    """``YYYY-MM-DDTHH:MM`` of an instant (the outcome counters' sort key; the year padded to 4 digits)."""
    return at.isoformat(timespec="minutes")[:16]
