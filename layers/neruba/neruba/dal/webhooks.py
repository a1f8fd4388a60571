"""Outgoing webhooks in the ops table: endpoints, the outbox, events, deliveries and their attempts.

Items:
- ``WHEP`` / ``{endpoint_id}``: one endpoint (``doc`` JSON text; ``secrets`` JSON text of
  ``[{secret, expires_at}]``, newest first: the table is encrypted at rest, and no answer shows them);
- ``WHOUT#{shard}`` / ``{written}#{n}#{event_id}``: an outbox item (shard: of the customer; ``written``:
  the clock when the action was made, ``n`` a counter of the process breaking ties, so the relay reads a
  customer's events in the order its producers made them, even two that report the same business
  time), written in the transaction of the state change it reports (``doc``: type, customer, data),
  deleted by the relay once fanned out; ``seq`` is set once by the relay (the customer's sequence number);
- ``WHONCE#{key}`` / ``#``: the mark of an event that must be written once per key (a trial ending, a
  DLQ arrival), written with the outbox item, never deleted;
- ``WHDLQ#{queue}`` / ``#``: a dead-letter queue's depth at the last check (``n``);
- ``WHSEQ#{customer}`` / ``#``: the customer's last event sequence number (``n``);
- ``WHEVT#{event_id}`` / ``#``: the event as sent (``body``: the exact bytes every attempt signs);
- ``WHEVC#{customer}`` / ``{seq:012d}``: the customer's events by sequence number (``event_id``,
  ``type``, ``created``), written with ``WHEVT`` for the events list (no index: one partition per customer);
- ``WHDEL#{event_id}`` / ``{endpoint_id}``: one delivery's state (``st`` pending/delivered/failed,
  ``attempts``, ``next_at``, ``lease``, ``sent``: the attempt whose follow-up message was sent);
- ``WHDEL#{event_id}`` / ``{endpoint_id}#A#{n:04d}``: attempt ``n``'s log line;
- ``WHFAIL`` / ``{failed_at}#{event_id}#{endpoint_id}``: a delivery that gave up (resend by time).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.cursors import InvalidCursorError, decode_cursor, encode_cursor
from neruba.dal.dynamo import from_item, is_condition_failure, partition_items, query_items, to_item
from neruba.timefmt import ts

__all__ = [
    "OUTBOX_SHARDS",
    "Attempt",
    "Delivery",
    "Endpoint",
    "EndpointSecret",
    "InvalidCursorError",
    "WebhookEvent",
    "WebhooksRepository",
]

OUTBOX_SHARDS = 4
ENDPOINTS_PK = "WHEP"
FAILED_PK = "WHFAIL"
CUSTOMER_EVENTS_PK = "WHEVC#"
READ_BUDGET = 1000
"""The most list entries one page of a filtered events list reads (then it answers what it found, and a
cursor)."""


_made = itertools.count()


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    """One signing secret of an endpoint: its value, and when it stops signing (stored time text; None:
    while it is the newest)."""

    secret: str
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A webhook endpoint: the fields logic decides on, its ``secrets`` (newest first), and ``document``
    (the endpoint in the API's field names), which the answers are built from and a change starts from."""

    id: str
    url: str
    enabled: bool
    enabled_events: tuple[str, ...]
    failing_since: str | None
    secrets: tuple[EndpointSecret, ...]
    document: dict[str, Any]


def _endpoint(item: dict[str, Any]) -> Endpoint:
    doc: dict[str, Any] = json.loads(item["doc"])
    return Endpoint(
        id=str(doc["id"]),
        url=str(doc.get("url")),
        enabled=bool(doc.get("enabled")),
        enabled_events=tuple(str(e) for e in doc.get("enabled_events") or ()),
        failing_since=doc.get("failing_since") or None,
        secrets=tuple(
            EndpointSecret(str(s["secret"]), s.get("expires_at")) for s in json.loads(item["secrets"])
        ),
        document=doc,
    )


def _secrets_text(secrets: Sequence[EndpointSecret]) -> str:
    return _text([{"secret": s.secret, "expires_at": s.expires_at} for s in secrets])


