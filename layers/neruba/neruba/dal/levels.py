"""Closing levels in the usage table: one item per customer, meter and window end (``domain.levels``).

Item ``LVL#{customer}#{meter}`` / ``{hour}``: ``agg`` (the meter's aggregation), ``ra`` (when the
computation that wrote it began reading, ISO UTC), ``g`` (a list of ``{k: group key, l: level}`` for a
weighted_sum meter or ``{k, v: value, t: reported at}`` for a latest one; numbers as decimal strings, so a
level of more than 38 digits is kept exactly). Rules: docs/pricing.md, "Closing levels".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, to_item
from neruba.domain.levels import ClosingLevel, GroupLevel, same_levels


@dataclass(frozen=True, slots=True)
class Around:
    """What one read of a meter's closing levels found for a window: ``base``, the last closing level at
    or before the window's first hour (None: none stored), and ``at_end``, the one stored at the window's
    end hour (None: none yet)."""

    base: ClosingLevel | None
    at_end: ClosingLevel | None


def _pk(customer_id: str, meter_code: str) -> str:
    return f"LVL#{customer_id}#{meter_code}"


class LevelsRepository:
    """Reads and writes of closing levels."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def around(self, customer_id: str, meter_code: str, first_hour: str, end_hour: str) -> Around:
        """The closing levels a window [first_hour, end_hour) needs: one backward Query (``sk <=
        end_hour``, newest first), paged on only while no item at or before ``first_hour`` has come."""
        at_end: ClosingLevel | None = None
        for item in self._back(_pk(customer_id, meter_code), max(first_hour, end_hour)):
            closing = _closing(item)
            if closing.hour == end_hour:
                at_end = closing
            if closing.hour <= first_hour:
                return Around(closing, at_end)
        return Around(None, at_end)

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
        pk = _pk(customer_id, meter_code)
        if stored is not None and same_levels(stored.groups, closing.groups):
            if stored.read_at < closing.read_at:  # confirmed by a later read: no earlier one may replace it
                self._confirm(pk, closing)
            return False
        if stored is not None and stored.read_at > closing.read_at:
            return False  # a computation that began reading later stored these: they stand
        if stored is not None:
            self._drop_after(pk, closing.hour)
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
                Key={"pk": {"S": pk}, "sk": {"S": closing.hour}},
                UpdateExpression="SET ra = :ra",
                ConditionExpression="attribute_exists(pk) AND ra < :ra",
                ExpressionAttributeValues={":ra": {"S": closing.read_at}},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def stored(self, customer_id: str, meter_code: str) -> list[ClosingLevel]:
        """Every closing level of a meter, oldest first (tests and operators)."""
        items = self._back(_pk(customer_id, meter_code), "\uffff")
        return sorted((_closing(item) for item in items), key=lambda c: c.hour)

    def _drop_after(self, pk: str, hour: str) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk > :h",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":h": {"S": hour}},
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        dynamodb = client("dynamodb")
        for page in dynamodb.get_paginator("query").paginate(**kwargs):
            for key in page.get("Items", []):
                dynamodb.delete_item(TableName=self.table_name, Key={"pk": key["pk"], "sk": key["sk"]})

    def _back(self, pk: str, at_most: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk <= :hi",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":hi": {"S": at_most}},
            "ConsistentRead": True,
            "ScanIndexForward": False,
            "Limit": 2,
        }
        for page in client("dynamodb").get_paginator("query").paginate(**kwargs):
            yield from (from_item(i) for i in page.get("Items", []))


def closing_item(customer_id: str, meter_code: str, closing: ClosingLevel) -> dict[str, Any]:
    """A closing level as stored (plain values, before ``to_item``)."""
    return {
        "pk": _pk(customer_id, meter_code),
        "sk": closing.hour,
        "agg": closing.aggregation,
        "ra": closing.read_at,
        "g": [_group(key, level) for key, level in sorted(closing.groups.items())],
    }


def _group(key: str, level: GroupLevel) -> dict[str, Any]:
    if level.latest_at is not None:
        return {"k": key, "v": str(level.latest), "t": level.latest_at}
    return {"k": key, "l": str(level.level if level.level is not None else Decimal(0))}


def _closing(item: Mapping[str, Any]) -> ClosingLevel:
    groups: dict[str, GroupLevel] = {}
    for entry in item.get("g") or []:
        if entry.get("t") is not None:
            groups[str(entry["k"])] = GroupLevel(latest=Decimal(str(entry["v"])), latest_at=str(entry["t"]))
        else:
            groups[str(entry["k"])] = GroupLevel(level=Decimal(str(entry.get("l", "0"))))
    return ClosingLevel(str(item["sk"]), str(item.get("agg", "")), groups, str(item.get("ra", "")))


def _too_large(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    return error.get("Code") == "ValidationException" and "size" in str(error.get("Message", "")).lower()
