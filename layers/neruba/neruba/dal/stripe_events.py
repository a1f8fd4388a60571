"""Stripe records in the ops table.

Items (all ``sk="#"`` unless said):

* ``STRIPE#{event_id}``: one verified event, written once (``attribute_not_exists(pk)``): type, created,
  status ``st``, the raw payload (zlib-compressed bytes, for replay), ``attempts``, the last ``outcome`` /
  ``error``, ``history`` (one entry per processing attempt) and the sparse listing keys ``sbk`` (month of
  the event, ``STRIPE#2025-01``) / ``ssk`` (``{created}#{event_id}``) of the ``stripe-events`` index.
* ``STRIPELINK#{key}``: what a Stripe charge, payment intent or dispute belongs to (our invoice, customer,
  currency), written when the payment (or dispute) is processed; refunds and disputes look it up.
* ``STRIPEWAIT#{key}`` / ``{event_id}``: a deferred event waiting for that link to appear.
* ``STRIPECUS#{customer_id}``: the Stripe customer id of one of our customers (sync-out).
* ``STRIPEREJ#{sha256}``: a webhook body that was signed correctly but could not be used (reason, size).
* ``STRIPEREPLAY#{idempotency key}``: the first answer of an operator replay sent with that key.
* ``STRIPEREFUND#{charge_id}``: ``upto``, the refunded total of a charge already posted to the ledger (for
  ``charge.refunded`` payloads without their refund list), moved in the ledger posting's transaction.

Example:
    >>> StripeEventsRepository("ops").table_name
    'ops'
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, query_items, record, to_item, to_value
from neruba.dal.transaction import Transaction
from neruba.timefmt import parse_ts, ts_seconds

INDEX = "stripe-events"


def month_bucket(at: datetime) -> str:
    """The listing partition of events created at ``at``.

    Example:
        >>> month_bucket(datetime(2025, 1, 31, tzinfo=UTC))
        'STRIPE#2025-01'
    """
    return f"STRIPE#{at.astimezone(UTC):%Y-%m}"


@dataclass(frozen=True, slots=True)
class StripeLink:
    """What a Stripe charge, payment intent, invoice or dispute belongs to: our invoice, customer and
    currency, the event that recorded it, and for a dispute its charge."""

    invoice_id: str
    customer_id: str
    currency: str
    event_id: str
    charge_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayAnswer:
    """The first answer of a Stripe event replay under an idempotency key: the request's fingerprint,
    the answer as JSON text, and when it was stored."""

    fingerprint: str
    response: str
    at: str | None = None


@dataclass(frozen=True)
class StripeEvent:
    """One stored Stripe event. Times are the records' text (``ts_seconds``). Read from the listing index,
    an event carries the projected fields only (``history`` and ``payload`` are None); ``payload`` (the raw
    body, for a replay) only when asked. ``invoice_id`` / ``customer_id`` are what processing tied it to."""

    event_id: str
    type: str
    created: str
    status: str | None = None
    livemode: bool = False
    attempts: int = 0
    outcome: str | None = None
    error: str | None = None
    received_at: str | None = None
    updated_at: str | None = None
    invoice_id: str | None = None
    customer_id: str | None = None
    history: list[dict[str, Any]] | None = None
    payload: str | None = None

    def view(self) -> dict[str, Any]:
        """The fields an answer shows: those stored (``status`` always, None before any attempt)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k == "status"}


def _key(pk: str, sk: str = "#") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


