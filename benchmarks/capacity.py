"""Counting AWS requests and DynamoDB write units from the requests themselves.

moto reports nominal capacity and nothing for transactions, so write units are computed here with
DynamoDB's published rules: an item's size is the UTF-8 length of its attribute names plus their values
(numbers about 1 byte per 2 digits + 1, lists and maps 3 bytes + 1 per element); a standard write costs
one unit per started KB of the larger of the item before and after (a delete: of the item it deletes); a
transactional write costs two.
A conditional write that fails still costs its units.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def value_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in raw)
    if kind == "NS":
        return sum(value_size({"N": v}) for v in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in raw.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


@dataclass
class Meter:
    """Counts requests per operation and DynamoDB write units per item kind (the ``pk`` prefix)."""

    requests: Counter[str] = field(default_factory=Counter)
    write_units: Counter[str] = field(default_factory=Counter)
    reader: Any = None

    def attach(self, client: Any, reader: Any) -> None:
        """Count every call ``client`` makes; ``reader`` (an uncounted client) sizes items after updates."""
        self.reader = reader
        client.meta.events.register("before-parameter-build.*.*", self._stash)
        client.meta.events.register("after-call.*.*", self._count)

    @property
    def total_write_units(self) -> int:
        return sum(self.write_units.values())

    @property
    def dynamodb_requests(self) -> int:
        return sum(n for op, n in self.requests.items() if op.startswith("dynamodb:"))

    def _stash(self, params: dict[str, Any], context: dict[str, Any], model: Any = None, **_: Any) -> None:
        context["meter_params"] = dict(params)
        name = getattr(model, "name", "")
        if name == "DeleteItem":  # a delete costs the size of the item it deletes: sized before it goes
            context["meter_deleted"] = [self._stored(params["TableName"], params["Key"])]
        elif name == "BatchWriteItem":
            context["meter_deleted"] = [
                self._stored(table, write["DeleteRequest"]["Key"])
                for table, writes in params["RequestItems"].items()
                for write in writes
                if "DeleteRequest" in write
            ]

    def _count(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        """Count one finished call, and its write units from the parameters stashed before it."""
        service, name = model.service_model.service_name, model.name
        self.requests[f"{service}:{name}"] += 1
        params = context.get("meter_params") or {}
        if service != "dynamodb":
            return
        for deleted in context.get("meter_deleted") or ():
            self._charge(deleted, 1)
        if name == "PutItem":
            self._charge(params["Item"], 1)
        elif name == "UpdateItem":
            self._charge(self._stored(params["TableName"], params["Key"]), 1)
        elif name == "BatchWriteItem":
            for writes in params["RequestItems"].values():
                for write in writes:
                    if "PutRequest" in write:
                        self._charge(write["PutRequest"]["Item"], 1)
        elif name == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                item = body["Item"] if kind == "Put" else self._stored(body["TableName"], body["Key"])
                self._charge(item, 2)

    def _stored(self, table: str, key: dict[str, Any]) -> dict[str, Any]:
        return self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item") or dict(key)

    def _charge(self, item: dict[str, Any], factor: int) -> None:
        kind = str(item["pk"]["S"]).split("#", 1)[0] if "pk" in item else "IDEMPOTENCY_RECORD"
        self.write_units[kind] += factor * units(item_size(item))
