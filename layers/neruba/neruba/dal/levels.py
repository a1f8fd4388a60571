"""Closing levels in the usage table: one item per customer, meter and window end (``domain.levels``).

Item ``AGG#{customer}#{meter}`` / ``{hour before H}$`` (the meter's usage partition, shard 0): the level
at hour ``H`` sorts right after the cells of the hour before it, so the Query that reads a window's cells
returns the level it starts from and the one at its end as well (no read of its own). ``agg`` (the
meter's aggregation), ``ra`` (when the computation that wrote it began reading, ISO UTC; only level items
carry it), ``g`` (a list of ``{k: group key, l: level}`` for a weighted_sum meter or ``{k, v: value, t:
reported at}`` for a latest one; numbers as decimal strings, so a level of more than 38 digits is kept
exactly). Levels stored before this layout (``LVL#{customer}#{meter}`` / ``{H}``) are moved here by
migration 0005 (:meth:`LevelsRepository.move_legacy`); until it has run, a window that finds none reads
its meter from the beginning, as the first window does. Rules: docs/pricing.md, "Closing levels".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.contributions import HOUR_LENGTH, partition
from neruba.dal.dynamo import from_item, is_condition_failure, query_items, to_item
from neruba.domain.ingest import hour_bucket, hour_start
from neruba.domain.levels import ClosingLevel, GroupLevel, same_levels

LEVEL_MARK = "$"  # sorts after "#": a level follows every cell of the hour it is keyed by
LEVEL_ONLY = "attribute_exists(ra)"  # a filter keeping level items of a usage partition


@dataclass(frozen=True, slots=True)
class Around:
    """What a window knows of a meter's closing levels: ``base``, the last closing level at or before
    the window's first hour (None: none stored), and ``at_end``, the one stored at the window's end hour
    (None: none yet)."""

    base: ClosingLevel | None
    at_end: ClosingLevel | None


def level_sk(hour: str) -> str:
    """The sort key of the level at ``hour`` (the level over every cell of an earlier hour)."""
    return hour_bucket(hour_start(hour) - timedelta(hours=1)) + LEVEL_MARK


def is_level(sk: str) -> bool:
    return len(sk) == HOUR_LENGTH + 1 and sk.endswith(LEVEL_MARK)


def _hour_of(sk: str) -> str:
    return hour_bucket(hour_start(sk[:HOUR_LENGTH]) + timedelta(hours=1))


def _legacy_pk(customer_id: str, meter_code: str) -> str:
    return f"LVL#{customer_id}#{meter_code}"


def among(items: Iterable[Mapping[str, Any]], first_hour: str, end_hour: str) -> Around:
    """The levels a window [first_hour, end_hour) needs, from the items its usage read returned."""
    base: ClosingLevel | None = None
    at_end: ClosingLevel | None = None
    for item in items:
        if not is_level(str(item["sk"])):
            continue
        closing = closing_of(item)
        if closing.hour <= first_hour and (base is None or closing.hour > base.hour):
            base = closing
        if closing.hour == end_hour:
            at_end = closing
    return Around(base, at_end)


class LevelsRepository:
    """Reads and writes of closing levels."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def around(self, customer_id: str, meter_code: str, first_hour: str, end_hour: str) -> Around:
        """The closing levels of a window [first_hour, end_hour) read on their own (tests and operators:
        rating gets them from its usage read, ``UsageRepository.level_window``)."""
        at_end = self._get(partition(customer_id, meter_code), level_sk(end_hour))
        return Around(self.search(customer_id, meter_code, first_hour), at_end)

    def search(self, customer_id: str, meter_code: str, first_hour: str) -> ClosingLevel | None:
        """The last closing level at or before ``first_hour`` (level items only, read back)."""
        for item in self._back(partition(customer_id, meter_code), level_sk(first_hour), LEVEL_ONLY):
            if is_level(str(item["sk"])):
                return closing_of(item)
        return None

    def move_legacy(self) -> dict[str, int]:
        """Move every closing level of the previous layout (``LVL#``) to its place in the usage partition
        (migration 0005). Each move is one transaction: delete the old item (on condition that it is still
        there) and put the new one (on condition that none is stored at its hour). A level billing
        already stored at that hour wins (it was computed later): the old item is only deleted. Idempotent:
        a second run finds nothing to move. Safe beside billing: :meth:`record`, when it replaces a level,
        deletes the later old-layout levels before the later current ones, so a level resting on the
        replaced one is either deleted before it moves (the move's condition fails) or moved before the
        current ones are deleted (and deleted with them)."""
        from neruba.dal import maintenance
        from neruba.dal.transaction import Cancelled, Transaction

        report = {"moved": 0, "superseded": 0, "gone": 0}
        dynamodb = client("dynamodb")
        for item in maintenance.scan(self.table_name, "begins_with(pk, :p)", {":p": "LVL#"}):
            _, customer_id, meter_code = str(item["pk"]).split("#", 2)
            old = {"pk": {"S": str(item["pk"])}, "sk": {"S": str(item["sk"])}}
            closing = closing_of(item, legacy=True)
            unit = Transaction()
            unit.extend(
                [{"Delete": {"TableName": self.table_name, "Key": old,
                             "ConditionExpression": "attribute_exists(pk)"}}],
                name="old",
            )  # fmt: skip
            unit.extend(
                [{"Put": {"TableName": self.table_name,
                          "Item": to_item(closing_item(customer_id, meter_code, closing)),
                          "ConditionExpression": "attribute_not_exists(pk)"}}],
                name="new",
            )  # fmt: skip
            try:
                unit.commit()
            except Cancelled as exc:
                if exc.failed("old"):
                    report["gone"] += 1  # deleted meanwhile by a billing that replaced an earlier level
                    continue
                if not exc.failed("new"):
                    raise
                dynamodb.delete_item(TableName=self.table_name, Key=old)
                report["superseded"] += 1
                continue
            report["moved"] += 1
        return report

    def record(
        self, customer_id: str, meter_code: str, closing: ClosingLevel, stored: ClosingLevel | None
    ) -> bool:
        """Store ``closing`` unless the same levels are stored (``stored``, as read by :meth:`around`: then
        only its ``ra`` moves up to this computation's) or a computation that began reading later wrote
        this hour meanwhile (returns False then).

        When the levels differ from ones stored before, every later closing level of the meter was
        computed from the old ones: they are deleted first (so a crash between the two writes leaves
        them deleted, and a retry finds the old levels still stored and deletes again), and the windows
        after this hour read their cells again from here until billing rewrites them."""
        pk = partition(customer_id, meter_code)
        if stored is not None and same_levels(stored.groups, closing.groups):
            if stored.read_at < closing.read_at:  # confirmed by a later read: no earlier one may replace it
                self._confirm(pk, closing)
            return False
        if stored is not None and stored.read_at > closing.read_at:
            return False  # a computation that began reading later stored these: they stand
        if stored is not None:  # the previous layout's later levels first (see move_legacy)
            self._drop_after(_legacy_pk(customer_id, meter_code), closing.hour, legacy=True)
            self._drop_after(pk, level_sk(closing.hour))
        try:
            client("dynamodb").put_item(
                TableName=self.table_name,
                Item=to_item(closing_item(customer_id, meter_code, closing)),
                ConditionExpression="attribute_not_exists(pk) OR ra <= :ra",
                ExpressionAttributeValues={":ra": {"S": closing.read_at}},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            if _too_large(exc):  # too many groups for one item: windows keep reading from the base
                return False
            raise
        return True

    def _confirm(self, pk: str, closing: ClosingLevel) -> None:
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": pk}, "sk": {"S": level_sk(closing.hour)}},
                UpdateExpression="SET ra = :ra",
                ConditionExpression="attribute_exists(pk) AND ra < :ra",
                ExpressionAttributeValues={":ra": {"S": closing.read_at}},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def stored(self, customer_id: str, meter_code: str) -> list[ClosingLevel]:
        """Every closing level of a meter, oldest first (tests and operators)."""
        current = self._back(partition(customer_id, meter_code), "\uffff", LEVEL_ONLY)
        found = [closing_of(i) for i in current if is_level(str(i["sk"]))]
        return sorted(found, key=lambda c: c.hour)

    def _get(self, pk: str, sk: str) -> ClosingLevel | None:
        item = (
            client("dynamodb")
            .get_item(TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
            .get("Item")
        )
        return closing_of(from_item(item)) if item else None

    def _drop_after(self, pk: str, sk: str, *, legacy: bool = False) -> None:
        """Delete the level items of ``pk`` sorting after ``sk`` (the cells among them stay)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk > :h",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":h": {"S": sk}},
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        if not legacy:
            kwargs["FilterExpression"] = LEVEL_ONLY
        for key in query_items(kwargs):
            if legacy or is_level(str(key["sk"])):
                client("dynamodb").delete_item(
                    TableName=self.table_name, Key=to_item({"pk": key["pk"], "sk": key["sk"]})
                )

    def _back(self, pk: str, at_most: str, only: str | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk <= :hi",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":hi": {"S": at_most}},
            "ConsistentRead": True,
            "ScanIndexForward": False,
        }
        if only:
            kwargs["FilterExpression"] = only
        else:
            kwargs["Limit"] = 2
        yield from query_items(kwargs)


def closing_item(customer_id: str, meter_code: str, closing: ClosingLevel) -> dict[str, Any]:
    """A closing level as stored (plain values, before ``to_item``)."""
    return {
        "pk": partition(customer_id, meter_code),
        "sk": level_sk(closing.hour),
        "agg": closing.aggregation,
        "ra": closing.read_at,
        "g": [_group(key, level) for key, level in sorted(closing.groups.items())],
    }


def _group(key: str, level: GroupLevel) -> dict[str, Any]:
    if level.latest_at is not None:
        return {"k": key, "v": str(level.latest), "t": level.latest_at}
    return {"k": key, "l": str(level.level if level.level is not None else Decimal(0))}


def closing_of(item: Mapping[str, Any], *, legacy: bool = False) -> ClosingLevel:
    """A stored level item as a :class:`ClosingLevel`."""
    groups: dict[str, GroupLevel] = {}
    for entry in item.get("g") or []:
        if entry.get("t") is not None:
            groups[str(entry["k"])] = GroupLevel(latest=Decimal(str(entry["v"])), latest_at=str(entry["t"]))
        else:
            groups[str(entry["k"])] = GroupLevel(level=Decimal(str(entry.get("l", "0"))))
    hour = str(item["sk"]) if legacy else _hour_of(str(item["sk"]))
    return ClosingLevel(hour, str(item.get("agg", "")), groups, str(item.get("ra", "")))


def _too_large(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    return error.get("Code") == "ValidationException" and "size" in str(error.get("Message", "")).lower()