class StripeEventsRepository:
    """Reads and writes of Stripe events, links, waiters and sync bookkeeping in the ops table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- events
    def put_new(self, event: dict[str, Any], raw: bytes, received_at: datetime) -> StripeEvent | None:
        """Store a verified event once. Returns None when stored, else the event already there."""
        created = datetime.fromtimestamp(int(event.get("created") or received_at.timestamp()), UTC)
        item = {
            "pk": f"STRIPE#{event['id']}",
            "sk": "#",
            "event_id": event["id"],
            "type": event["type"],
            "created": ts_seconds(created),
            "livemode": bool(event.get("livemode", False)),
            "st": "received",
            "received_at": ts_seconds(received_at),
            "updated_at": ts_seconds(received_at),
            "attempts": 0,
            "payload_z": zlib.compress(raw, 6),
            "history": [],
            "sbk": month_bucket(created),
            "ssk": f"{ts_seconds(created)}#{event['id']}",
        }
        try:
            client("dynamodb").put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item")
            if old:
                return _public(from_item(old))
            return self.get(event["id"]) or StripeEvent(event["id"], event["type"], item["created"])
        return None

    def get(self, event_id: str, *, with_payload: bool = False) -> StripeEvent | None:
        """The stored event (without its payload unless asked), or None."""
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(f"STRIPE#{event_id}"), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return _public(from_item(response["Item"]), with_payload=with_payload)

    def record_attempt(
        self,
        event_id: str,
        *,
        status: str,
        outcome: str,
        error: str | None,
        trigger: str,
        at: datetime,
        refs: dict[str, str] | None = None,
        with_items: list[dict[str, Any]] | None = None,
    ) -> None:
        """Set the status after a processing attempt and append it to the history.

        ``with_items`` (TransactWriteItems actions, e.g. the audit record of a replay) commit in the same
        transaction as the status change.
        """
        update = self.attempt_item(
            event_id, status=status, outcome=outcome, error=error, trigger=trigger, at=at, refs=refs
        )
        if with_items:
            Transaction([update, *with_items]).commit()
        else:
            client("dynamodb").update_item(**update["Update"])

    def claim(self, event_id: str, token: str, at: datetime, until: datetime) -> bool:
        """Take the event for one processing attempt until ``until`` (or until the attempt is recorded);
        False when another attempt holds an unexpired claim."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_key(f"STRIPE#{event_id}"),
                UpdateExpression="SET #c = :t, #cu = :until",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(#cu) OR #cu < :now)",
                ExpressionAttributeNames={"#c": "claim", "#cu": "claim_until"},
                ExpressionAttributeValues={
                    ":t": to_value(token),
                    ":until": to_value(ts_seconds(until)),
                    ":now": to_value(ts_seconds(at)),
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def release(self, event_id: str, token: str) -> None:
        """Give a claim back without recording an attempt (only the claim ``token`` names)."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_key(f"STRIPE#{event_id}"),
                UpdateExpression="REMOVE #c, #cu",
                ConditionExpression="#c = :t",
                ExpressionAttributeNames={"#c": "claim", "#cu": "claim_until"},
                ExpressionAttributeValues={":t": to_value(token)},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def attempt_item(
        self,
        event_id: str,
        *,
        status: str,
        outcome: str,
        error: str | None,
        trigger: str,
        at: datetime,
        refs: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The TransactWriteItems ``Update`` recording one attempt (see :meth:`record_attempt`)."""
        entry = {
            "at": ts_seconds(at),
            "trigger": trigger,
            "status": status,
            "outcome": outcome,
            "error": error,
        }
        names = {"#st": "st", "#h": "history", "#o": "outcome", "#e": "error", "#u": "updated_at"}
        values = {
            ":st": to_value(status),
            ":h": to_value([{k: v for k, v in entry.items() if v is not None}]),
            ":o": to_value(outcome),
            ":u": to_value(ts_seconds(at)),
            ":one": to_value(1),
        }
        sets = ["#st = :st", "#h = list_append(#h, :h)", "#o = :o", "#u = :u"]
        if error is not None:
            values[":e"] = to_value(error)
            sets.append("#e = :e")
        for index, (name, value) in enumerate(sorted((refs or {}).items())):
            names[f"#r{index}"] = name
            values[f":r{index}"] = to_value(value)
            sets.append(f"#r{index} = :r{index}")
        names |= {"#c": "claim", "#cu": "claim_until"}
        removed = ["#c", "#cu"] + ([] if error is not None else ["#e"])  # the attempt ends its claim
        update = "SET " + ", ".join(sets) + " ADD attempts :one REMOVE " + ", ".join(removed)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(f"STRIPE#{event_id}"),
                "UpdateExpression": update,
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def list_events(
        self,
        *,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        status: str | None = None,
        limit: int = 20,
        starting_after: str | None = None,
    ) -> tuple[list[StripeEvent], bool]:
        """Events created in ``[start, end]``, newest first, filtered; returns (page, has_more)."""
        upper = f"{ts_seconds(end)}#\uffff"
        if starting_after:
            anchor = self.get(starting_after)
            if anchor is not None:
                upper = min(upper, f"{anchor.created}#{starting_after}")
                end = min(end, parse_ts(anchor.created))
        found: list[StripeEvent] = []
        for bucket in _months_desc(start, end):
            for item in self._query_bucket(bucket, f"{ts_seconds(start)}#", upper, event_type, status):
                if item["ssk"] >= upper:
                    continue
                found.append(_public(item))
                if len(found) > limit:
                    return found[:limit], True
        return found, False

    def _query_bucket(
        self, bucket: str, lower: str, upper: str, event_type: str | None, status: str | None
    ) -> Iterator[dict[str, Any]]:
        names = {"#b": "sbk", "#s": "ssk"}
        values = {":b": to_value(bucket), ":lo": to_value(lower), ":hi": to_value(upper)}
        filters = []
        if event_type:
            names["#t"] = "type"
            values[":t"] = to_value(event_type)
            filters.append("#t = :t")
        if status:
            names["#st"] = "st"
            values[":st"] = to_value(status)
            filters.append("#st = :st")
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": INDEX,
            "KeyConditionExpression": "#b = :b AND #s BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": 100,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        yield from query_items(request)

    def put_link(self, key: str, link: StripeLink) -> None:
        """Record what a charge / payment intent / dispute belongs to (idempotent overwrite)."""
        values = {k: v for k, v in asdict(link).items() if v is not None}
        client("dynamodb").put_item(
            TableName=self.table_name, Item=to_item({"pk": f"STRIPELINK#{key}", "sk": "#", **values})
        )

    def link(self, key: str) -> StripeLink | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(f"STRIPELINK#{key}"), ConsistentRead=True
        )
        return record(StripeLink, from_item(response["Item"])) if "Item" in response else None

    def add_waiter(self, key: str, event_id: str, at: datetime) -> None:
        client("dynamodb").put_item(
            TableName=self.table_name,
            Item=to_item({"pk": f"STRIPEWAIT#{key}", "sk": event_id, "since": ts_seconds(at)}),
        )

    def remove_waiter(self, key: str, event_id: str) -> None:
        client("dynamodb").delete_item(TableName=self.table_name, Key=_key(f"STRIPEWAIT#{key}", event_id))

    def waiters(self, key: str) -> list[str]:
        response = client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": to_value(f"STRIPEWAIT#{key}")},
            ConsistentRead=True,
        )
        return [item["sk"]["S"] for item in response.get("Items", [])]

    # ---------------------------------------------------------------- misc records
    def stripe_customer(self, customer_id: str) -> str | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(f"STRIPECUS#{customer_id}"), ConsistentRead=True
        )
        return str(response["Item"]["stripe_customer_id"]["S"]) if "Item" in response else None

    def put_stripe_customer(self, customer_id: str, stripe_customer_id: str, at: datetime) -> None:
        client("dynamodb").put_item(
            TableName=self.table_name,
            Item=to_item(
                {
                    "pk": f"STRIPECUS#{customer_id}",
                    "sk": "#",
                    "stripe_customer_id": stripe_customer_id,
                    "at": ts_seconds(at),
                }
            ),
        )

    def put_rejected(self, digest: str, reason: str, size: int, at: datetime) -> None:
        """Record a signed but unusable webhook body (its hash, never the body)."""
        client("dynamodb").put_item(
            TableName=self.table_name,
            Item=to_item(
                {"pk": f"STRIPEREJ#{digest}", "sk": "#", "reason": reason, "size": size, "at": ts_seconds(at)}
            ),
        )

    def replay_answer(self, key: str) -> ReplayAnswer | None:
        """The first answer stored under a replay's idempotency key, or None."""
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_key(f"STRIPEREPLAY#{key}"), ConsistentRead=True
        )
        return record(ReplayAnswer, from_item(response["Item"])) if "Item" in response else None

    def replay_answer_item(self, key: str, answer: ReplayAnswer) -> dict[str, Any]:
        """The TransactWriteItems ``Put`` of a replay's first answer (condition: none is stored yet)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item({"pk": f"STRIPEREPLAY#{key}", "sk": "#", **asdict(answer)}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def events_in_status(
        self, start: datetime, end: datetime, statuses: tuple[str, ...]
    ) -> Iterator[StripeEvent]:
        """Events created in ``[start, end]`` whose status is one of ``statuses``, from the
        ``stripe-events`` index (one query per month bucket, bounded by ``created``; the status is
        filtered by DynamoDB after the read). Items carry the index's projected fields only."""
        names = {"#b": "sbk", "#s": "ssk", "#st": "st"}
        wanted = {f":st{i}": to_value(status) for i, status in enumerate(statuses)}
        for bucket in _months_desc(start, end):
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": INDEX,
                "KeyConditionExpression": "#b = :b AND #s BETWEEN :lo AND :hi",
                "FilterExpression": f"#st IN ({', '.join(wanted)})",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":b": to_value(bucket),
                    ":lo": to_value(f"{ts_seconds(start)}#"),
                    ":hi": to_value(f"{ts_seconds(end)}#\uffff"),
                    **wanted,
                },
            }
            yield from (_public(item) for item in query_items(request))


