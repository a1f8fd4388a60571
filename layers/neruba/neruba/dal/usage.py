"""The usage table: raw events, batch journals, slices, hourly aggregates and outcome counters.

Items (``pk`` / ``sk``):

- event      ``EVT#{customer}#{transaction_id}`` / ``#`` - the raw event; the conditional put on this key
  is the idempotency check (no separate idempotency record). ``st`` is accepted or failed, ``bk`` the
  batch that counted it, ``cid`` the copy (request id + index) that wrote it, ``hist`` its outcomes.
- journal    ``JRN#{minute}#{shard}`` / ``{batch}`` - written first for every batch: the compressed list of
  the batch's event keys, so a sweep can find events a crashed worker wrote but never counted (TTL 14 d).
- slice      ``SL#{customer}#{meter}#{hour}`` / ``{group}#{batch}`` - proof that a batch's events of one
  group were counted, with their transaction ids (the (customer, meter, hour) index of raw events).
- aggregate  ``AGG#{customer}#{meter}`` / ``{hour}#{group}`` - count, sum, max, latest, unique values;
  ``sq`` (sum meters) is an exponent no digit of the sum ``s`` lies below, which lets most batches ADD to
  ``s`` without reading it while the result stays exactly what DynamoDB stores (see ``_sum_update``).
- outcomes   ``OUT#{day}`` / ``{minute}`` - counters per outcome.

Index ``events-by-customer`` (``c`` / ``ts``): stored events only (no other item carries both), a
customer's events in time order; ``ts`` is ``timefmt.iso`` in UTC, whose text order is time order.

A slice and its aggregate update are written in one transaction, so an aggregate never counts a batch
twice; see docs/architecture.md for the write-unit budget.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.cursors import decode_cursor, encode_cursor
from neruba.dal.dynamo import from_item, is_condition_failure, to_item, to_value
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.ingest import GroupTotals
from neruba.domain.numbers import add_guard, exact_sum, lowest_exponent, number_problem
from neruba.timefmt import iso

HISTORY_CAP = 20
EVENTS_INDEX = "events-by-customer"
JOURNAL_SHARDS = 16
JOURNAL_TTL = timedelta(days=14)


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
        return {
            "pk": {"S": f"SL#{self.customer_id}#{self.meter_code}#{self.hour}"},
            "sk": {"S": f"{self.group}#{batch}"},
        }


@dataclass(slots=True)
class PutOutcome:
    """What the conditional put of an event found."""

    written: bool
    old: dict[str, Any] | None


@dataclass(slots=True)
class Recount:
    """An accepted event a crashed attempt never counted: move it from ``old_batch`` to this batch."""

    customer_id: str
    transaction_id: str
    old_batch: str
    old_slice: dict[str, Any]


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
    def put_event(self, item: dict[str, Any], *, replace_failed: bool = True) -> PutOutcome:
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
                Item=to_item(item),
                **condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item")
            return PutOutcome(written=False, old=from_item(old) if old else None)
        old = response.get("Attributes")
        return PutOutcome(written=True, old=from_item(old) if old else None)

    def append_history(self, customer_id: str, transaction_id: str, entry: dict[str, Any]) -> None:
        """Add an outcome to an event's history (capped; the counter always moves)."""
        key = event_key(customer_id, transaction_id)
        counter = "n_" + str(entry["o"])
        names = {"#n": counter}
        values = {
            ":e": to_value([entry]),
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

    def mark_replay(self, customer_id: str, transaction_id: str, earlier: list[dict[str, Any]]) -> None:
        """Mark an event written over a failed one as a replay, keeping the failed copies' history."""
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key=event_key(customer_id, transaction_id),
            UpdateExpression="SET o0 = :replay, hist = list_append(:earlier, hist)",
            ExpressionAttributeValues=to_item({":replay": "replay", ":earlier": earlier[-HISTORY_CAP:]}),
        )

    def get_event(self, customer_id: str, transaction_id: str) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=event_key(customer_id, transaction_id), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def get_events(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Many events by (customer, transaction_id), 100 per BatchGetItem."""
        return {(str(i["c"]), str(i["tx"])): i for i in self._batch_get([event_key(c, t) for c, t in keys])}

    def existing_slices(self, keys: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
        """Which of these slice keys exist, as (pk, sk) pairs."""
        return {(str(i["pk"]), str(i["sk"])) for i in self._batch_get(list(keys), projection="pk, sk")}

    # ------------------------------------------------------------------ counting
    def count_group(self, batch: str, write: GroupWrite, now: datetime) -> bool:
        """Count one batch's events of one group exactly once; False if this batch already counted them.

        One transaction: the slice (conditional on not existing), the aggregate update, and for each
        adopted event a check that its old slice never appeared plus the move of its ``bk`` to ``batch``.
        """
        ref, totals = write.ref, write.totals
        # a sum is added blind when that is provably exact, else read and written (see _sum_update)
        read_sum = write.aggregation == "sum" and add_guard(totals.total) is None
        for _attempt in range(6):
            reads = write.aggregation in ("max", "latest") or read_sum
            current = self._get(ref.aggregate_key) if reads else None
            unit = Transaction().add(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {
                            **ref.slice_key(batch),
                            **to_item({"tx": totals.transaction_ids, "n": totals.count, "at": iso(now)}),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                name="slice",
            )
            unit.add(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": ref.aggregate_key,
                        **_aggregate_update(write, current, read_sum=read_sum),
                    }
                },
                name="aggregate",
            )
            checked = {(r.old_slice["pk"]["S"], r.old_slice["sk"]["S"]): r.old_slice for r in write.recounts}
            for old_slice in checked.values():  # one check per old slice: an item may appear once
                unit.add(
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": old_slice,
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
                reasons = exc.reasons
                if exc.failed("slice"):
                    return False  # this batch's slice exists: counted by an earlier attempt
                if exc.failed("adopted"):
                    raise AggregateContentionError("an adopted event was counted meanwhile") from exc
                if _REFUSED.intersection(map(str, reasons)):
                    raise CellWriteRefusedError(f"aggregate {ref}: {reasons}") from exc
                if write.aggregation == "sum" and exc.failed("aggregate") and not read_sum:
                    read_sum = True  # the blind add was not provably exact: read the sum and add it here
                    continue
                time.sleep(0.02 * (2**_attempt))  # the aggregate moved (max/latest) or a transaction conflict
        raise AggregateContentionError(f"aggregate {ref} kept changing")

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
    def outcomes(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Outcome counters per minute in [start, end)."""
        rows: list[dict[str, Any]] = []
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        lo, hi = start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")
        while day < end:
            for item in self._query(f"OUT#{day.strftime('%Y-%m-%d')}", between=(lo, hi)):
                if str(item["sk"]) < hi:
                    rows.append(item)
            day += timedelta(days=1)
        return rows

    def aggregates(
        self, customer_id: str, meter_code: str, first_hour: str, last_hour: str
    ) -> list[dict[str, Any]]:
        """Aggregate items of one customer and meter for hours in [first_hour, last_hour]."""
        return self._query(f"AGG#{customer_id}#{meter_code}", between=(first_hour, last_hour + "#\uffff"))

    def slices(self, customer_id: str, meter_code: str, hour: str) -> list[dict[str, Any]]:
        return self._query(f"SL#{customer_id}#{meter_code}#{hour}")

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
        self, ref: GroupRef, values: dict[str, Any], expected: dict[str, Any] | None
    ) -> bool:
        """Overwrite one aggregate (the sweep's drift repair) unless a worker changed it since it was read."""
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "n = :n AND updated_at = :u",
                "ExpressionAttributeValues": to_item(
                    {":n": expected.get("n", 0), ":u": expected.get("updated_at")}
                ),
            }
        if values.get("s") is not None:
            values = {**values, "sq": lowest_exponent(values["s"])}
        try:
            client("dynamodb").put_item(
                TableName=self.table_name, Item={**ref.aggregate_key, **to_item(values)}, **condition
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def list_events(
        self,
        customer_id: str,
        *,
        code: str | None,
        start: str | None,
        last: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a customer's stored events with ``start <= ts <= last`` (either open), oldest
        first, optionally of one meter, and the cursor of the next page (None on the last)."""
        condition = "c = :c"
        if start is not None and last is not None:
            condition += " AND ts BETWEEN :lo AND :hi"
        elif start is not None:
            condition += " AND ts >= :lo"
        elif last is not None:
            condition += " AND ts <= :hi"
        values = {":c": customer_id, ":lo": start, ":hi": last, ":m": code}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": EVENTS_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": to_item({k: v for k, v in values.items() if v is not None}),
            "Limit": limit,
        }
        if code is not None:
            kwargs["FilterExpression"] = "m = :m"
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(
                cursor,
                keys=frozenset({"pk", "sk", "c", "ts"}),
                within=("c", customer_id),
                prefix=("pk", f"EVT#{customer_id}#"),
                between=("ts", start, last),
                agrees=lambda key: key["sk"] == "#",
            )
        items: list[dict[str, Any]] = []
        while True:
            response = client("dynamodb").query(**kwargs)
            items += [from_item(i) for i in response.get("Items", [])]
            after = response.get("LastEvaluatedKey")
            if not after or len(items) >= limit:
                break
            kwargs["ExclusiveStartKey"] = after
            kwargs["Limit"] = limit - len(items)
        return items, encode_cursor(after) if after else None

    # ------------------------------------------------------------------ helpers
    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = client("dynamodb").get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None

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


def _aggregate_update(
    write: GroupWrite, current: dict[str, Any] | None, *, read_sum: bool = False
) -> dict[str, Any]:
    """UpdateItem parts that fold ``write.totals`` into an aggregate item (``current`` as read, for max,
    latest, and sums that ``read_sum`` says must be added here)."""
    totals = write.totals
    adds = ["n :n"]
    sets = ["agg = :agg", "updated_at = :now"]
    values: dict[str, Any] = {
        ":n": totals.count,
        ":agg": write.aggregation,
        ":now": iso(datetime.now(UTC)),
    }
    condition: str | None = None
    if write.aggregation == "sum":
        condition = _sum_update(totals.total, current if read_sum else None, read_sum, sets, adds, values)
    if write.aggregation == "unique_count" and totals.uniques:
        adds.append("u :u")
        values[":u"] = set(totals.uniques)
    if write.late:
        adds.append("late_n :n")
    if write.aggregation == "max" and totals.maximum is not None:
        old = current.get("mx") if current else None
        if old is None or totals.maximum > Decimal(old):
            sets.append("mx = :mx")
            values[":mx"] = totals.maximum
        condition = _unchanged("mx", old, values)
    if write.aggregation == "latest" and totals.latest_at is not None:
        old_at = current.get("lt") if current else None
        if old_at is None or totals.latest_at > str(old_at):
            sets += ["lt = :lt", "lv = :lv"]
            values[":lt"], values[":lv"] = totals.latest_at, totals.latest
        condition = _unchanged("lt", old_at, values)
    parts: dict[str, Any] = {
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
        "ExpressionAttributeValues": to_item(values),
    }
    if condition:
        parts["ConditionExpression"] = condition
    return parts


def _unchanged(attribute: str, old: Any, values: dict[str, Any]) -> str:
    if old is None:
        return f"attribute_not_exists({attribute})"
    values[":old_" + attribute] = old
    return f"{attribute} = :old_{attribute}"


def _sum_update(
    total: Any,
    stored: dict[str, Any] | None,
    read: bool,
    sets: list[str],
    adds: list[str],
    values: dict[str, Any],
) -> str:
    """Add ``total`` to the sum ``s``, exactly as DynamoDB would store it or not at all.

    Blind (no read): ``ADD s`` under a condition on the stored ``s`` and its scale ``sq`` that makes the
    result exact within 28 digits (``domain.numbers.add_guard``), which every implementation computes
    exactly (moto rounds fractional sums past 28 digits; DynamoDB refuses past 38). When the condition
    fails (a large or finer-grained sum, an aggregate from before ``sq``), the caller reads ``s`` and the
    exact result is computed here and SET, on condition that ``s`` is unchanged. A result DynamoDB cannot
    store raises ``AggregateOverflowError``: nothing is written, nothing is rounded.
    """
    if number_problem(total):
        raise AggregateOverflowError(f"the batch total {total} is not storable")
    if not read:
        guard = add_guard(total)
        assert guard is not None  # count_group reads when there is no guard
        adds.append("s :s")
        sets.append("sq = if_not_exists(sq, :sq)")
        values.update({":s": total, ":sq": guard.high_scale, ":sql": guard.low_scale})
        values.update({":slo": guard.low, ":shi": guard.high})
        return (
            "(attribute_not_exists(s) AND attribute_not_exists(sq))"
            " OR (sq BETWEEN :sql AND :sq AND s BETWEEN :slo AND :shi)"
        )
    old = stored.get("s") if stored else None
    result = exact_sum([old or 0, total])
    if number_problem(result):
        raise AggregateOverflowError(f"{old} + {total} is not storable")
    sets += ["s = :s", "sq = :sq"]
    values.update({":s": result, ":sq": lowest_exponent(result)})
    if old is None:
        return "attribute_not_exists(s)"
    values[":old_s"] = old
    return "s = :old_s"
