"""Backfills in the billing table (docs/billing.md, "Backfills").

Items (``pk`` / ``sk``):

- ``BACKFILL`` / ``{backfill_id}`` - the backfill: ``status`` (open, committing, committed, reverting,
  reverted, cancelled), ``doc`` (what the API shows, JSON) and ``held`` (how many events it holds); once
  a revert starts, ``revert`` (its reason, ticket, actor and time, JSON) and ``reverting_at``; once
  reverted, ``reverted`` (what it did, JSON) and ``reverted_at``.
- ``BFEV#{backfill_id}`` / ``{customer}#{transaction_id}`` - one held event: its ``fingerprint`` and the
  event as sent (``event``, JSON). Held events are written only while the backfill is open (the put is a
  transaction with a condition on the backfill's status), so the events a commit reads are final.
- ``BFPART#{invoice_id}`` / ``{backfill_id}#{rerun}`` - the part of one invoice rerun that carries a
  backfill's events (``logic.billing.correction_sources``): per line the rated amount its events account
  for (``lines``, JSON), the money of the rerun it stands for (``part``, JSON), and whether the backfill
  was committing or reverting (``direction``). Written once, in the rerun's own transaction.
- ``BFCUST#{customer_id}`` / ``{end}#{backfill_id}`` - where a backfill's events may lie for one of its
  customers: the span ``[start, end)`` (``start``, ``backfill_id``), its range, and one span per event its
  commit superseded outside the range (``logic.billing.backfill_reach``). Put (the same content again on
  a retry) before its commit counts or voids anything; read by customer and end
  (:meth:`BackfillsRepository.reaching`), so a rerun reads the spans of its customer ending after its
  window's start, not every backfill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.dynamo import batch_get, from_item, partition_items, plain, query_items, to_item
from neruba.dal.transaction import Cancelled, Transaction, commit

PARTITION = "BACKFILL"
EVENTS = "BFEV#"
PARTS = "BFPART#"
REACH = "BFCUST#"
JSON_VALUES = ("committed", "revert", "reverted")  # attributes stored as JSON text


@dataclass(frozen=True)
class Backfill:
    """A stored backfill; ``document`` is what the API shows (with the stored status)."""

    id: str
    status: str
    held: int
    document: dict[str, Any]
    committing_by: str | None = None  # who sent the commit (the worker finishing it acts for them)
    committing_at: str | None = None  # when the commit started
    reverting_at: str | None = None  # when the revert started


@dataclass(frozen=True)
class HeldEvent:
    """One event held by a backfill: its key within the backfill and the event as sent."""

    customer_id: str
    transaction_id: str
    fingerprint: str
    event: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.customer_id}#{self.transaction_id}"


def _backfill(item: dict[str, Any]) -> Backfill:
    doc = jsonutil.loads(item["doc"])
    doc["status"] = item["status"]
    doc["events_held"] = int(plain(item.get("held") or 0))
    for name in ("committed", "cancelled_at", "committed_at", "revert", "reverted", "reverted_at"):
        if item.get(name) is not None:
            doc[name] = jsonutil.loads(item[name]) if name in JSON_VALUES else item[name]
    by, at = item.get("committing_by"), item.get("committing_at")
    return Backfill(
        str(item["sk"]),
        str(item["status"]),
        doc["events_held"],
        doc,
        str(by) if by else None,
        at,
        item.get("reverting_at"),
    )


class BackfillsRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def _key(self, backfill_id: str) -> dict[str, Any]:
        return {"pk": {"S": PARTITION}, "sk": {"S": backfill_id}}

    def put_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A Put of a new open backfill (condition: its id is new)."""
        item = {"pk": PARTITION, "sk": doc["id"], "status": "open", "held": 0, "doc": jsonutil.dumps(doc)}
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def get(self, backfill_id: str) -> Backfill | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=self._key(backfill_id), ConsistentRead=True
        )
        return _backfill(from_item(response["Item"])) if "Item" in response else None

    def all(self) -> list[Backfill]:
        """Every backfill, newest id last (ids are time-ordered)."""
        return [_backfill(item) for item in partition_items(self.table_name, PARTITION)]

    def get_many(self, backfill_ids: list[str]) -> list[Backfill]:
        """The backfills of ``backfill_ids`` that exist, in id order (one BatchGetItem per 100)."""
        found = batch_get(self.table_name, [self._key(i) for i in backfill_ids])
        return sorted((_backfill(item) for item in found), key=lambda b: b.id)

    def reach_items(self, backfill_id: str, customer_ids: list[str], start: str, end: str) -> list[Any]:
        """The Puts recording that the backfill's events may lie in ``[start, end)`` (storage timestamps)
        for each of ``customer_ids`` (unconditional: the same span put again is the same item)."""
        span = {"sk": f"{end}#{backfill_id}", "start": start, "backfill_id": backfill_id}
        return [
            {"Put": {"TableName": self.table_name, "Item": to_item({"pk": f"{REACH}{c}", **span})}}
            for c in customer_ids
        ]

    def reaching(self, customer_id: str, since: str) -> list[tuple[str, str, str]]:
        """The spans ``(backfill_id, start, end)`` of the customer's backfills ending after ``since`` (a
        storage timestamp; a key range: the spans ending at it or earlier are not read, as ``#`` sorts
        before ``$``)."""
        request = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": to_item({":pk": f"{REACH}{customer_id}", ":after": f"{since}$"}),
            "ConsistentRead": True,
        }
        return [
            (str(item["backfill_id"]), str(item["start"]), str(item["sk"]).partition("#")[0])
            for item in query_items(request)
        ]

    def move_item(self, backfill_id: str, frm: tuple[str, ...], to: str, **values: Any) -> dict[str, Any]:
        """An Update moving the backfill to ``to`` from one of ``frm`` (condition), setting ``values``
        (``committed``, ``revert`` and ``reverted`` are stored as JSON)."""
        names = {"#st": "status"}
        sets = ["#st = :to"]
        attrs: dict[str, Any] = {":to": to}
        for n, state in enumerate(frm):
            attrs[f":f{n}"] = state
        for name, value in values.items():
            sets.append(f"{name} = :{name}")
            attrs[f":{name}"] = jsonutil.dumps(value) if name in JSON_VALUES else value
        condition = " OR ".join(f"#st = :f{n}" for n in range(len(frm)))
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._key(backfill_id),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": f"attribute_exists(pk) AND ({condition})",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": to_item(attrs),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def status_check(self, backfill_id: str, status: str) -> dict[str, Any]:
        """A ConditionCheck that the backfill is still ``status`` (a move of a backfill conditional on
        the backfills over the same range staying as they were read)."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": self._key(backfill_id),
                "ConditionExpression": "#st = :st",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": to_item({":st": status}),
            }
        }

    def hold(self, backfill_id: str, event: HeldEvent) -> str:
        """Hold one event while the backfill is open: ``held``; ``duplicate`` when the backfill holds
        the same event under that key, ``conflict`` when it holds another; ``closed`` when the backfill
        is no longer open. One transaction: the event's put (if absent) and the count, conditional on
        the backfill being open."""
        item = {
            "pk": f"{EVENTS}{backfill_id}",
            "sk": event.key,
            "customer_id": event.customer_id,
            "transaction_id": event.transaction_id,
            "fingerprint": event.fingerprint,
            "event": jsonutil.dumps(event.event),
        }
        unit = Transaction()
        unit.add(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": to_item(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            name="event",
        )
        unit.add(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": self._key(backfill_id),
                    "UpdateExpression": "ADD held :one",
                    "ConditionExpression": "#st = :open",
                    "ExpressionAttributeNames": {"#st": "status"},
                    "ExpressionAttributeValues": to_item({":one": 1, ":open": "open"}),
                }
            },
            name="backfill",
        )
        try:
            commit(unit)
        except Cancelled as exc:
            if exc.failed("backfill"):
                return "closed"
            stored = self.held_event(backfill_id, event.key)
            if stored is None:
                raise
            return "duplicate" if stored.fingerprint == event.fingerprint else "conflict"
        return "held"

    def held_event(self, backfill_id: str, key: str) -> HeldEvent | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"{EVENTS}{backfill_id}"}, "sk": {"S": key}},
            ConsistentRead=True,
        )
        return _held(from_item(response["Item"])) if "Item" in response else None

    @property
    def parts(self) -> CarriedParts:
        """The parts of invoice reruns that backfills' events account for (stored in this table)."""
        return CarriedParts(self.table_name)

    def held_events(self, backfill_id: str) -> list[HeldEvent]:
        """Every event the backfill holds, in key order (the order a commit counts them in)."""
        return [_held(item) for item in partition_items(self.table_name, f"{EVENTS}{backfill_id}")]