class RefundLevels:
    """Per Stripe charge, the refunded total already posted (``STRIPEREFUND#{charge}`` in the ops table)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def level(self, charge_id: str) -> int:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=to_item({"pk": f"STRIPEREFUND#{charge_id}", "sk": "#"}),
            ConsistentRead=True,
        )  # fmt: skip
        return int(from_item(response["Item"])["upto"]) if "Item" in response else 0

    def move_item(self, charge_id: str, seen: int, upto: int) -> dict[str, Any]:
        """A transaction ``Update`` moving the level from ``seen`` (the value read) to ``upto``."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": to_item({"pk": f"STRIPEREFUND#{charge_id}", "sk": "#"}),
                "UpdateExpression": "SET upto = :new",
                "ConditionExpression": "attribute_not_exists(pk)" if seen == 0 else "upto = :seen",
                "ExpressionAttributeValues": to_item({":new": upto, **({":seen": seen} if seen else {})}),
            }
        }

    # ---------------------------------------------------------------- reads for the ops sweep


def _public(item: dict[str, Any], *, with_payload: bool = False) -> StripeEvent:
    """The typed event of a stored item (``st`` is its status; the compressed payload only when asked)."""
    payload = None
    if with_payload and item.get("payload_z") is not None:
        payload = zlib.decompress(bytes(item["payload_z"])).decode("utf-8")
    return record(StripeEvent, item, status=item.get("st"), payload=payload)


def _months_desc(start: datetime, end: datetime) -> Iterator[str]:
    year, month = end.astimezone(UTC).year, end.astimezone(UTC).month
    first = (start.astimezone(UTC).year, start.astimezone(UTC).month)
    while (year, month) >= first:
        yield f"STRIPE#{year:04d}-{month:02d}"
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