@dataclass(frozen=True)
class WebhookEvent:
    """A stored outgoing event: ``created`` as stored, ``body`` the exact text sent (None in a list page,
    which reads the customer's list entries only)."""

    id: str
    type: str
    customer_id: str
    sequence: int
    created: str
    body: str | None = None

    def summary(self) -> dict[str, Any]:
        """The event's fields without its body (a list entry)."""
        return {"id": self.id, "type": self.type, "customer_id": self.customer_id,
                "sequence": self.sequence, "created": self.created}  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to one endpoint. Times are the stored text (``ts``); ``next_at`` only while
    ``pending``; ``sent`` counts the attempts whose follow-up message was queued."""

    endpoint_id: str
    status: str
    attempts: int
    sent: int = 0
    next_at: str | None = None
    deadline: str | None = None
    lease: str | None = None
    delivered_at: str | None = None
    failed_at: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One attempt of a delivery: the answer's status code (0: none), latency and an excerpt of it."""

    endpoint_id: str
    attempt: int
    at: str
    status_code: int
    latency_ms: int
    response_excerpt: str = ""
    error: str | None = None


def _write_order() -> str:
    """The outbox item's sort key prefix: the wall clock (not the event's ``created``, which may be a
    business time shared by two events, such as an archive and the cancellation it causes) and a
    process counter for two actions made within one microsecond."""
    return f"{ts(datetime.now(UTC))}#{next(_made) % 10**12:012d}"