@dataclass(frozen=True)
class CarriedPart:
    """The part of one rerun of an invoice that a backfill's events account for."""

    invoice_id: str
    backfill_id: str
    rerun: str
    direction: str  # commit or revert
    lines: dict[str, int]  # per line id: the rated amount (before discounts) its events account for
    part: dict[str, Any]  # the money of the rerun it stands for (action, amounts, correction invoice)


class CarriedParts:
    """Per invoice, the parts of its reruns each backfill's events account for."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def put_item(self, part: CarriedPart) -> dict[str, Any]:
        """A Put of one part (condition: new, so a rerun records its part once)."""
        item = {
            "pk": f"{PARTS}{part.invoice_id}",
            "sk": f"{part.backfill_id}#{part.rerun}",
            "direction": part.direction,
            "lines": jsonutil.dumps(part.lines),
            "part": jsonutil.dumps(part.part),
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def of_invoice(self, invoice_id: str) -> list[CarriedPart]:
        """Every part recorded for the invoice's reruns, by backfill."""
        found = []
        for item in partition_items(self.table_name, f"{PARTS}{invoice_id}"):
            backfill_id, _, rerun = str(item["sk"]).partition("#")
            found.append(
                CarriedPart(
                    invoice_id,
                    backfill_id,
                    rerun,
                    str(item["direction"]),
                    {str(k): int(v) for k, v in jsonutil.loads(item["lines"]).items()},
                    dict(jsonutil.loads(item["part"])),
                )
            )
        return found


def _held(item: dict[str, Any]) -> HeldEvent:
    return HeldEvent(
        customer_id=str(item["customer_id"]),
        transaction_id=str(item["transaction_id"]),
        fingerprint=str(item["fingerprint"]),
        event=jsonutil.loads(item["event"]),
    )
