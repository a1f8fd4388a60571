"""Voided and amended events in storage (usage table).

Items:

- the event itself (``EVT#{customer}#{transaction_id}``): a void turns ``st`` from ``accepted`` to
  ``voided`` and adds ``vd`` (the void record, JSON text), on condition that it is still ``accepted``
  and held by the batch that counted it; an amend's corrected copy is a new event item holding ``amd``
  (the transaction id it amends), put on condition that its key is free; a backfill's correction of an
  event voided already without a copy only rewrites ``vd`` to name its copy (on condition that ``vd`` is
  unchanged);
- the open void ``VOID#open`` / ``{customer}\\x1f{transaction_id}``: written in the void's own
  transaction and deleted once its cell is recomputed and its corrected copy counted
  (``logic/ingest/voids.py``); what the ``voids`` sweep check finishes when the request that wrote it
  did not;
- a restore (the revert of a ``mode: replace`` backfill giving back the events it voided) turns ``st``
  from ``voided`` to ``accepted``, removes ``vd`` and adds ``rs`` (the restore record, JSON text), on
  condition that the event still holds the very void record the replace wrote; it deletes the event's
  void list entry and writes an open void, so its cell is recomputed as a void's is;
- the customer's void list ``VOIDS#{customer}`` / ``{timestamp}\\x1f{transaction_id}``: one per voided
  event, kept, read by invoice explain to cite the voids behind a correction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, partition_items, query_items, to_item
from neruba.dal.usage import StoredEvent, event_key
from neruba.timefmt import parse_ts, ts

OPEN_PARTITION = "VOID#open"


@dataclass(frozen=True, slots=True)
class OpenVoid:
    """A void whose correction is not finished: the voided event and, for an amend, its copy."""

    customer_id: str
    transaction_id: str
    copy_id: str | None  # the corrected copy's transaction id
    copy_batch: str | None  # the batch holding the copy for counting
    at: str


@dataclass(frozen=True, slots=True)
class VoidEntry:
    """One voided event of a customer, as invoice explain cites it."""

    transaction_id: str
    meter_code: str
    timestamp: str
    record: dict[str, Any]


class VoidsRepository:
    """Writes and reads of voids (usage table)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def void_update(self, event: StoredEvent, record_json: str) -> dict[str, Any]:
        """The action voiding ``event``, on condition that it is still accepted in the batch that counted
        it."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": event_key(event.customer_id, event.transaction_id),
                "UpdateExpression": "SET st = :voided, vd = :vd",
                "ConditionExpression": "st = :accepted AND bk = :bk",
                "ExpressionAttributeValues": to_item(
                    {":voided": "voided", ":accepted": "accepted", ":bk": event.batch, ":vd": record_json}
                ),
            }
        }

    def relink_update(self, event: StoredEvent, record_json: str) -> dict[str, Any]:
        """The action giving a voided ``event``'s void record a corrected copy (a backfill's correction of
        it), on condition that it still holds the void record it was read with."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": event_key(event.customer_id, event.transaction_id),
                "UpdateExpression": "SET vd = :new",
                "ConditionExpression": "st = :voided AND vd = :vd",
                "ExpressionAttributeValues": to_item(
                    {":voided": "voided", ":vd": event.void_json, ":new": record_json}
                ),
            }
        }

    def restore_update(self, event: StoredEvent, restore_json: str) -> dict[str, Any]:
        """The action giving a voided ``event`` back its usage, on condition that it still holds the void
        record it was read with."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": event_key(event.customer_id, event.transaction_id),
                "UpdateExpression": "SET st = :accepted, rs = :rs REMOVE vd",
                "ConditionExpression": "st = :voided AND vd = :vd",
                "ExpressionAttributeValues": to_item(
                    {
                        ":voided": "voided",
                        ":accepted": "accepted",
                        ":vd": event.void_json,
                        ":rs": restore_json,
                    }
                ),
            }
        }

    def entry_delete(self, event: StoredEvent) -> dict[str, Any]:
        """The action deleting the event's entry in its customer's void list (a restored event)."""
        key = {
            "pk": f"VOIDS#{event.customer_id}",
            "sk": f"{ts(parse_ts(event.timestamp))}\x1f{event.transaction_id}",
        }
        return {"Delete": {"TableName": self.table_name, "Key": to_item(key)}}

    def copy_put(self, copy: StoredEvent) -> dict[str, Any]:
        """The action writing an amend's corrected copy (its key must be free)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item({k: v for k, v in copy.stored().items() if v is not None}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def open_put(self, void: OpenVoid) -> dict[str, Any]:
        item = {
            "pk": OPEN_PARTITION,
            "sk": f"{void.customer_id}\x1f{void.transaction_id}",
            "c": void.customer_id,
            "tx": void.transaction_id,
            "cp": void.copy_id,
            "cb": void.copy_batch,
            "at": void.at,
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item({k: v for k, v in item.items() if v is not None}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def entry_put(self, event: StoredEvent, record_json: str) -> dict[str, Any]:
        item = {
            "pk": f"VOIDS#{event.customer_id}",
            "sk": f"{ts(parse_ts(event.timestamp))}\x1f{event.transaction_id}",
            "tx": event.transaction_id,
            "m": event.meter_code,
            "ts": event.timestamp,
            "vd": record_json,
        }
        return {"Put": {"TableName": self.table_name, "Item": to_item(item)}}

    def open_voids(self) -> list[OpenVoid]:
        """Every void not finished yet, oldest key first."""
        return [_open(item) for item in partition_items(self.table_name, OPEN_PARTITION)]

    def open_void(self, customer_id: str, transaction_id: str) -> OpenVoid | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": OPEN_PARTITION}, "sk": {"S": f"{customer_id}\x1f{transaction_id}"}},
            ConsistentRead=True,
        )
        return _open(from_item(response["Item"])) if "Item" in response else None

    def close(self, void: OpenVoid) -> None:
        """Forget a finished void (nothing happens when it is already gone)."""
        client("dynamodb").delete_item(
            TableName=self.table_name,
            Key={"pk": {"S": OPEN_PARTITION}, "sk": {"S": f"{void.customer_id}\x1f{void.transaction_id}"}},
        )

    def voided_between(self, customer_id: str, start: str, end: str) -> list[VoidEntry]:
        """The customer's voided events whose timestamp is in [start, end) (``timefmt.ts`` text)."""
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item(
                {":pk": f"VOIDS#{customer_id}", ":lo": start, ":hi": end + "\x1f"}
            ),
            "ConsistentRead": True,
        }
        found = []
        for item in query_items(request):
            if str(item["sk"]).split("\x1f", 1)[0] < end:
                record = json.loads(item["vd"])
                found.append(VoidEntry(str(item["tx"]), str(item["m"]), str(item["ts"]), record))
        return found


def _open(item: dict[str, Any]) -> OpenVoid:
    return OpenVoid(
        str(item["c"]),
        str(item["tx"]),
        str(item["cp"]) if item.get("cp") else None,
        str(item["cb"]) if item.get("cb") else None,
        str(item.get("at") or ""),
    )