def outbox_put(
    table_name: str, event_id: str, event_type: str, customer_id: str, data: dict[str, Any], created: datetime
) -> dict[str, Any]:
    """The outbox Put of one event in ``table_name`` (the ops table), for the transaction of the state
    change it reports."""
    doc = {"id": event_id, "type": event_type, "customer_id": customer_id, "created": ts(created)}
    item = {
        "pk": f"WHOUT#{outbox_shard(customer_id)}",
        "sk": f"{_write_order()}#{event_id}",
        "doc": json.dumps({**doc, "data": data}, sort_keys=True, default=str),
    }
    return {
        "Put": {
            "TableName": table_name,
            "Item": to_item(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def outbox_event(action: dict[str, Any]) -> dict[str, Any] | None:
    """The event an outbox Put (:func:`outbox_put`) carries (``type``, ``data``, ...); None for any other
    action."""
    put = action.get("Put")
    if not put or not put["Item"].get("pk", {}).get("S", "").startswith("WHOUT#"):
        return None
    return dict(json.loads(put["Item"]["doc"]["S"]))


def once_put(table_name: str, key: str, event_id: str) -> dict[str, Any]:
    """The Put that lets an event keyed ``key`` be written once: a second transaction carrying it is
    cancelled (the stored mark names the first event)."""
    item = {"pk": f"WHONCE#{key}", "sk": "#", "event_id": event_id}
    return {
        "Put": {
            "TableName": table_name,
            "Item": to_item(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def outbox_written(table_name: str, item: dict[str, Any]) -> bool:
    """Whether the outbox item ``item`` (low-level, as :func:`outbox_put` makes it) was written: it is
    there, or the relay stored its event (``WHEVT``, written before the relay deletes the item; read
    second, so an item fanned out between the two reads is still seen)."""
    key = {"pk": item["pk"], "sk": item["sk"]}
    found = client("dynamodb").get_item(
        TableName=table_name, Key=key, ConsistentRead=True, ProjectionExpression="pk"
    )
    if "Item" in found:
        return True
    event_id = json.loads(item["doc"]["S"])["id"]
    stored = client("dynamodb").get_item(
        TableName=table_name,
        Key={"pk": {"S": f"WHEVT#{event_id}"}, "sk": {"S": "#"}},
        ConsistentRead=True,
        ProjectionExpression="pk",
    )
    return "Item" in stored


def outbox_shard(customer_id: str) -> int:
    """A customer's events share one shard, so the relay reads them in the order they were written."""
    return zlib.crc32(customer_id.encode()) % OUTBOX_SHARDS


class WebhooksRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ----------------------------------------------------------------------------- endpoints
    def endpoint_item(
        self,
        doc: dict[str, Any],
        secrets: Sequence[EndpointSecret],
        *,
        new: bool = False,
        was: Endpoint | None = None,
    ) -> dict[str, Any]:
        """The Put of an endpoint: with ``new`` only if absent; otherwise only if it is still ``was`` (the
        endpoint read before), so a concurrent change is never overwritten."""
        item = {"pk": ENDPOINTS_PK, "sk": doc["id"], "doc": _text(doc), "secrets": _secrets_text(secrets)}
        request: dict[str, Any] = {"TableName": self.table_name, "Item": to_item(item)}
        if new:
            request["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            assert was is not None, "an endpoint is replaced only as it was read"
            request["ConditionExpression"] = "#doc = :doc AND secrets = :secrets"
            request["ExpressionAttributeNames"] = {"#doc": "doc"}
            request["ExpressionAttributeValues"] = to_item(
                {":doc": _text(was.document), ":secrets": _secrets_text(was.secrets)}
            )
        return {"Put": request}

    def put_endpoint(
        self,
        doc: dict[str, Any],
        secrets: Sequence[EndpointSecret],
        *,
        new: bool = False,
        was: Endpoint | None = None,
    ) -> bool:
        """Write an endpoint (see :meth:`endpoint_item`); False when the condition failed."""
        request = self.endpoint_item(doc, secrets, new=new, was=was)["Put"]
        try:
            client("dynamodb").put_item(**request)
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": ENDPOINTS_PK}, "sk": {"S": endpoint_id}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return _endpoint(from_item(response["Item"]))

    def delete_endpoint(self, endpoint_id: str) -> bool:
        try:
            client("dynamodb").delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": ENDPOINTS_PK}, "sk": {"S": endpoint_id}},
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def list_endpoints(self, limit: int, cursor: str | None) -> tuple[list[Endpoint], str | None]:
        """Endpoints in id order, one page; raises InvalidCursorError for a foreign cursor."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": ENDPOINTS_PK}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        query = {"list": "webhook_endpoints", "order": "id"}
        if cursor:
            request["ExclusiveStartKey"] = decode_cursor(
                cursor, query, keys=frozenset({"pk", "sk"}), within=("pk", ENDPOINTS_PK)
            )
        response = client("dynamodb").query(**request)
        found = [_endpoint(from_item(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return found, encode_cursor(last, query) if last else None

    def all_endpoints(self) -> list[Endpoint]:
        return [_endpoint(item) for item in partition_items(self.table_name, ENDPOINTS_PK)]

    # -------------------------------------------------------------------------------- outbox
    def outbox_item(
        self, event_id: str, event_type: str, customer_id: str, data: dict[str, Any], created: datetime
    ) -> dict[str, Any]:
        """The outbox Put, for the transaction of the state change it reports (:func:`outbox_put`)."""
        return outbox_put(self.table_name, event_id, event_type, customer_id, data, created)

    def once_item(self, key: str, event_id: str) -> dict[str, Any]:
        """The once-mark Put of ``key`` (:func:`once_put`)."""
        return once_put(self.table_name, key, event_id)

    def dlq_depth(self, queue: str) -> int | None:
        """The depth stored at the last check of ``queue`` (None before the first)."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHDLQ#{queue}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return int(response["Item"]["n"]["N"]) if "Item" in response else None

    def save_dlq_depth(
        self, queue: str, previous: int | None, depth: int, event: dict[str, Any] | None
    ) -> bool:
        """Store ``depth`` if the stored one is still ``previous``, with ``event`` (an outbox action) in the
        same transaction; False when another check stored a depth first."""
        from neruba.dal.transaction import Cancelled, Transaction

        condition = "attribute_not_exists(pk)" if previous is None else "n = :before"
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": f"WHDLQ#{queue}"}, "sk": {"S": "#"}},
            "UpdateExpression": "SET n = :n",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {":n": {"N": str(depth)}},
        }
        if previous is not None:
            update["ExpressionAttributeValues"][":before"] = {"N": str(previous)}
        unit = Transaction([{"Update": update}])
        if event is not None:
            unit.add(event)
        try:
            unit.commit()
        except Cancelled:
            return False
        return True

    def pending_outbox(self, shard: int, limit: int) -> list[dict[str, Any]]:
        """Outbox items of ``shard`` not fanned out yet, oldest first (``doc`` read, ``seq`` if set)."""
        response = client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"WHOUT#{shard}"}},
            Limit=limit,
            ConsistentRead=True,
        )
        found = []
        for raw in response.get("Items", []):
            item = from_item(raw)
            doc = json.loads(item["doc"])
            doc["_key"] = (item["pk"], item["sk"])
            doc["sequence"] = int(item["seq"]) if "seq" in item else None
            found.append(doc)
        return found

    def assign_sequence(self, outbox: dict[str, Any]) -> int | None:
        """The event's sequence number: the customer's counter moved once, kept on the outbox item (a
        relay that dies after moving the counter leaves a gap, never a second number for one event);
        None when the item is gone (another relay running at the same time fanned it out)."""
        if outbox.get("sequence") is not None:
            return int(outbox["sequence"])
        response = client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHSEQ#{outbox['customer_id']}"}, "sk": {"S": "#"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        number = int(response["Attributes"]["n"]["N"])
        pk, sk = outbox["_key"]
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression="SET seq = :n",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(seq)",
                ExpressionAttributeValues={":n": {"N": str(number)}},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            response = client("dynamodb").get_item(
                TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
            if "Item" not in response:
                return None  # another relay fanned it out and deleted it meanwhile
            return int(response["Item"]["seq"]["N"])
        return number

    def delete_outbox(self, outbox: dict[str, Any]) -> None:
        pk, sk = outbox["_key"]
        client("dynamodb").delete_item(TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    # -------------------------------------------------------------------------------- events
    def put_event(self, event: dict[str, Any], body: str) -> str:
        """Store the event as sent unless stored; returns the stored body (the first one wins)."""
        item = {
            "pk": f"WHEVT#{event['id']}",
            "sk": "#",
            "type": event["type"],
            "customer_id": event["customer_id"],
            "seq": event["sequence"],
            "created": event["created"],
            "body": body,
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table_name, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            stored = self.event(str(event["id"]))
            assert stored is not None
            self._put_listed(stored)
            return str(stored.body)
        self._put_listed(
            WebhookEvent(
                event["id"], event["type"], event["customer_id"], event["sequence"], event["created"]
            )
        )
        return body

    def _put_listed(self, event: WebhookEvent) -> None:
        """The customer's list entry of a stored event (written again by a relay run again: same key,
        same values, as the sequence number is fixed once)."""
        item = {
            "pk": f"{CUSTOMER_EVENTS_PK}{event.customer_id}",
            "sk": f"{int(event.sequence):012d}",
            "event_id": event.id,
            "type": event.type,
            "created": event.created,
        }
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    def list_events(
        self,
        customer_id: str,
        event_type: str | None,
        start: str | None,
        end: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[WebhookEvent], str | None]:
        """A customer's events, newest sequence first, of ``event_type`` and created in ``[start, end]``
        when given (filtered after the read: a page reads at most :data:`READ_BUDGET` list entries and
        may come back short with a cursor). Raises InvalidCursorError for a cursor of another query."""
        pk = f"{CUSTOMER_EVENTS_PK}{customer_id}"
        query = {"list": "webhook_events", "customer_id": customer_id, "type": event_type,
                 "from": start, "to": end, "order": "sequence_desc"}  # fmt: skip
        filters: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {":pk": pk}
        if event_type is not None:
            filters.append("#type = :type")
            names["#type"] = "type"
            values[":type"] = event_type
        if start is not None:
            filters.append("created >= :start")
            values[":start"] = start
        if end is not None:
            filters.append("created <= :end")
            values[":end"] = end
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if names:
            request["ExpressionAttributeNames"] = names
        request["ExpressionAttributeValues"] = to_item(values)
        if cursor:
            request["ExclusiveStartKey"] = decode_cursor(
                cursor, query, keys=frozenset({"pk", "sk"}), within=("pk", pk)
            )
        found: list[tuple[WebhookEvent, dict[str, Any]]] = []  # each with its item's key
        read = 0
        while True:
            request["Limit"] = min(limit + 1 - len(found), READ_BUDGET - read)
            response = client("dynamodb").query(**request)
            read += int(response.get("ScannedCount", 0))
            for raw in response.get("Items", []):
                item = from_item(raw)
                listed = WebhookEvent(
                    str(item["event_id"]),
                    str(item["type"]),
                    customer_id,
                    int(item["sk"]),
                    str(item["created"]),
                )
                found.append((listed, raw))
            last = response.get("LastEvaluatedKey")
            if len(found) > limit:
                key = found[limit - 1][1]
                position = {"pk": key["pk"], "sk": key["sk"]}
                return [e for e, _ in found[:limit]], encode_cursor(position, query)
            if last is None:
                return [e for e, _ in found], None
            if read >= READ_BUDGET:
                return [e for e, _ in found], encode_cursor(last, query)
            request["ExclusiveStartKey"] = last

    def event(self, event_id: str) -> WebhookEvent | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHEVT#{event_id}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return WebhookEvent(
            id=event_id,
            type=str(item["type"]),
            customer_id=str(item["customer_id"]),
            sequence=int(item["seq"]),
            created=str(item["created"]),
            body=str(item["body"]),
        )

    # ---------------------------------------------------------------------------- deliveries
    def create_delivery(self, event_id: str, endpoint_id: str, now: datetime, deadline: datetime) -> None:
        """A pending delivery, due now, unless it exists (a relay run again changes nothing)."""
        item = {
            "pk": f"WHDEL#{event_id}",
            "sk": endpoint_id,
            "st": "pending",
            "attempts": 0,
            "sent": 0,
            "next_at": ts(now),
            "deadline": ts(deadline),
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table_name, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def delivery(self, event_id: str, endpoint_id: str) -> Delivery | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHDEL#{event_id}"}, "sk": {"S": endpoint_id}},
            ConsistentRead=True,
        )
        return _delivery(from_item(response["Item"])) if "Item" in response else None

    def deliveries_of(self, event_id: str) -> tuple[list[Delivery], list[Attempt]]:
        """(delivery states, attempt log lines) of one event."""
        states: list[Delivery] = []
        attempts: list[Attempt] = []
        for item in partition_items(self.table_name, f"WHDEL#{event_id}"):
            if "#A#" in str(item["sk"]):
                attempts.append(_attempt(item))
            else:
                states.append(_delivery(item))
        return states, attempts

    def take_lease(
        self, event_id: str, endpoint_id: str, attempts: int, now: datetime, until: datetime
    ) -> bool:
        """Claim attempt ``attempts + 1``: False when the delivery moved on or another worker holds it."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"WHDEL#{event_id}"}, "sk": {"S": endpoint_id}},
                UpdateExpression="SET lease = :until",
                ConditionExpression=(
                    "st = :pending AND attempts = :k AND (attribute_not_exists(lease) OR lease <= :now)"
                ),
                ExpressionAttributeValues=to_item(
                    {":until": ts(until), ":pending": "pending", ":k": attempts, ":now": ts(now)}
                ),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def record_attempt(
        self,
        event_id: str,
        endpoint_id: str,
        attempt: dict[str, Any],
        outcome: str,
        next_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Log attempt ``attempt['attempt']`` and move the delivery to ``outcome`` (pending, delivered,
        failed) in one transaction; False when another worker recorded that attempt first."""
        from neruba.dal.transaction import Cancelled, Transaction

        number = int(attempt["attempt"])
        log = {
            "pk": f"WHDEL#{event_id}",
            "sk": f"{endpoint_id}#A#{number:04d}",
            "at": attempt["at"],
            "code": attempt["status_code"],
            "ms": attempt["latency_ms"],
            "excerpt": attempt["response_excerpt"],
            "error": attempt.get("error"),
        }
        values: dict[str, Any] = {":st": outcome, ":n": number, ":k": number - 1, ":now": ts(now)}
        sets = ["st = :st", "attempts = :n", "last_code = :code"]
        values[":code"] = attempt["status_code"]
        if outcome == "pending":
            assert next_at is not None
            sets.append("next_at = :next")
            values[":next"] = ts(next_at)
        elif outcome == "delivered":
            sets.append("delivered_at = :now")
        else:
            sets.append("failed_at = :now")
        unit = Transaction()
        unit.add(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": to_item(log),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        unit.add(
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": {"S": f"WHDEL#{event_id}"}, "sk": {"S": endpoint_id}},
                    "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE lease",
                    "ConditionExpression": "attempts = :k",
                    "ExpressionAttributeValues": to_item(values),
                }
            },
            name="delivery",
        )
        if outcome == "failed":
            fail = {"pk": FAILED_PK, "sk": f"{ts(now)}#{event_id}#{endpoint_id}"}
            unit.add({"Put": {"TableName": self.table_name, "Item": to_item(fail)}})
        try:
            unit.commit()
        except Cancelled:
            return False
        return True

    def mark_sent(self, event_id: str, endpoint_id: str, attempts: int) -> None:
        """The follow-up message of attempt ``attempts`` is on the queue."""
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHDEL#{event_id}"}, "sk": {"S": endpoint_id}},
            UpdateExpression="SET sent = :k",
            ExpressionAttributeValues=to_item({":k": attempts}),
        )

    def reopen(self, event_id: str, endpoint_id: str, now: datetime, deadline: datetime) -> int:
        """Put a delivery back to pending, due now, with a new deadline (resend); returns the number of
        attempts already made (the next message's attempt is that plus one)."""
        response = client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"WHDEL#{event_id}"}, "sk": {"S": endpoint_id}},
            UpdateExpression="SET st = :p, next_at = :now, deadline = :dl REMOVE lease, failed_at",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(lease) OR lease <= :now)",
            ExpressionAttributeValues=to_item({":p": "pending", ":now": ts(now), ":dl": ts(deadline)}),
            ReturnValues="ALL_NEW",
        )
        return int(response["Attributes"]["attempts"]["N"])

    def failed_since(self, since: datetime, limit: int) -> list[tuple[str, str]]:
        """(event id, endpoint id) of deliveries that gave up at or after ``since``, oldest first."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": {":pk": {"S": FAILED_PK}, ":since": {"S": ts(since)}},
        }
        found: dict[tuple[str, str], None] = {}  # in order, each pair once
        for item in query_items(request):
            _, event_id, endpoint_id = str(item["sk"]).split("#")
            found[(event_id, endpoint_id)] = None
            if len(found) >= limit:
                break
        return list(found)


def _text(value: Any) -> str:
    """The stored text of an endpoint's document or secrets (sorted keys: reading and writing it back
    gives the same text, which the replace condition compares)."""
    return json.dumps(value, sort_keys=True)


def _delivery(item: dict[str, Any]) -> Delivery:
    return Delivery(
        endpoint_id=item["sk"],
        status=item["st"],
        attempts=int(item["attempts"]),
        sent=int(item.get("sent", 0)),
        next_at=item.get("next_at") if item["st"] == "pending" else None,
        deadline=item.get("deadline"),
        lease=item.get("lease"),
        delivered_at=item.get("delivered_at"),
        failed_at=item.get("failed_at"),
    )


def _attempt(item: dict[str, Any]) -> Attempt:
    endpoint_id, _, number = str(item["sk"]).split("#")
    return Attempt(
        endpoint_id=endpoint_id,
        attempt=int(number),
        at=item["at"],
        status_code=int(item["code"]),
        latency_ms=int(item["ms"]),
        response_excerpt=item.get("excerpt", ""),
        error=item.get("error"),
    )


def enqueue(queue_url: str, messages: list[tuple[str, int]]) -> None:
    """Send ``(body, delay seconds)`` messages (delay at most 900, SQS's limit), ten a call; raises when
    one could not be sent (the caller has not marked anything done yet, so it runs again)."""
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        entries = [
            {"Id": str(n), "MessageBody": body, "DelaySeconds": max(0, min(900, delay))}
            for n, (body, delay) in enumerate(chunk)
        ]
        response = client("sqs").send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"{len(response['Failed'])} webhook delivery messages not sent")


def queue_depth(queue_url: str) -> int:
    """A queue's approximate number of visible messages."""
    response = client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(response["Attributes"]["ApproximateNumberOfMessages"])
